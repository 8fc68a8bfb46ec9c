"""The YAML subset ``convox.yml`` files use, read without a YAML library.

Supported: block mappings and sequences, plain/quoted scalars, ``#`` comments, flow
sequences/mappings (``[a, b]``, ``{k: v}``), block scalars (``|``, ``>``), anchors (``&name``),
aliases (``*name``) and merge keys (``<<: *name``, ``<<: [*a, *b]``), as yaml.v2 reads them
for the rack. Not supported: tags and multi-document files. Errors are ``ManifestError`` with
yaml-style messages.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["ManifestError", "parse_yaml"]

_ANCHOR = re.compile(r"&([^\s\[\]{},]+)\s*(.*)$")
_ALIAS = re.compile(r"\*([^\s\[\]{},]+)$")


class ManifestError(ValueError):
    """The manifest is not valid YAML or not a valid convox.yml."""


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
        self.anchors: dict[str, Any] = {}

    def alias(self, name: str, number: int) -> Any:
        if name not in self.anchors:
            raise ManifestError(f"yaml: line {number}: unknown anchor '{name}' referenced")
        return copy.deepcopy(self.anchors[name])

    def nested(self, indent: int, *, sequence_ok: bool) -> Any:
        """The block node under a key (or ``-``) whose value is on the following lines."""
        self.skip_blank()
        if self.done():
            return None
        nxt = self.current()
        nxt_body = nxt.text[nxt.indent :]
        is_item = nxt_body == "-" or nxt_body.startswith("- ")
        if nxt.indent > indent or (sequence_ok and nxt.indent == indent and is_item):
            return self.parse_node(nxt.indent)
        return None

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
            anchor = _ANCHOR.match(rest)
            if anchor is not None and _split_key(anchor.group(2)) is None:
                rest = anchor.group(2)
            else:
                anchor = None
            if rest == "" or rest.startswith("#"):
                self.index += 1
                self.skip_blank()
                if self.done() or self.current().indent <= indent:
                    items.append(None)
                else:
                    items.append(self.parse_node(self.current().indent))
                if anchor is not None:
                    self.anchors[anchor.group(1)] = items[-1]
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
            if anchor is not None:
                self.anchors[anchor.group(1)] = items[-1]
        return items

    def merge_sources(self, value: Any, number: int) -> list[dict[str, Any]]:
        sources = value if isinstance(value, list) else [value]
        if not all(isinstance(s, dict) for s in sources):
            raise ManifestError(f"yaml: line {number}: map merge requires map or sequence of maps")
        return sources

    def parse_mapping(self, indent: int) -> dict[str, Any]:
        mapping: dict[str, Any] = {}
        merges: list[dict[str, Any]] = []
        try:
            self._mapping_entries(indent, mapping, merges)
        finally:
            for source in merges:
                for key, value in source.items():
                    mapping.setdefault(key, value)
        return mapping

    def _mapping_entries(
        self, indent: int, mapping: dict[str, Any], merges: list[dict[str, Any]]
    ) -> None:
        while True:
            self.skip_blank()
            if self.done():
                return
            line = self.current()
            if line.indent < indent:
                return
            if line.indent > indent:
                raise ManifestError(
                    f"yaml: line {line.number}: mapping values are not allowed in this context"
                )
            body = line.text[indent:]
            if body == "-" or body.startswith("- "):
                return
            split = _split_key(body)
            if split is None:
                raise ManifestError(f"yaml: line {line.number}: could not find expected ':'")
            key, rest = split
            self.index += 1
            anchor = _ANCHOR.match(rest)
            if anchor is not None:
                rest = anchor.group(2)
            if rest == "" or rest.startswith("#"):
                value = self.nested(indent, sequence_ok=True)
            else:
                value = self.scalar_or_block(rest, indent, line.number)
            if anchor is not None:
                self.anchors[anchor.group(1)] = value
            if key == "<<":
                merges.extend(self.merge_sources(value, line.number))
            else:
                mapping[key] = value

    def scalar_or_block(self, text: str, indent: int, number: int) -> Any:
        value = _strip_comment(text).strip()
        if value[:1] in ("|", ">"):
            return self.block_scalar(value, indent)
        return _parse_flow(value, number, self)

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


def _parse_flow(text: str, number: int, block: _BlockParser | None = None) -> Any:
    reader = _FlowReader(text, number, block)
    value = reader.value(top=True)
    reader.skip_space()
    if reader.pos != len(text):
        raise ManifestError(f"yaml: line {number}: did not find expected node content")
    return value


class _FlowReader:
    def __init__(self, text: str, number: int, block: _BlockParser | None) -> None:
        self.text = text
        self.pos = 0
        self.number = number
        self.block = block

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
        if char in ("*", "&") and self.block is not None:
            return self.anchored(char, top=top)
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

    def anchored(self, char: str, *, top: bool) -> Any:
        assert self.block is not None
        start = self.pos + 1
        self.pos = start
        while self.pos < len(self.text) and self.text[self.pos] not in " ,[]{}":
            self.pos += 1
        name = self.text[start : self.pos]
        if char == "*":
            return self.block.alias(name, self.number)
        value = self.value(top=top)
        self.block.anchors[name] = value
        return value

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
        items: list[Any] = []
        self._flow("]", lambda: items.append(self.value()))
        return items

    def mapping(self) -> dict[str, Any]:
        result: dict[str, Any] = {}

        def entry() -> None:
            key = self.value()
            self.skip_space()
            value: Any = None
            if self.text[self.pos : self.pos + 1] == ":":
                self.pos += 1
                value = self.value()
            result[scalar_text(key)] = value

        self._flow("}", entry)
        return result

    def _flow(self, close: str, entry: Callable[[], None]) -> None:
        """A flow collection from its opening bracket to ``close``: ``entry`` reads each item."""
        self.pos += 1
        while True:
            self.skip_space()
            if self.pos >= len(self.text):
                raise self.error(f"did not find expected ',' or '{close}'")
            if self.text[self.pos] == close:
                self.pos += 1
                return
            entry()
            self.skip_space()
            if self.text[self.pos : self.pos + 1] == ",":
                self.pos += 1


def scalar_text(value: Any) -> str:
    """A YAML scalar as text: ``true``/``false``, ``""`` for null, else ``str(value)``."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return ""
    return str(value)


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
