"""Request encoding exactly as the rack parses it, and the rack's environment format.

Rules (docs/rack-api.md):

* §2.2 values: booleans ``true``/``false`` (anything but ``true`` is false on the server); ints in
  base 10; durations in Go syntax (``1m30s``; a bare number other than ``0`` is a 500); times as
  ``YYYYMMDD.HHMMSS.nnnnnnnnn`` UTC; lists as one comma-joined value (the server splits on every
  comma); maps as ONE field whose value is itself a url-encoded query string (``K=V&K2=V2``), which
  the form encoder then encodes again, or the inner string as-is in a header.
* §2.5 path segments: ids and names are validated and percent-escaped so they can never change
  the route; object keys keep their ``/`` separators.
* §4.3 build args: ``K=V,K2=V2``; the builder splits its command line shell-style.
* §5.3 and §8 item 6 environment: the server's own parsing rules, and validation of what it cannot
  represent. Error messages name keys but never contain values: env values are secrets.

Every invalid argument raises :class:`~convox_provider.client.errors.ConvoxInputError`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from urllib.parse import quote, urlencode

from convox_provider.client.errors import ConvoxInputError

__all__ = [
    "ENV_LINE_MAX_BYTES",
    "Fields",
    "encode_bool",
    "encode_build_args",
    "encode_duration",
    "encode_int",
    "encode_list",
    "encode_map",
    "encode_time",
    "object_key",
    "parse_env",
    "parse_env_assignments",
    "render_env",
    "segment",
    "validate_app_name",
    "validate_env",
    "validate_env_key",
    "validate_env_value",
]

ENV_LINE_MAX_BYTES = 65535
"""Longest environment line (``KEY=VALUE`` in UTF-8 bytes) the rack can parse.

The rack reads the environment with Go's ``bufio.Scanner``, whose 64 KiB buffer must hold a line
and its ``\\n``: a line of 65536 bytes or more fails release creation and promote (§5.3).
"""

_INT64_MAX = 2**63 - 1
_INT64_MIN = -(2**63)
_NS_PER_SECOND = 1_000_000_000

# Go's ParseDuration grammar: [-+]?([0-9]*(\.[0-9]*)?[a-z]+)+ with at least one digit per number,
# plus the special case "0". Units are those of Go's unitMap (µ: U+00B5 and U+03BC).
_GO_DURATION = re.compile(
    r"[-+]?(?:0|(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|\u00b5s|\u03bcs|ms|s|m|h))+)"
)
_GO_DURATION_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_GO_DURATION_BARE_NUMBER = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_GO_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": _NS_PER_SECOND,
    "m": 60 * _NS_PER_SECOND,
    "h": 3600 * _NS_PER_SECOND,
}

# Characters RFC 3986 allows unescaped inside a path segment besides the unreserved ones; quote()
# leaves them alone so httpx has nothing left to re-escape.
_PCHAR_SAFE = "!$&'()*+,;=:@"
_CONTROL = "\x00-\x1f\x7f-\x9f"
_SEGMENT_PLAIN = re.compile(r"[A-Za-z0-9._~-]+")
"""Segments made only of URL-unreserved characters (RFC 3986 §2.3), which need no escaping."""
_SEGMENT_BAD = re.compile(rf"[\s{_CONTROL}/\\?#%]")
_OBJECT_KEY_BAD = re.compile(rf"[\s{_CONTROL}?#]")
_APP_NAME = re.compile(r"[a-z][a-z0-9-]*")
_RESERVED_APP_NAMES = frozenset({"rack", "system"})
_BUILD_ARG_BAD = re.compile(rf"[\s{_CONTROL},'\"\\]")
_ENV_KEY_BAD = re.compile(rf"[\s{_CONTROL}=]")
_ENV_VALUE_BAD = re.compile(r"[\r\n\x00]")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE_BAD = re.compile(r"[\r\n\x00]")

# Go's strings.TrimSpace set (unicode.White_Space). Python's str.strip() would also remove
# \x1c-\x1f, which the rack keeps as part of a key.
_GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)
# A line of at most this many characters is at most ENV_LINE_MAX_BYTES bytes in UTF-8.
_ENV_LINE_SAFE_CHARS = ENV_LINE_MAX_BYTES // 4


def _type_name(value: object) -> str:
    return type(value).__name__


def _describe_char(char: str) -> str:
    if char in "\r\n":
        return "line breaks"
    if ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F:
        return "control characters"
    if char.isspace():
        return "whitespace"
    return repr(char)


# --- scalar values (§2.2) ---------------------------------------------------------------------


def encode_bool(value: bool, *, name: str = "value") -> str:
    """``"true"`` or ``"false"``; only real booleans are accepted."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    raise ConvoxInputError(f"invalid {name}: expected a bool, got {_type_name(value)}")


def encode_int(value: int, *, name: str = "value") -> str:
    """Base-10 digits of a 64-bit integer; ``bool`` and non-integers are rejected."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConvoxInputError(f"invalid {name}: expected an int, got {_type_name(value)}")
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ConvoxInputError(f"invalid {name}: {value} does not fit in a 64-bit integer")
    return str(int(value))


def encode_duration(value: timedelta | int | float | str, *, name: str = "duration") -> str:
    """Go duration syntax, e.g. ``90`` → ``"1m30s"``, ``0.5`` → ``"500ms"``, ``0`` → ``"0s"``.

    Numbers are seconds and, like timedeltas, are rounded to whole nanoseconds and formatted as
    Go's ``Duration.String()`` does, except that microseconds are written ``us`` (not ``µs``) so
    the result is ASCII-safe in headers. A string is validated against Go's ``ParseDuration``
    grammar (``1h30m``, ``500ms``, ``-1h``, ``1.5h``; units ns us µs ms s m h) and returned
    unchanged. The rack holds durations in a signed 64-bit nanosecond count (about 292 years).
    """
    if isinstance(value, str):
        return _check_duration_string(value, name)
    if isinstance(value, bool):
        raise ConvoxInputError(f"invalid {name}: expected a duration, got bool")
    if isinstance(value, timedelta):
        ns = (value.days * 86400 + value.seconds) * _NS_PER_SECOND + value.microseconds * 1000
    elif isinstance(value, int):
        ns = value * _NS_PER_SECOND
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ConvoxInputError(f"invalid {name}: {value} is not a finite number of seconds")
        whole = math.floor(value)
        ns = int(whole) * _NS_PER_SECOND + round((value - whole) * _NS_PER_SECOND)
    else:
        raise ConvoxInputError(
            f"invalid {name}: expected a timedelta, a number of seconds or a Go duration string"
            f" such as '90s', got {_type_name(value)}"
        )
    if not _INT64_MIN <= ns <= _INT64_MAX:
        raise ConvoxInputError(f"invalid {name}: {value!r} is out of the rack's duration range")
    return _format_go_duration(ns)


def _check_duration_string(value: str, name: str) -> str:
    if _GO_DURATION.fullmatch(value) is None:
        if _GO_DURATION_BARE_NUMBER.fullmatch(value) is not None:
            raise ConvoxInputError(
                f"invalid {name} {value!r}: a duration string needs a unit, e.g. '90s', '2m' or"
                " '1h30m' (the rack answers 'time: missing unit in duration'); pass a number to"
                " mean seconds"
            )
        raise ConvoxInputError(
            f"invalid {name} {value!r}: not a Go duration; use e.g. '90s', '500ms', '1h30m'"
            " (units ns, us, ms, s, m, h)"
        )
    total = 0
    for whole, fraction, unit in _GO_DURATION_PART.findall(value):
        unit_ns = _GO_UNIT_NS[unit]
        total += int(whole or "0") * unit_ns
        if fraction:
            total += int(fraction) * unit_ns // 10 ** len(fraction)
    if total > (2**63 if value.startswith("-") else _INT64_MAX):
        raise ConvoxInputError(f"invalid {name} {value!r}: out of the rack's duration range")
    return value


def _format_go_duration(ns: int) -> str:
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = -ns if ns < 0 else ns
    if u < 1_000:
        return f"{sign}{u}ns"
    if u < 1_000_000:
        return f"{sign}{_decimal(u, 3)}us"
    if u < _NS_PER_SECOND:
        return f"{sign}{_decimal(u, 6)}ms"
    seconds = u // _NS_PER_SECOND
    text = f"{seconds % 60}{_fraction(u % _NS_PER_SECOND, 9)}s"
    minutes = seconds // 60
    if minutes:
        text = f"{minutes % 60}m{text}"
        hours = minutes // 60
        if hours:
            text = f"{hours}h{text}"
    return sign + text


def _decimal(value: int, precision: int) -> str:
    whole, fraction = divmod(value, 10**precision)
    return f"{whole}{_fraction(fraction, precision)}"


def _fraction(fraction: int, precision: int) -> str:
    if not fraction:
        return ""
    return "." + f"{fraction:0{precision}d}".rstrip("0")


def encode_time(value: datetime, *, name: str = "time") -> str:
    """``YYYYMMDD.HHMMSS.nnnnnnnnn`` in UTC; a naive datetime is taken to be UTC already."""
    if not isinstance(value, datetime):
        raise ConvoxInputError(f"invalid {name}: expected a datetime, got {_type_name(value)}")
    if value.utcoffset() is not None:
        value = value.astimezone(timezone.utc)
    return (
        f"{value.year:04d}{value.month:02d}{value.day:02d}."
        f"{value.hour:02d}{value.minute:02d}{value.second:02d}.{value.microsecond:06d}000"
    )


# --- lists and maps (§2.2) --------------------------------------------------------------------


def _require_collection(items: object, name: str, what: str) -> None:
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise ConvoxInputError(
            f"invalid {name}: expected {what}, got {_type_name(items)}"
            + (" (wrap a single item in a list)" if isinstance(items, str) else "")
        )


def encode_list(items: Iterable[str], *, name: str) -> str:
    """Items joined by ``,``; the rack splits on every comma.

    Items must be non-empty strings without commas. An empty list is rejected: the rack would
    read ``""`` as one empty item, so omit the field instead.
    """
    _require_collection(items, name, "a list of strings")
    values = list(items)
    if not values:
        raise ConvoxInputError(
            f"invalid {name}: an empty list cannot be sent (the rack would read one empty item);"
            " omit the field instead"
        )
    for index, item in enumerate(values):
        if not isinstance(item, str):
            raise ConvoxInputError(
                f"invalid {name}: item {index} must be a str, got {_type_name(item)}"
            )
        if not item:
            raise ConvoxInputError(f"invalid {name}: item {index} is empty")
        if "," in item:
            raise ConvoxInputError(
                f"invalid {name}: item {index} contains ',' (the rack splits the list on every"
                " comma)"
            )
    return ",".join(values)


def encode_map(values: Mapping[str, str], *, name: str) -> str:
    """The inner query string ``K=V&K2=V2`` (keys sorted) of a map parameter.

    Put the result in ONE form field, which the form encoder url-encodes again
    (``parameters=BuildCpu%3D512%26BuildMem%3D1024``), or use it as a header value as-is
    (``Environment: COLOR=blue+green&FOO=bar``). The bracket style ``name[K]=V`` is silently
    ignored by the rack. Keys must be non-empty strings, values strings.
    """
    if not isinstance(values, Mapping):
        raise ConvoxInputError(f"invalid {name}: expected a mapping, got {_type_name(values)}")
    for key, value in values.items():
        if not isinstance(key, str) or not key:
            raise ConvoxInputError(f"invalid {name}: keys must be non-empty strings, got {key!r}")
        if not isinstance(value, str):
            raise ConvoxInputError(
                f"invalid {name}: the value of {key!r} must be a str, got {_type_name(value)}"
            )
    return urlencode(sorted(values.items()))


def encode_build_args(args: Mapping[str, str] | Iterable[str]) -> str:
    """``K=V,K2=V2`` for the ``build-args`` parameter (§4.3).

    Accepts a mapping or ``"K=V"`` strings. The builder splits its command line shell-style, so
    keys and values cannot contain commas, whitespace, quotes or backslashes; keys must be
    non-empty and cannot contain ``=``. Messages name the key, never the value.
    """
    pairs: list[tuple[str, str]] = []
    if isinstance(args, Mapping):
        for key, value in args.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ConvoxInputError(
                    f"invalid build args: keys and values must be str, got {_type_name(key)}"
                    f" key {key!r} with a {_type_name(value)} value"
                )
            if "=" in key:
                raise ConvoxInputError(f"invalid build arg {key!r}: keys cannot contain '='")
            pairs.append((key, value))
    else:
        _require_collection(args, "build args", "a mapping or KEY=VALUE strings")
        pairs.extend(_split_assignments(args, "build args: item"))
    if not pairs:
        raise ConvoxInputError("invalid build args: none given; omit the field instead")
    for key, value in pairs:
        if not key:
            raise ConvoxInputError("invalid build args: a key is empty")
        if _BUILD_ARG_BAD.search(key):
            raise ConvoxInputError(
                f"invalid build arg {key!r}: keys cannot contain commas, whitespace, quotes,"
                " backslashes or control characters"
            )
        if _BUILD_ARG_BAD.search(value):
            raise ConvoxInputError(
                f"invalid build arg {key!r}: its value contains a comma, whitespace, a quote, a"
                " backslash or a control character, which the builder's shell-style command line"
                " cannot carry (docs/rack-api.md §4.3)"
            )
    return ",".join(f"{key}={value}" for key, value in pairs)


# --- path segments (§2.5) ---------------------------------------------------------------------


def segment(value: str, *, kind: str) -> str:
    """Validate one path segment (app, build id, release id, service, process id, …) and
    percent-escape it so it can never change the route.

    Rejected: empty or blank, ``.`` or ``..`` (httpx would resolve them), and ``/``, ``\\``,
    whitespace, control characters, ``?``, ``#`` or ``%`` anywhere. ``kind`` names the value in
    the message (``"app name"``, ``"build id"``).
    """
    if type(value) is str and _SEGMENT_PLAIN.fullmatch(value) and value not in (".", ".."):
        return value  # nothing to reject or escape: the common case, kept cheap
    if not isinstance(value, str):
        raise ConvoxInputError(f"invalid {kind}: expected a str, got {_type_name(value)}")
    if not value or value.isspace():
        raise ConvoxInputError(f"invalid {kind} {value!r}: {kind}s cannot be empty")
    if value in (".", ".."):
        raise ConvoxInputError(f"invalid {kind} {value!r}: {kind}s cannot be '.' or '..'")
    bad = _SEGMENT_BAD.search(value)
    if bad is not None:
        raise ConvoxInputError(
            f"invalid {kind} {value!r}: {kind}s cannot contain {_describe_char(bad.group())}"
        )
    return quote(value, safe=_PCHAR_SAFE)


def object_key(key: str) -> str:
    """Validate an object-store key and percent-escape each of its ``/``-separated segments.

    One leading ``/`` is dropped (the rack strips it too). Rejected: an empty key, empty segments
    (``a//b``, a trailing ``/``), ``.`` or ``..`` segments (the rack cleans the path and refuses
    ``..`` with 400 ``invalid object key``), whitespace, control characters, ``?`` and ``#``.
    """
    if not isinstance(key, str):
        raise ConvoxInputError(f"invalid object key: expected a str, got {_type_name(key)}")
    if key.startswith("/"):
        key = key[1:]
    if not key:
        raise ConvoxInputError("invalid object key '': object keys cannot be empty")
    bad = _OBJECT_KEY_BAD.search(key)
    if bad is not None:
        raise ConvoxInputError(
            f"invalid object key {key!r}: object keys cannot contain {_describe_char(bad.group())}"
        )
    parts = key.split("/")
    for part in parts:
        if not part:
            raise ConvoxInputError(
                f"invalid object key {key!r}: object keys cannot contain empty segments"
                " ('//' or a trailing '/')"
            )
        if part in (".", ".."):
            raise ConvoxInputError(
                f"invalid object key {key!r}: object keys cannot contain '.' or '..' segments"
            )
    return "/".join(quote(part, safe=_PCHAR_SAFE) for part in parts)


def validate_app_name(name: str) -> None:
    """Check a NEW app's name: ``^[a-z][a-z0-9-]*$`` and not ``rack`` or ``system``.

    Only for app creation; routes on existing apps use :func:`segment`.
    """
    if not isinstance(name, str):
        raise ConvoxInputError(f"invalid app name: expected a str, got {_type_name(name)}")
    if _APP_NAME.fullmatch(name) is None:
        raise ConvoxInputError(
            f"invalid app name {name!r}: app names must start with a lowercase letter and"
            " contain only lowercase letters, digits and '-'"
        )
    if name in _RESERVED_APP_NAMES:
        raise ConvoxInputError(
            f"invalid app name {name!r}: the name is reserved by the rack; choose another"
        )


# --- environment (§5.3, §8 item 6) ------------------------------------------------------------


def parse_env(text: str) -> dict[str, str]:
    """Parse a release's ``env`` exactly as the rack does.

    Lines are split on ``\\n`` only (``\\x85``, U+2028 and friends are ordinary characters) and
    lose one trailing ``\\r``; each line is split at its first ``=``; the key is trimmed of Go's
    whitespace set, the value kept verbatim; lines without ``=`` or with an empty key are dropped;
    the last duplicate wins; ``#`` is not special. A line of 65536 bytes or more makes the rack's
    parser fail, and this one too (the message gives its line number, not its content).
    """
    env: dict[str, str] = {}
    for number, raw in enumerate(text.split("\n"), start=1):
        if len(raw) > _ENV_LINE_SAFE_CHARS:
            size = len(raw.encode("utf-8", "surrogatepass"))
            if size > ENV_LINE_MAX_BYTES:
                raise ConvoxInputError(
                    f"environment line {number} is {size} bytes; the rack cannot parse lines of"
                    f" more than {ENV_LINE_MAX_BYTES} bytes"
                )
        key, sep, value = (raw[:-1] if raw.endswith("\r") else raw).partition("=")
        if sep:
            key = key.strip(_GO_SPACE)
            if key:
                env[key] = value
    return env


def validate_env_key(key: object) -> None:
    """Reject keys the rack cannot round-trip: non-str, empty, containing ``=``, whitespace or
    control characters (including ``\\x7f``)."""
    problem = _env_key_problem(key)
    if problem is not None:
        raise ConvoxInputError(f"invalid environment key {key!r}: {problem}")


def validate_env_value(key: str, value: object) -> None:
    """Reject a value the rack cannot store under ``key``: non-str, containing ``\\n``, ``\\r`` or
    NUL, or making the ``KEY=VALUE`` line longer than :data:`ENV_LINE_MAX_BYTES`.

    The message names the key and the problem, never the value.
    """
    problem = _env_value_problem(key, value)
    if problem is not None:
        raise ConvoxInputError(f"invalid environment value for {key!r}: {problem}")


def validate_env(env: Mapping[str, str]) -> None:
    """Check every key and value; raise ONE error listing every bad key and its problem.

    Values never appear in the message.
    """
    if not isinstance(env, Mapping):
        raise ConvoxInputError(f"invalid environment: expected a mapping, got {_type_name(env)}")
    problems: list[str] = []
    for key, value in env.items():
        problem = _env_key_problem(key)
        if problem is None:
            problem = _env_value_problem(key, value)
            if problem is not None:
                problem = f"value {problem}"
        if problem is not None:
            problems.append(f"{key!r}: {problem}")
    if problems:
        noun = "key" if len(problems) == 1 else "keys"
        raise ConvoxInputError(
            f"invalid environment ({len(problems)} bad {noun}): " + "; ".join(problems)
        )


def _env_key_problem(key: object) -> str | None:
    if not isinstance(key, str):
        return f"keys must be str, not {_type_name(key)}"
    if not key:
        return "keys cannot be empty (the rack drops the line)"
    bad = _ENV_KEY_BAD.search(key)
    if bad is None:
        return None
    char = bad.group()
    if char == "=":
        return "keys cannot contain '=' (the rack splits each line at its first '=')"
    return f"keys cannot contain {_describe_char(char)}"


def _env_value_problem(key: str, value: object) -> str | None:
    if not isinstance(value, str):
        return f"must be a str, not {_type_name(value)}"
    bad = _ENV_VALUE_BAD.search(value)
    if bad is not None:
        if bad.group() == "\x00":
            return "contains a NUL character, which no process environment can hold"
        return "contains a line break; the rack's environment is one KEY=VALUE per line"
    if len(key) + 1 + len(value) > _ENV_LINE_SAFE_CHARS:
        size = len(key.encode("utf-8", "surrogatepass")) + 1
        size += len(value.encode("utf-8", "surrogatepass"))
        if size > ENV_LINE_MAX_BYTES:
            return (
                f"makes the line {size} bytes long; the rack cannot parse lines of more than"
                f" {ENV_LINE_MAX_BYTES} bytes"
            )
    return None


def render_env(env: Mapping[str, str]) -> str:
    """The ``env`` string for release creation, as the CLI writes it: ``KEY=VALUE`` lines sorted
    lexicographically, joined by ``\\n``, no trailing newline. Validates with :func:`validate_env`
    first, so ``parse_env(render_env(env)) == env``."""
    validate_env(env)
    return "\n".join(sorted(f"{key}={value}" for key, value in env.items()))


def parse_env_assignments(items: Iterable[str]) -> dict[str, str]:
    """Turn CLI-style ``KEY=VALUE`` strings into a dict (split at the first ``=``, last wins).

    Items without ``=`` are rejected (by position: the item may be a mistyped secret). Keys and
    values are not validated here; :func:`render_env` does that.
    """
    _require_collection(items, "environment assignments", "KEY=VALUE strings")
    return dict(_split_assignments(items, "environment assignment"))


def _split_assignments(items: Iterable[object], label: str) -> Iterator[tuple[str, str]]:
    """``(key, value)`` of each ``KEY=VALUE`` str, split at the first ``=``. An item of another
    type or without ``=`` is refused by its position (``invalid {label} {index}: …``), never by
    its text, which may be a mistyped secret."""
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise ConvoxInputError(
                f"invalid {label} {index}: expected a KEY=VALUE str, got {_type_name(item)}"
            )
        key, sep, value = item.partition("=")
        if not sep:
            raise ConvoxInputError(f"invalid {label} {index}: it has no '='; expected KEY=VALUE")
        yield key, value


# --- request fields and headers ---------------------------------------------------------------


class Fields:
    """An ordered builder of ``(name, value)`` string pairs for form fields, queries or headers.

    ``None`` values are skipped (the rack then uses its default); booleans become
    ``true``/``false``, ints base-10 digits, strings stay as they are. Anything else must go
    through a typed method (:meth:`add_duration`, :meth:`add_time`, :meth:`add_list`,
    :meth:`add_map`). A name can be added once: the rack reads only the first value of a repeated
    key. ``repr()`` shows names only, since values may be secrets.
    """

    __slots__ = ("_items", "_names")

    def __init__(self) -> None:
        self._items: list[tuple[str, str]] = []
        self._names: set[str] = set()

    def _append(self, name: str, value: str) -> Fields:
        if name in self._names:
            raise ConvoxInputError(
                f"field {name!r} given twice; the rack reads only the first value"
            )
        self._names.add(name)
        self._items.append((name, value))
        return self

    def _check_name(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ConvoxInputError(f"field names must be non-empty strings, got {name!r}")

    def add(self, name: str, value: str | bool | int | None) -> Fields:
        """Add a string, bool or int; skip ``None``."""
        self._check_name(name)
        if value is None:
            return self
        if isinstance(value, str):
            return self._append(name, value if type(value) is str else str.__str__(value))
        if isinstance(value, bool):
            return self._append(name, "true" if value else "false")
        if isinstance(value, int):
            return self._append(name, encode_int(value, name=name))
        raise ConvoxInputError(
            f"invalid {name}: {_type_name(value)} values need an explicit encoding"
            " (add_duration, add_time, add_list or add_map)"
        )

    def add_duration(self, name: str, value: timedelta | int | float | str | None) -> Fields:
        """Add a Go duration (see :func:`encode_duration`); skip ``None``."""
        self._check_name(name)
        if value is None:
            return self
        return self._append(name, encode_duration(value, name=name))

    def add_time(self, name: str, value: datetime | None) -> Fields:
        """Add a time in the rack's ``YYYYMMDD.HHMMSS.nnnnnnnnn`` form; skip ``None``."""
        self._check_name(name)
        if value is None:
            return self
        return self._append(name, encode_time(value, name=name))

    def add_list(self, name: str, items: Iterable[str] | None) -> Fields:
        """Add a comma-joined list (see :func:`encode_list`); skip ``None``."""
        self._check_name(name)
        if items is None:
            return self
        return self._append(name, encode_list(items, name=name))

    def add_map(self, name: str, values: Mapping[str, str] | None) -> Fields:
        """Add a map as one field holding its inner query string (see :func:`encode_map`);
        skip ``None``. An empty mapping is sent as ``""``."""
        self._check_name(name)
        if values is None:
            return self
        return self._append(name, encode_map(values, name=name))

    def items(self) -> list[tuple[str, str]]:
        """The pairs in insertion order (a new list)."""
        return list(self._items)

    def header_items(self) -> list[tuple[bytes, bytes]]:
        """The pairs as HTTP header bytes: values in UTF-8 (httpx would refuse non-ASCII text).

        Rejects names that are not HTTP tokens and values containing ``\\r``, ``\\n`` or NUL
        (header values are single lines, §6.2); the message names the header, not the value.
        """
        out: list[tuple[bytes, bytes]] = []
        for name, value in self._items:
            if _HEADER_NAME.fullmatch(name) is None:
                raise ConvoxInputError(f"invalid header name {name!r}")
            if _HEADER_VALUE_BAD.search(value):
                raise ConvoxInputError(
                    f"invalid header {name}: header values cannot contain line breaks or NUL"
                    " characters"
                )
            out.append((name.encode("ascii"), value.encode("utf-8")))
        return out

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Fields({[name for name, _ in self._items]!r})"
