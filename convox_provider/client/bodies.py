"""Raw request bodies (docs/rack-api.md §2.4): the file chunker, and what each driver accepts.

A route leaves a raw body as the caller gave it, except that bytes-like data becomes ``bytes``
and a file (a path or a binary file object) becomes :class:`FileChunks`; chunks produced by
blocking code on this machine (a file, an archive being packed) are wrapped in
:class:`LocalChunks`. The driver that sends the call then checks and adapts the body
(:func:`sync_body`, :func:`async_body`): the async driver reads :class:`LocalChunks` in a worker
thread, so its event loop never waits on the disk. Routes never ask which driver runs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import IO, Any, TypeAlias

from convox_provider.client.effects import Body
from convox_provider.client.errors import ConvoxInputError

__all__ = [
    "FILE_CHUNK_SIZE",
    "FileChunks",
    "FileSource",
    "InThread",
    "LocalChunks",
    "async_body",
    "file_body",
    "raw_body",
    "sync_body",
]

FILE_CHUNK_SIZE = 1024 * 1024
"""Bytes read from a file per chunk of a request body."""

FileSource: TypeAlias = str | os.PathLike[str] | IO[bytes]
"""A file to send as a raw body: its path, or a binary file object open for reading."""


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


class LocalChunks:
    """Chunks made by blocking code on this machine (a file read, an archive being packed).

    The sync driver iterates ``chunks`` as they are sent; the async driver advances them in a
    worker thread (:class:`InThread`). Re-iterable when ``chunks`` is.
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)


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


def raw_body(data: object) -> Any:
    """A raw request body as given: bytes-like data as ``bytes``, anything else unchanged (the
    driver checks it, see :func:`sync_body` and :func:`async_body`)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    return data


def file_body(data: object) -> Any:
    """:func:`raw_body`, plus a file: a path (``str`` or ``os.PathLike``) or a binary file
    object, read in chunks of :data:`FILE_CHUNK_SIZE` bytes as it is sent (by a worker thread
    on the async client)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, (str, os.PathLike)) or callable(getattr(data, "read", None)):
        return LocalChunks(FileChunks(data))  # type: ignore[arg-type]  # duck-typed file object
    return data


def sync_body(content: object) -> Body:
    """The body the sync driver sends: ``bytes``, or an iterable of ``bytes`` chunks."""
    if content is None or isinstance(content, bytes):
        return content
    if isinstance(content, LocalChunks):
        return content.chunks
    if isinstance(content, Iterable) and not isinstance(content, str):
        return content
    raise _refused("sync", "an iterable", content)


def async_body(content: object) -> Body:
    """The body the async driver sends: ``bytes``, or an async iterable of ``bytes`` chunks
    (streamed with chunked transfer encoding, never held whole)."""
    if content is None or isinstance(content, bytes):
        return content
    if isinstance(content, LocalChunks):
        return InThread(content.chunks)
    if isinstance(content, AsyncIterable):
        return content
    raise _refused("async", "an async iterable", content)


def _refused(kind: str, chunks: str, data: object) -> ConvoxInputError:
    return ConvoxInputError(
        f"invalid request body: the {kind} client takes bytes or {chunks} of bytes,"
        f" got {type(data).__name__}"
    )
