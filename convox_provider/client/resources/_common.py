"""What every route module shares: path building, field packing, raw bodies, long timeouts."""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Iterable
from typing import Any, TypeVar

import httpx
from pydantic import TypeAdapter

from convox_provider.client.encoding import Fields, segment
from convox_provider.client.errors import ConvoxInputError
from convox_provider.client.models import ConvoxModel
from convox_provider.client.operation import Body, Call, Pairs, Resource, parse_list
from convox_provider.client.transport import AsyncDriver

__all__ = [
    "TRANSFER_TIMEOUT",
    "Hidden",
    "app_path",
    "counting",
    "header_pairs",
    "hidden",
    "newest_first",
    "pairs",
    "parse_strings",
    "raw_body",
    "whole_numbers",
]

TRANSFER_TIMEOUT = 3600.0
"""Seconds allowed for each read, write and pool wait of an upload, an import or a download
(connecting stays bounded by the client's timeout). The rack has no handler timeout
(convox-api.md §1.6), and build import answers only after every image was pushed, so the wait
for its first response byte can be long."""

M = TypeVar("M", bound=ConvoxModel)

_strings = TypeAdapter(list[str])


def app_path(app: str, *rest: str) -> str:
    """``/apps/<app>/<rest…>``: the app name is validated and escaped, ``rest`` must already be."""
    return "/".join(("/apps", segment(app, kind="app name"), *rest))


def newest_first(app: str, collection: str, model: type[M], limit: int | None) -> Call[list[M]]:
    """``GET /apps/<app>/<collection>?limit=…``: builds or releases, newest first (the rack
    returns 10 when ``limit`` is not given)."""
    whole_numbers(limit=limit)
    query = pairs(Fields().add("limit", limit))
    return Call("GET", app_path(app, collection), parse_list(model), query=query)


def pairs(fields: Fields) -> Pairs:
    """The fields as the tuple of pairs a :class:`~convox_provider.client.operation.Call` takes."""
    return tuple(fields.items())


class Hidden(tuple[tuple[str, str], ...]):
    """Pairs whose ``repr`` shows names only: for form fields or headers carrying secrets
    (release ``env``, the run ``Environment`` header, registry and certificate keys)."""

    def __repr__(self) -> str:
        return f"Hidden({[name for name, _ in self]!r})"


def hidden(fields: Fields) -> Pairs:
    """The fields as pairs whose values never appear in a ``repr`` of the call."""
    return Hidden(fields.items())


def header_pairs(fields: Fields, *, secret: bool = False) -> Pairs:
    """The fields as option headers, checked before anything is sent.

    Names must be HTTP tokens; values must be printable ASCII (tabs allowed): the HTTP stack
    refuses other bytes with a message that would quote the value. Messages name the header only.
    """
    fields.header_items()
    for name, value in fields.items():
        if not value.isascii() or any(
            (ord(char) < 0x20 and char != "\t") or char == "\x7f" for char in value
        ):
            raise ConvoxInputError(
                f"invalid header {name}: header values must be printable ASCII (no control or"
                " non-ASCII characters)"
            )
    return hidden(fields) if secret else pairs(fields)


def raw_body(resource: Resource[Any], data: object) -> Body:
    """Check a raw request body (convox-api.md §2.4) against the client that will send it.

    Both clients take ``bytes``; the sync client also an iterable of ``bytes`` chunks, the async
    client an async iterable of them (streamed with chunked transfer encoding, never held whole).
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    is_async = isinstance(resource._driver, AsyncDriver)
    if is_async and isinstance(data, AsyncIterable):
        return data
    if not is_async and isinstance(data, Iterable) and not isinstance(data, str):
        return data
    kind, chunks = ("async", "an async iterable") if is_async else ("sync", "an iterable")
    raise ConvoxInputError(
        f"invalid request body: the {kind} client takes bytes or {chunks} of bytes,"
        f" got {type(data).__name__}"
    )


def whole_numbers(**values: int | None) -> None:
    """Refuse a count, size, limit or timeout that is not an ``int`` or is negative (``None`` is
    left out, meaning "the rack's default")."""
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConvoxInputError(f"invalid {name}: expected an int, got {type(value).__name__}")
        if value < 0:
            raise ConvoxInputError(f"invalid {name}: {value} is negative")


def counting(
    sink: Callable[[bytes], None],
) -> tuple[Callable[[bytes], None], Callable[[httpx.Response], int]]:
    """Wrap ``sink`` to count the bytes it receives; the second function is a response parser
    returning that count."""
    if not callable(sink):
        raise ConvoxInputError(f"sink must be a callable taking bytes, got {type(sink).__name__}")
    delivered = 0

    def write(chunk: bytes) -> None:
        nonlocal delivered
        sink(chunk)
        delivered += len(chunk)

    def parse(response: httpx.Response) -> int:
        return delivered

    return write, parse


def parse_strings(response: httpx.Response) -> list[str]:
    """Parse a JSON list of strings."""
    return _strings.validate_json(response.content)
