"""The parts of ``convox.yml`` the emulated rack needs, read with a small YAML-subset reader.

Supported YAML: block mappings and sequences, plain/quoted scalars, ``#`` comments, flow
sequences/mappings (``[a, b]``, ``{k: v}``) and block scalars (``|``, ``>``). Anchors, tags,
multi-document files and ``${VAR}`` interpolation are not supported (interpolation markers are
kept verbatim).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .errors import RackError

__all__ = ["Manifest", "ManifestError", "ManifestService", "load_manifest"]

DEFAULT_CPU = 250
DEFAULT_MEMORY = 512


class ManifestError(ValueError):
    """The manifest is not valid YAML or not a valid convox.yml."""


@dataclass(frozen=True)
class ManifestService:
    """One service of the manifest with the rack's defaults applied."""

    name: str
    command: str = ""
    image: str = ""
    port: int | None = None
    port_scheme: str = "http"
    internal: bool = False
    agent: bool = False
    environment: tuple[str, ...] = ()
    count_min: int = 1
    count_max: int = 1
    cpu: int = DEFAULT_CPU
    memory: int = DEFAULT_MEMORY
    autoscale: bool = False


@dataclass(frozen=True)
class Manifest:
    """A parsed ``convox.yml``."""

    services: tuple[ManifestService, ...] = ()
    environment: tuple[str, ...] = ()
    resources: tuple[tuple[str, str], ...] = ()
    timers: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)

    def service(self, name: str) -> ManifestService | None:
        """The service called ``name``, if declared."""
        return next((s for s in self.services if s.name == name), None)

    def service_environment(self, name: str, env: dict[str, str]) -> dict[str, str]:
        """Variables that reach ``name``'s containers; missing required ones -> 500 (§5.3)."""
        service = self.service(name)
        declared = [*self.environment, *(service.environment if service else ())]
        result: dict[str, str] = {}
        missing: list[str] = []
        for entry in declared:
            key, sep, default = entry.partition("=")
            if not sep:
                if key == "*":
                    result.update(env)
                elif key in env:
                    result[key] = env[key]
                else:
                    missing.append(key)
                    result[key] = ""
            else:
                result[key] = env.get(key, default)
        if missing:
            raise RackError(500, "required env: " + ", ".join(sorted(set(missing))))
        return result


def load_manifest(text: str) -> Manifest:
    """Parse manifest text; raises ``ManifestError`` with a yaml-style message."""
    data = parse_yaml(text)
    if data is None:
        return Manifest()
    if not isinstance(data, dict):
        raise ManifestError("yaml: manifest must be a mapping")
    services = []
    raw_services = data.get("services") or {}
    if not isinstance(raw_services, dict):
        raise ManifestError("yaml: services must be a mapping")
    for name, spec in raw_services.items():
        services.append(_service(str(name), spec if isinstance(spec, dict) else {}))
    resources = []
    raw_resources = data.get("resources") or {}
    if isinstance(raw_resources, dict):
        for name, spec in raw_resources.items():
            kind = spec.get("type", "") if isinstance(spec, dict) else ""
            resources.append((str(name), str(kind)))
    timers = (
        tuple(str(t) for t in (data.get("timers") or {}))
        if isinstance(data.get("timers"), dict)
        else ()
    )
    return Manifest(
        services=tuple(sorted(services, key=lambda s: s.name)),
        environment=_string_list(data.get("environment")),
        resources=tuple(sorted(resources)),
        timers=timers,
        raw=data,
    )


def _string_list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list):
        return tuple(_scalar_text(v) for v in value)
    if isinstance(value, dict):
        return tuple(f"{k}={_scalar_text(v)}" for k, v in value.items())
    return (_scalar_text(value),)


def _scalar_text(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return ""
    return str(value)


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise ManifestError(f"yaml: invalid {what}: {value}")
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError as exc:
        raise ManifestError(f"yaml: invalid {what}: {value}") from exc


def _service(name: str, spec: dict[str, Any]) -> ManifestService:
    port: int | None = None
    scheme = "http"
    raw_port = spec.get("port")
    if isinstance(raw_port, dict):
        scheme = str(raw_port.get("scheme", "http"))
        raw_port = raw_port.get("port")
    if raw_port is not None:
        text = str(raw_port)
        if ":" in text:
            scheme, _, text = text.partition(":")
        port = _int(text, "port")
    scale = spec.get("scale") if isinstance(spec.get("scale"), dict) else {}
    assert isinstance(scale, dict)
    count_min = count_max = 1
    count = scale.get("count")
    if count is not None:
        text = str(count)
        if "-" in text:
            low, _, high = text.partition("-")
            count_min, count_max = _int(low, "count"), _int(high, "count")
        else:
            count_min = count_max = _int(text, "count")
    if "min" in scale:
        count_min = _int(scale["min"], "min")
    if "max" in scale:
        count_max = _int(scale["max"], "max")
    command = spec.get("command", "")
    agent = spec.get("agent")
    return ManifestService(
        name=name,
        command=" ".join(str(c) for c in command)
        if isinstance(command, list)
        else _scalar_text(command),
        image=_scalar_text(spec.get("image", "")),
        port=port,
        port_scheme=scheme,
        internal=spec.get("internal") is True,
        agent=agent is True or (isinstance(agent, dict) and agent.get("enabled") is True),
        environment=_string_list(spec.get("environment")),
        count_min=count_min,
        count_max=count_max,
        cpu=_int(scale.get("cpu", DEFAULT_CPU), "cpu"),
        memory=_int(scale.get("memory", DEFAULT_MEMORY), "memory"),
        autoscale=isinstance(scale.get("targets"), dict) or count_max > count_min,
    )


# --- YAML subset -------------------------------------------------------------------------------


@dataclass
class _Line:
    number: int
    indent: int
    text: str


def parse_yaml(text: str) -> Any:
    """Parse the YAML subset described in the module docstring."""
    lines: list[_Line] = []
    raw_lines = text.replace("\r\n", "\n").split("\n")
    for number, raw in enumerate(raw_lines, start=1):
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise ManifestError(f"yaml: line {number}: found character that cannot start any token")
        stripped = raw.strip()
        if stripped in ("---", "..."):
            continue
        lines.append(_Line(number, len(raw) - len(raw.lstrip(" ")), raw.rstrip()))
    parser = _BlockParser(lines)
    parser.skip_blank()
    if parser.done():
        return None
    value = parser.parse_node(parser.current().indent)
    parser.skip_blank()
    if not parser.done():
        line = parser.current()
        raise ManifestError(f"yaml: line {line.number}: did not find expected key")
    return value


def _is_blank(line: _Line) -> bool:
    stripped = line.text.strip()
    return stripped == "" or stripped.startswith("#")


class _BlockParser:
    def __init__(self, lines: list[_Line]) -> None:
        self.lines = lines
        self.index = 0

    def done(self) -> bool:
        return self.index >= len(self.lines)

    def current(self) -> _Line:
        return self.lines[self.index]

    def skip_blank(self) -> None:
        while not self.done() and _is_blank(self.current()):
            self.index += 1

    def parse_node(self, indent: int) -> Any:
        line = self.current()
        body = line.text[indent:]
        if body == "-" or body.startswith("- "):
            return self.parse_sequence(indent)
        return self.parse_mapping(indent)

    def parse_sequence(self, indent: int) -> list[Any]:
        items: list[Any] = []
        while True:
            self.skip_blank()
            if self.done():
                return items
            line = self.current()
            body = line.text[indent:] if line.indent == indent else ""
            if line.indent != indent or not (body == "-" or body.startswith("- ")):
                if line.indent > indent:
                    raise ManifestError(
                        f"yaml: line {line.number}: bad indentation of a sequence entry"
                    )
                return items
            rest = body[1:].lstrip(" ")
            if rest == "" or rest.startswith("#"):
                self.index += 1
                self.skip_blank()
                if self.done() or self.current().indent <= indent:
                    items.append(None)
                else:
                    items.append(self.parse_node(self.current().indent))
                continue
            item_indent = indent + (len(body) - len(rest))
            if _split_key(rest) is not None or rest.startswith("- "):
                # "- key: value" opens a mapping (or nested sequence) at the item's column.
                line.text = " " * item_indent + rest
                line.indent = item_indent
                items.append(self.parse_node(item_indent))
            else:
                self.index += 1
                items.append(self.scalar_or_block(rest, indent, line.number))
        return items

    def parse_mapping(self, indent: int) -> dict[str, Any]:
        mapping: dict[str, Any] = {}
        while True:
            self.skip_blank()
            if self.done():
                return mapping
            line = self.current()
            if line.indent < indent:
                return mapping
            if line.indent > indent:
                raise ManifestError(
                    f"yaml: line {line.number}: mapping values are not allowed in this context"
                )
            body = line.text[indent:]
            if body == "-" or body.startswith("- "):
                return mapping
            split = _split_key(body)
            if split is None:
                raise ManifestError(f"yaml: line {line.number}: could not find expected ':'")
            key, rest = split
            self.index += 1
            if rest == "" or rest.startswith("#"):
                self.skip_blank()
                if self.done():
                    mapping[key] = None
                    continue
                nxt = self.current()
                nxt_body = nxt.text[nxt.indent :]
                if nxt.indent > indent or (
                    nxt.indent == indent and (nxt_body == "-" or nxt_body.startswith("- "))
                ):
                    mapping[key] = self.parse_node(nxt.indent)
                else:
                    mapping[key] = None
            else:
                mapping[key] = self.scalar_or_block(rest, indent, line.number)

    def scalar_or_block(self, text: str, indent: int, number: int) -> Any:
        value = _strip_comment(text).strip()
        if value[:1] in ("|", ">"):
            return self.block_scalar(value, indent)
        return _parse_flow(value, number)

    def block_scalar(self, header: str, indent: int) -> str:
        folded = header.startswith(">")
        chomp = "-" if "-" in header else ("+" if "+" in header else "")
        collected: list[str] = []
        block_indent: int | None = None
        while not self.done():
            line = self.current()
            if line.text.strip() == "":
                collected.append("")
                self.index += 1
                continue
            if line.indent <= indent:
                break
            if block_indent is None:
                block_indent = line.indent
            if line.indent < block_indent:
                break
            collected.append(line.text[block_indent:])
            self.index += 1
        while collected and collected[-1] == "" and chomp != "+":
            collected.pop()
        text = " ".join(collected) if folded else "\n".join(collected)
        return text if chomp == "-" else text + "\n"


_KEY = re.compile(
    r"""^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s#'"][^:#]*?|[^\s#'"][^#]*?)\s*:(?:\s+|$)(.*)$"""
)


def _split_key(body: str) -> tuple[str, str] | None:
    if body.startswith(("[", "{")):
        return None
    match = _KEY.match(body)
    if match is None:
        return None
    key = match.group(1)
    if key[:1] in ("'", '"'):
        key = str(_parse_flow(key, 0))
    return key.strip(), match.group(2)


def _strip_comment(text: str) -> str:
    quote: str | None = None
    for index, char in enumerate(text):
        if quote:
            if char == quote:
                quote = None
        elif char in ("'", '"') and (index == 0 or text[index - 1] in " [{,:"):
            quote = char
        elif char == "#" and (index == 0 or text[index - 1] == " "):
            return text[:index]
    return text


def _parse_flow(text: str, number: int) -> Any:
    reader = _FlowReader(text, number)
    value = reader.value(top=True)
    reader.skip_space()
    if reader.pos != len(text):
        raise ManifestError(f"yaml: line {number}: did not find expected node content")
    return value


class _FlowReader:
    def __init__(self, text: str, number: int) -> None:
        self.text = text
        self.pos = 0
        self.number = number

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] == " ":
            self.pos += 1

    def error(self, message: str) -> ManifestError:
        return ManifestError(f"yaml: line {self.number}: {message}")

    def value(self, *, top: bool = False) -> Any:
        self.skip_space()
        if self.pos >= len(self.text):
            return None
        char = self.text[self.pos]
        if char == "[":
            return self.sequence()
        if char == "{":
            return self.mapping()
        if char in ("'", '"'):
            return self.quoted()
        stop = "" if top else ",]}"
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in stop:
            if (
                not top
                and self.text[self.pos] == ":"
                and self.text[self.pos + 1 : self.pos + 2] in (" ", "")
            ):
                break
            self.pos += 1
        return _plain(self.text[start : self.pos].strip())

    def quoted(self) -> str:
        quote = self.text[self.pos]
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if quote == "'" and char == "'":
                if self.text[self.pos + 1 : self.pos + 2] == "'":
                    out.append("'")
                    self.pos += 2
                    continue
                self.pos += 1
                return "".join(out)
            if quote == '"' and char == "\\":
                escape = self.text[self.pos + 1 : self.pos + 2]
                out.append(
                    {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "r": "\r", "0": "\0"}.get(
                        escape, escape
                    )
                )
                self.pos += 2
                continue
            if quote == '"' and char == '"':
                self.pos += 1
                return "".join(out)
            out.append(char)
            self.pos += 1
        raise self.error("found unexpected end of stream")

    def sequence(self) -> list[Any]:
        self.pos += 1
        items: list[Any] = []
        while True:
            self.skip_space()
            if self.pos >= len(self.text):
                raise self.error("did not find expected ',' or ']'")
            if self.text[self.pos] == "]":
                self.pos += 1
                return items
            items.append(self.value())
            self.skip_space()
            if self.text[self.pos : self.pos + 1] == ",":
                self.pos += 1

    def mapping(self) -> dict[str, Any]:
        self.pos += 1
        result: dict[str, Any] = {}
        while True:
            self.skip_space()
            if self.pos >= len(self.text):
                raise self.error("did not find expected ',' or '}'")
            if self.text[self.pos] == "}":
                self.pos += 1
                return result
            key = self.value()
            self.skip_space()
            value: Any = None
            if self.text[self.pos : self.pos + 1] == ":":
                self.pos += 1
                value = self.value()
            result[_scalar_text(key)] = value
            self.skip_space()
            if self.text[self.pos : self.pos + 1] == ",":
                self.pos += 1


def _plain(text: str) -> Any:
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    if re.fullmatch(r"[-+]?[0-9]+", text):
        return int(text)
    if re.fullmatch(r"[-+]?([0-9]*\.[0-9]+|[0-9]+\.[0-9]*)([eE][-+]?[0-9]+)?", text):
        return float(text)
    return text
