"""What every route module shares: path building, field packing, raw bodies, file bodies and
downloads, long timeouts. Nothing here depends on the driver that will send a call: raw bodies
are checked and adapted by the driver (:mod:`convox_provider.client.bodies`)."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Callable
from typing import IO, TypeAlias, TypeVar

import httpx
from pydantic import TypeAdapter

from convox_provider.client.bodies import FileSource, file_body, raw_body
from convox_provider.client.encoding import Fields, segment
from convox_provider.client.errors import ConvoxInputError
from convox_provider.client.models import ConvoxModel
from convox_provider.client.operation import Call, Flow, Pairs, call, parse_list

__all__ = [
    "TRANSFER_TIMEOUT",
    "Destination",
    "FileSource",
    "Hidden",
    "app_path",
    "counting",
    "download",
    "file_body",
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
(docs/rack-api.md §1.6), and build import answers only after every image was pushed, so the wait
for its first response byte can be long."""

Destination: TypeAlias = Callable[[bytes], None] | str | os.PathLike[str] | IO[bytes]
"""Where a download goes: a callable taking each chunk, a path, or a binary file object."""

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


def download(path: str, sink: object, *, timeout: float | None) -> Call[int] | Flow[int]:
    """``GET path`` streamed into ``sink`` (a :data:`Destination`); the result is the size.

    A path is written through a temporary file beside it (owner-only permissions, like the
    archive it will hold) that replaces it only once the whole body arrived: a download that
    breaks leaves any earlier file at the path as it was. A file object is written as chunks
    arrive and left open; a callable receives each chunk.
    """
    if isinstance(sink, (str, os.PathLike)):
        target = os.path.abspath(os.fspath(sink))
        if os.path.isdir(target):
            raise ConvoxInputError(f"invalid destination: {target!r} is a directory")
        if not os.path.isdir(os.path.dirname(target)):
            raise ConvoxInputError(f"invalid destination: no directory for {target!r}")
        return _download_to_path(path, target, timeout)
    write, parse = counting(_writer(sink))
    return Call("GET", path, parse, sink=write, timeout=timeout)


def _download_to_path(path: str, target: str, timeout: float | None) -> Flow[int]:
    directory, name = os.path.split(target)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as file:
            write, parse = counting(_writer(file))
            size = yield from call(Call("GET", path, parse, sink=write, timeout=timeout))
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return size


def _writer(sink: object) -> Callable[[bytes], None]:
    """``sink`` itself when callable, else a function writing whole chunks to a binary file."""
    if callable(sink):
        return sink
    write = getattr(sink, "write", None)
    if isinstance(sink, io.TextIOBase) or not callable(write):
        raise ConvoxInputError(
            "sink must be a callable taking bytes, a path or a binary file open for writing,"
            f" got {type(sink).__name__}"
        )

    def write_all(chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            written = write(view)
            if written is None:  # file-likes that write everything return nothing
                return
            view = view[written:]

    return write_all


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
