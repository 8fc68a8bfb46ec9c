"""Relaying a build export archive from one rack into another's import, in constant memory.

The export (``GET /apps/{app}/builds/{id}.tgz``, docs/rack-api.md §4.3) arrives as a gzip tar:
``build.json`` first, then one image archive per service. :class:`ExportRelay` turns its chunks
into the body of ``POST /apps/{app}/builds/import`` on the other rack as they arrive, with no
temporary file and a bounded amount of memory (one chunk, one tar header, ``build.json``):

* ``build.json``'s ``description`` is rewritten to carry the copy's marker (the import keeps
  the description, and nothing else of the imported build can be chosen by the caller), so a
  retried copy finds its build instead of importing it twice. That means decompressing and
  compressing again, at zlib's fastest level: the image layers inside are already compressed.
* the archive is checked as it streams: a gzip stream that ends before its trailer, or a tar
  without its end-of-archive blocks, is an export that was cut (an error after the rack began
  streaming cannot change the status, the body just ends early, §3.1). The relay then raises
  before the body ends, so the import request is aborted instead of completed, and no archive
  whose end was never seen is ever sent whole.

The sync driver iterates :meth:`ExportRelay.sync_body` while it reads the export
(``SyncDriver.open_download``); the async driver iterates :meth:`ExportRelay.async_body`. Both
run the one state machine of :meth:`ExportRelay.feed` and :meth:`ExportRelay.finish`.
"""

from __future__ import annotations

import json
import tarfile
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from convox_provider.client.errors import (
    ConvoxError,
    ConvoxWaitTimeoutError,
    ConvoxWorkflowError,
    _rebuild,
)

__all__ = ["PROGRESS_EVERY", "ConvoxCopyError", "ExportRelay"]

PROGRESS_EVERY = 8 * 1024 * 1024
"""Bytes of export between two progress reports."""

_BLOCK = 512
_INFLATE_STEP = 256 * 1024
_BUILD_JSON_LIMIT = 16 * 1024 * 1024
_GZIP = 16 + zlib.MAX_WBITS


class ConvoxCopyError(ConvoxWorkflowError):
    """A build copy between racks failed; ``rack`` says on which side (``"source"`` or
    ``"target"``), and the message names that rack."""

    def __init__(self, message: str, *, rack: str) -> None:
        super().__init__(message)
        self.rack = rack

    def __reduce__(self) -> tuple[object, ...]:
        """Pickled with ``rack`` (a failure crosses processes: worker, triggerer)."""
        return (_rebuild, (type(self), self.args, {"rack": self.rack}))


def _padded(size: int) -> int:
    return -(-size // _BLOCK) * _BLOCK


class ExportRelay:
    """One export archive on its way to an import: check it, re-mark it, count it.

    :param describe: the imported build's description, from the source's.
    :param source: how the source rack is named in errors (``"source rack <host> app/build"``).
    :param timeout: seconds the whole relay may take (the copy's deadline).
    :param on_progress: receives the bytes of export received so far, every
        :data:`PROGRESS_EVERY` bytes and at the end.
    """

    def __init__(
        self,
        *,
        describe: Callable[[str], str],
        source: str,
        timeout: float,
        on_progress: Callable[[int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._describe = describe
        self.source = source
        self._clock = clock
        self._deadline = clock() + timeout
        self._timeout = timeout
        self._on_progress = on_progress
        self._inflate = zlib.decompressobj(_GZIP)
        self._deflate = zlib.compressobj(1, zlib.DEFLATED, _GZIP)
        self._pending = bytearray()
        self._skip = 0
        self._collect: tarfile.TarInfo | None = None
        self._ended = False
        self._reported = 0
        #: Bytes of export received, and of import body produced.
        self.received = 0
        self.sent = 0
        #: The source's ``build.json`` (None until it was read) and the image archives seen.
        self.build_json: dict[str, Any] | None = None
        self.images: list[str] = []

    # -- the two bodies -------------------------------------------------------------------------

    def sync_body(self, open_export: Callable[[], Iterator[bytes]]) -> Iterator[bytes]:
        """The import body for the sync driver; the export is opened on the first ``next``."""
        try:
            chunks = open_export()
            try:
                for chunk in chunks:
                    yield from self.feed(chunk)
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
            yield self.finish()
        except ConvoxError as exc:
            raise self.failure(exc) from exc

    async def async_body(self, open_export: Callable[[], Any]) -> AsyncIterator[bytes]:
        """The import body for the async driver; the export is opened on the first ``next``."""
        try:
            chunks = await open_export()
            try:
                async for chunk in chunks:
                    for piece in self.feed(chunk):
                        yield piece
            finally:
                await chunks.aclose()
            yield self.finish()
        except ConvoxError as exc:
            raise self.failure(exc) from exc

    def failure(self, exc: ConvoxError) -> ConvoxError:
        """``exc`` (from the source, or the relay's own check) as the error of the copy."""
        if isinstance(exc, (ConvoxCopyError, ConvoxWaitTimeoutError)):
            return exc
        return ConvoxCopyError(
            f"{self.source}: the export failed after {self.received} bytes ({exc}); the import"
            " was aborted before the archive ended, so nothing complete was imported",
            rack="source",
        )

    # -- the state machine ----------------------------------------------------------------------

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        """Take one chunk of the export; yield pieces of the import body."""
        if self._clock() > self._deadline:
            raise ConvoxWaitTimeoutError(
                f"gave up copying from {self.source} after {self._timeout:g}s"
                f" ({self.received} bytes of export received); the import was aborted"
            )
        self.received += len(chunk)
        data = chunk
        while data:
            if self._inflate.eof:  # a second gzip member (Go's reader is multistream)
                data = self._inflate.unused_data + data
                self._inflate = zlib.decompressobj(_GZIP)
            try:
                plain = self._inflate.decompress(data, _INFLATE_STEP)
            except zlib.error as exc:
                raise self._cut(f"it is not a gzip stream ({exc})") from None
            data = self._inflate.unconsumed_tail
            if self._inflate.eof and self._inflate.unused_data:
                data = self._inflate.unused_data + data
                self._inflate = zlib.decompressobj(_GZIP)
            out = self._tar(plain)
            if out:
                packed = self._deflate.compress(out)
                if packed:
                    self.sent += len(packed)
                    yield packed
        if self._on_progress is not None and self.received - self._reported >= PROGRESS_EVERY:
            self._reported = self.received
            self._on_progress(self.received)

    def finish(self) -> bytes:
        """The end of the import body, once the export was seen to end; else raise."""
        if not self._inflate.eof:
            raise self._cut("its gzip stream ended before its trailer")
        if not self._ended:
            raise self._cut("its tar archive has no end-of-archive blocks")
        if self.build_json is None:
            raise self._cut("it has no build.json")
        if self._on_progress is not None and self.received != self._reported:
            self._reported = self.received
            self._on_progress(self.received)
        tail = self._tar(b"") + bytes(self._pending)
        self._pending.clear()
        packed = self._deflate.compress(tail) + self._deflate.flush()
        self.sent += len(packed)
        return packed

    def _cut(self, why: str) -> ConvoxCopyError:
        return ConvoxCopyError(
            f"{self.source}: the export archive is incomplete after {self.received} bytes"
            f" ({why}); the import was aborted before the archive ended, so nothing was imported",
            rack="source",
        )

    def _tar(self, plain: bytes) -> bytes:
        """Pass tar data through, replacing ``build.json``; return what can be sent now."""
        pending = self._pending
        pending += plain
        out = bytearray()
        while pending:
            if self._ended:
                out += pending
                pending.clear()
            elif self._skip:
                take = min(self._skip, len(pending))
                out += pending[:take]
                del pending[:take]
                self._skip -= take
            elif self._collect is not None:
                need = _padded(self._collect.size)
                if len(pending) < need:
                    break
                out += self._marked(self._collect, bytes(pending[: self._collect.size]))
                del pending[:need]
                self._collect = None
            elif len(pending) >= _BLOCK:
                header = bytes(pending[:_BLOCK])
                if header == bytes(_BLOCK):
                    self._ended = True
                    continue
                try:
                    info = tarfile.TarInfo.frombuf(header, "utf-8", "surrogateescape")
                except tarfile.HeaderError as exc:
                    raise self._cut(f"a tar header is invalid ({exc})") from None
                del pending[:_BLOCK]
                if info.name == "build.json" and info.isfile() and self.build_json is None:
                    if info.size > _BUILD_JSON_LIMIT:
                        raise self._cut(f"its build.json is {info.size} bytes")
                    self._collect = info
                    continue
                if info.isfile() and info.name.endswith(".tar"):
                    self.images.append(info.name)
                out += header
                self._skip = _padded(info.size)
            else:
                break
        return bytes(out)

    def _marked(self, info: tarfile.TarInfo, data: bytes) -> bytes:
        try:
            build = json.loads(data)
        except ValueError:
            raise self._cut("its build.json is not JSON") from None
        if not isinstance(build, dict):
            raise self._cut("its build.json is not an object")
        self.build_json = build
        description = build.get("description")
        build["description"] = self._describe(description if isinstance(description, str) else "")
        content = json.dumps(build, separators=(",", ":")).encode()
        info.size = len(content)
        header = info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")
        return header + content + bytes(_padded(len(content)) - len(content))
