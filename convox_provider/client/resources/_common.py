"""What every route module shares: path building, field packing, raw bodies, file bodies and
downloads, long timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import IO, Any, TypeAlias, TypeVar

import httpx
from pydantic import TypeAdapter

from convox_provider.client.encoding import Fields, segment
from convox_provider.client.errors import ConvoxInputError
from convox_provider.client.models import ConvoxModel
from convox_provider.client.operation import Body, Call, Flow, Pairs, Resource, call, parse_list
from convox_provider.client.transport import AsyncDriver

__all__ = [
    "FILE_CHUNK_SIZE",
    "TRANSFER_TIMEOUT",
    "Destination",
    "FileChunks",
    "FileSource",
    "Hidden",
    "InThread",
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
(convox-api.md §1.6), and build import answers only after every image was pushed, so the wait
for its first response byte can be long."""

FILE_CHUNK_SIZE = 1024 * 1024
"""Bytes read from a file per chunk of a request body."""

FileSource: TypeAlias = str | os.PathLike[str] | IO[bytes]
"""A file to send as a raw body: its path, or a binary file object open for reading."""

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


class InThread:
    """Chunks of a sync iterable, each advanced in a worker thread (for the async client).

    Re-iterable when the iterable is (like :class:`FileChunks`), so a resent request sends
    the whole body again.
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._run()

    async def _run(self) -> AsyncIterator[bytes]:
        iterator = iter(self._chunks)
        try:
            while True:
                chunk = await asyncio.to_thread(next, iterator, None)
                if chunk is None:
                    return
                yield chunk
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                with contextlib.suppress(ValueError):  # still running in its thread
                    close()


class FileChunks:
    """A file's contents in chunks of ``chunk_size`` bytes, never held whole.

    A path is opened afresh for every iteration. A file object is read from the position it had
    when given; when it is seekable, every iteration starts again from there (a resent request
    sends the whole file again), otherwise it can be read only once.
    """

    def __init__(self, source: FileSource, *, chunk_size: int = FILE_CHUNK_SIZE) -> None:
        self._chunk_size = chunk_size
        self._path: str | None = None
        self._file: IO[bytes] | None = None
        self._start: int | None = None
        self._used = False
        if isinstance(source, (str, os.PathLike)):
            path = os.fspath(source)
            if not os.path.isfile(path):
                raise ConvoxInputError(f"invalid request body: {path!r} is not a file")
            self._path = path
            return
        if isinstance(source, io.TextIOBase) or not callable(getattr(source, "read", None)):
            raise ConvoxInputError(
                f"invalid request body: expected a binary file open for reading, got"
                f" {type(source).__name__}"
            )
        self._file = source
        with contextlib.suppress(OSError, ValueError, AttributeError):
            if source.seekable():
                self._start = source.tell()

    def __iter__(self) -> Iterator[bytes]:
        if self._path is not None:
            return self._read_path(self._path)
        assert self._file is not None
        if self._start is not None:
            self._file.seek(self._start)
        elif self._used:
            raise ConvoxInputError(
                "the request body is an unseekable file that was already read: it cannot be"
                " sent again"
            )
        self._used = True
        return self._read(self._file)

    def _read_path(self, path: str) -> Iterator[bytes]:
        with open(path, "rb") as file:
            yield from self._read(file)

    def _read(self, file: IO[bytes]) -> Iterator[bytes]:
        while chunk := file.read(self._chunk_size):
            if not isinstance(chunk, bytes):
                raise ConvoxInputError(
                    f"invalid request body: the file gave {type(chunk).__name__}, not bytes"
                )
            yield chunk


def file_body(resource: Resource[Any], data: object) -> Body:
    """:func:`raw_body`, plus a file: a path (``str`` or ``os.PathLike``) or a binary file
    object, read in chunks of :data:`FILE_CHUNK_SIZE` bytes as it is sent (by a worker thread
    on the async client, so its event loop never waits on the disk)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, (str, os.PathLike)) or callable(getattr(data, "read", None)):
        chunks = FileChunks(data)  # type: ignore[arg-type]  # duck-typed file object
        return InThread(chunks) if isinstance(resource._driver, AsyncDriver) else chunks
    return raw_body(resource, data)


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
