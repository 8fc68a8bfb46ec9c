"""Go wire formats the rack produces and parses: JSON, times, ids, option values, shell words.

Each function reproduces one behaviour of the Go server (stdapi, strconv, time, go-shellquote),
so the emulator answers byte for byte the way a rack does (docs/rack-api.md §2.2, §3.1, §5.10).
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import secrets
import shlex
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote_to_bytes

from .errors import RackError

__all__ = [
    "ZERO_TIME",
    "format_time",
    "go_quote",
    "go_shell_join",
    "new_id",
    "new_request_id",
    "parse_bool",
    "parse_duration_ns",
    "parse_int",
    "parse_query",
    "parse_sortable_time",
    "pod_suffix",
    "render_error_json",
    "render_json",
    "shell_split",
    "sniff_content_type",
]

ZERO_TIME = "0001-01-01T00:00:00Z"

_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Kubernetes' generate-name alphabet (no vowels, no ambiguous digits).
_POD_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def format_time(ns: int | None) -> str:
    """RFC 3339 UTC with up to nine fractional digits, trailing zeros trimmed; None -> zero time."""
    if ns is None:
        return ZERO_TIME
    seconds, frac = divmod(ns, 1_000_000_000)
    stamp = _dt.datetime.fromtimestamp(seconds, tz=_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        stamp += "." + f"{frac:09d}".rstrip("0")
    return stamp + "Z"


def format_time_seconds(ns: int) -> str:
    """RFC 3339 at second precision (Go's ``time.RFC3339``), used in log prefixes and pod times."""
    return format_time(ns - ns % 1_000_000_000)


def _go_compatible(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _go_compatible(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_go_compatible(v) for v in value]
    return value


def _go_escape(text: str) -> str:
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def render_json(value: Any) -> bytes:
    """``json.MarshalIndent(v, "", "  ")`` plus the newline stdapi's RenderJSON appends."""
    text = json.dumps(_go_compatible(value), indent=2, ensure_ascii=False)
    return (_go_escape(text) + "\n").encode()


def render_error_json(message: str) -> bytes:
    """``json.NewEncoder(w).Encode({"error": msg})``: compact, newline-terminated."""
    text = json.dumps({"error": message}, separators=(",", ":"), ensure_ascii=False)
    return (_go_escape(text) + "\n").encode()


def new_id(prefix: str) -> str:
    """Build/release id: prefix plus 10 random upper-case letters (docs/rack-api.md §2.5)."""
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))


def pod_suffix(length: int = 5) -> str:
    """Random suffix Kubernetes appends to generated pod names."""
    return "".join(secrets.choice(_POD_ALPHABET) for _ in range(length))


def new_request_id() -> str:
    """Request-Id: 12 lowercase hex characters (docs/rack-api.md §3.4)."""
    return secrets.token_hex(6)


def go_quote(text: str) -> str:
    """Approximation of Go's ``strconv.Quote`` used in strconv and time error messages."""
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x100:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(f"\\u{ord(char):04x}")
    return '"' + "".join(out) + '"'


def parse_bool(raw: str) -> bool:
    """stdapi bool rule: exactly ``true`` is true, anything else is false."""
    return raw == "true"


def parse_int(raw: str, func: str = "strconv.Atoi") -> int:
    """Base-10 integer as Go's strconv parses it; failures are 500 with strconv's message."""
    if re.fullmatch(r"[+-]?[0-9]+", raw) is None:
        raise RackError(500, f"{func}: parsing {go_quote(raw)}: invalid syntax")
    value = int(raw)
    if not -(2**63) <= value < 2**63:
        raise RackError(500, f"{func}: parsing {go_quote(raw)}: value out of range")
    return value


_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}


def parse_duration_ns(raw: str) -> int:
    """Go ``time.ParseDuration`` in nanoseconds; a bare number other than 0 is rejected."""
    invalid = RackError(500, f"time: invalid duration {go_quote(raw)}")
    text = raw
    negative = False
    if text[:1] in ("-", "+"):
        negative = text[0] == "-"
        text = text[1:]
    if text == "0":
        return 0
    if text == "":
        raise invalid
    total = 0.0
    while text:
        if not (text[0] == "." or text[0].isdigit()):
            raise invalid
        match = re.match(r"([0-9]*)(?:\.([0-9]*))?", text)
        assert match is not None
        whole, frac = match.group(1), match.group(2)
        if whole == "" and not frac:
            raise invalid
        text = text[match.end() :]
        unit_match = re.match(r"[^0-9.]+", text)
        if unit_match is None:
            raise RackError(500, f"time: missing unit in duration {go_quote(raw)}")
        unit = unit_match.group(0)
        text = text[unit_match.end() :]
        if unit not in _DURATION_UNITS:
            raise RackError(500, f"time: unknown unit {go_quote(unit)} in duration {go_quote(raw)}")
        number = float(f"{whole or '0'}.{frac or '0'}")
        total += number * _DURATION_UNITS[unit]
        if total >= 2**63:
            raise invalid
    return -int(total) if negative else int(total)


def parse_sortable_time(raw: str) -> int:
    """Go time layout ``20060102.150405.000000000`` (UTC) to epoch nanoseconds (§2.2)."""
    match = re.fullmatch(r"(\d{4})(\d{2})(\d{2})\.(\d{2})(\d{2})(\d{2})\.(\d{9})", raw)
    if match is None:
        raise RackError(
            500,
            f'parsing time {go_quote(raw)} as "20060102.150405.000000000": '
            f"cannot parse {go_quote(raw)} as {go_quote('2006')}",
        )
    year, month, day, hour, minute, second, nanos = (int(g) for g in match.groups())
    try:
        moment = _dt.datetime(year, month, day, hour, minute, second, tzinfo=_dt.timezone.utc)
    except ValueError as exc:
        raise RackError(500, f"parsing time {go_quote(raw)}: {exc}") from exc
    return int(moment.timestamp()) * 1_000_000_000 + nanos


def parse_query(text: str) -> tuple[dict[str, list[str]], str | None]:
    """Go ``url.ParseQuery``: pairs split on ``&``, first error returned, bad pairs skipped."""
    values: dict[str, list[str]] = {}
    first_error: str | None = None
    for pair in text.split("&"):
        if pair == "":
            continue
        if ";" in pair:
            first_error = first_error or "invalid semicolon separator in query"
            continue
        key, _, value = pair.partition("=")
        try:
            decoded_key = _unescape(key)
            decoded_value = _unescape(value)
        except ValueError as exc:
            first_error = first_error or str(exc)
            continue
        values.setdefault(decoded_key, []).append(decoded_value)
    return values, first_error


def _unescape(text: str) -> str:
    for match in re.finditer(r"%(.{0,2})", text):
        if re.fullmatch(r"[0-9A-Fa-f]{2}", match.group(1)) is None:
            raise ValueError(f"invalid URL escape {go_quote(match.group(0))}")
    return unquote_to_bytes(text.replace("+", " ")).decode("utf-8", errors="replace")


def shell_split(command: str) -> list[str]:
    """Split a command shell-style (no shell involved), with go-shellquote's error messages."""
    try:
        return shlex.split(command)
    except ValueError as exc:
        message = str(exc)
        if "escape" in message.lower():
            raise RackError(500, "Unterminated backslash-escape") from exc
        single = command.count("'") % 2 == 1
        kind = "single" if single else "double"
        raise RackError(500, f"Unterminated {kind}-quoted string") from exc


_SPECIAL = "\\'\"`${[|&;<>()*?!"
_EXTRA_SPECIAL = " \t\n"


def _quote_word(word: str) -> str:
    if word == "":
        return "''"
    if any(char in _EXTRA_SPECIAL for char in word):
        parts = word.split("'")
        quoted = ["'" + part + "'" if part else "" for part in parts]
        return "\\'".join(quoted)
    out = []
    for index, char in enumerate(word):
        if char in _SPECIAL or (index == 0 and char == "~"):
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def go_shell_join(args: Iterable[str]) -> str:
    """go-shellquote ``Join``: how the rack renders a process's ``command`` (§5.5)."""
    return " ".join(_quote_word(arg) for arg in args)


def sniff_content_type(head: bytes) -> str:
    """The subset of Go's ``http.DetectContentType`` that matters for rack streams."""
    if head.startswith(b"\x1f\x8b\x08"):
        return "application/x-gzip"
    if _is_text(head):
        return "text/plain; charset=utf-8"
    return "application/octet-stream"


def _is_text(head: bytes) -> bool:
    return not any(byte < 0x20 and byte not in (0x09, 0x0A, 0x0C, 0x0D, 0x1B) for byte in head)
