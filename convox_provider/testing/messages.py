"""Requests as the rack's option parser sees them, and responses as its handlers write them.

Option lookup follows stdapi (docs/rack-api.md §2.1): ``param`` reads the url-encoded or multipart
body of POST/PUT/PATCH (body wins) and then the query; ``query`` reads only the query; ``header``
reads only headers; only the first value of a repeated key counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .encoding import (
    parse_bool,
    parse_duration_ns,
    parse_int,
    parse_query,
    parse_sortable_time,
    render_error_json,
    render_json,
)
from .errors import RackError

__all__ = ["Request", "Response"]


@dataclass
class Request:
    """One parsed HTTP request."""

    method: str
    path: str
    query_string: str
    headers: list[tuple[str, str]]
    body_form: dict[str, list[str]] = field(default_factory=dict)
    body_path: Path | None = None
    params: dict[str, str] = field(default_factory=dict)
    request_id: str = ""
    role: str = ""
    query: dict[str, list[str]] = field(init=False)

    def __post_init__(self) -> None:
        self.query = parse_query(self.query_string)[0]

    def header(self, name: str) -> str | None:
        """First value of a header, or None when absent (names are case-insensitive)."""
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)

    def header_values(self, name: str) -> list[str]:
        """All values of a header."""
        lowered = name.lower()
        return [v for k, v in self.headers if k.lower() == lowered]

    def param(self, name: str) -> str | None:
        """A ``param`` option: body first, then query; None when absent."""
        values = self.body_form.get(name) or self.query.get(name)
        return values[0] if values else None

    def query_param(self, name: str) -> str | None:
        """A ``query`` option."""
        values = self.query.get(name)
        return values[0] if values else None

    def value(self, name: str) -> str:
        """stdapi ``Context.Value``: non-empty form value, else non-empty header, else ``""``."""
        return self.param(name) or self.header(name) or ""

    def accepts_json(self) -> bool:
        """Whether any media type in ``Accept`` is exactly ``application/json`` (§3.2)."""
        for part in (self.header("Accept") or "").split(","):
            if part.split(";", 1)[0].strip() == "application/json":
                return True
        return False

    # Typed option readers (stdapi unmarshalValue rules, §2.2).

    @staticmethod
    def as_bool(raw: str | None) -> bool | None:
        """Bool option: only lowercase ``true`` is true."""
        return None if raw is None else parse_bool(raw)

    @staticmethod
    def as_int(raw: str | None, func: str = "strconv.Atoi") -> int | None:
        """Int option: parse failures are 500 with strconv's message."""
        return None if raw is None else parse_int(raw, func)

    @staticmethod
    def as_duration(raw: str | None) -> int | None:
        """Duration option in nanoseconds (Go syntax)."""
        return None if raw is None else parse_duration_ns(raw)

    @staticmethod
    def as_time(raw: str | None) -> int | None:
        """Time option (``20060102.150405.000000000``) in epoch nanoseconds."""
        return None if raw is None else parse_sortable_time(raw)

    @staticmethod
    def as_map(raw: str | None) -> dict[str, str] | None:
        """Map option: one field holding an url-encoded query string; bad encoding -> 500."""
        if raw is None:
            return None
        values, error = parse_query(raw)
        if error is not None:
            raise RackError(500, error)
        return {key: items[0] for key, items in values.items()}

    @staticmethod
    def as_list(raw: str | None) -> list[str] | None:
        """List option: one value split on every comma."""
        return None if raw is None else raw.split(",")


@dataclass
class Response:
    """A response: a body in memory, or a file streamed in chunks."""

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    file: Path | None = None
    delete_file: bool = False

    @classmethod
    def json(cls, value: object, status: int = 200) -> Response:
        """Pretty-printed JSON with a trailing newline (stdapi RenderJSON)."""
        return cls(
            status=status, headers=[("Content-Type", "application/json")], body=render_json(value)
        )

    @classmethod
    def ok(cls) -> Response:
        """The ``ok\\n`` of action routes (content type sniffed as text/plain)."""
        return cls(headers=[("Content-Type", "text/plain; charset=utf-8")], body=b"ok\n")

    @classmethod
    def error(cls, request: Request, status: int, message: str) -> Response:
        """Error body negotiated on ``Accept`` (§3.2)."""
        if request.accepts_json():
            return cls(
                status=status,
                headers=[("Content-Type", "application/json")],
                body=render_error_json(message),
            )
        return cls(
            status=status,
            headers=[
                ("Content-Type", "text/plain; charset=utf-8"),
                ("X-Content-Type-Options", "nosniff"),
            ],
            body=(message + "\n").encode(),
        )

    def header(self, name: str) -> str | None:
        """First value of a response header."""
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)

    def set_header(self, name: str, value: str) -> None:
        """Replace a header."""
        lowered = name.lower()
        self.headers = [(k, v) for k, v in self.headers if k.lower() != lowered]
        self.headers.append((name, value))
