"""Relaying a build export archive from one rack into another's import, in constant memory.

The export (``GET /apps/{app}/builds/{id}.tgz``, docs/rack-api.md §4.3) arrives as a gzip tar:
``build.json`` first, then one image archive per service. :class:`ExportRelay` turns its chunks
into the body of ``POST /apps/{app}/builds/import`` on the other rack as they arrive, with no
temporary file and a bounded amount of memory (one chunk, one tar header, ``build.json``):

* ``build.json``'s ``description`` must carry the copy's marker (the import keeps the
  description, and nothing else of the imported build can be chosen by the caller), so a
  retried copy finds its build instead of importing it twice. When the archive starts with a
  plain ``build.json`` entry (what racks export), the export is **passed through unchanged**
  after a small gzip member of its own (docs/rack-api.md §4.12): the marked ``build.json``,
  then a regular file (:data:`REPLACED`) whose content is the original ``build.json`` entry, so
  the rack reads one ``build.json``, the marked one, and skips the original as an unknown
  file. The import reads the two gzip members as one stream (Go's reader is multistream).
  Nothing is compressed again: the relay costs one decompression (the check below), not a
  recompression of gigabytes of image layers. Any other archive is re-encoded instead:
  decompressed, ``build.json`` replaced wherever it is, compressed again at zlib's fastest
  level.
* the archive is checked as it streams: a gzip stream that ends before its trailer (its CRC
  and length are checked), or a tar without its end-of-archive blocks, is an export that was
  cut (an error after the rack began streaming cannot change the status, the body just ends
  early, §3.1). The relay then raises before the body ends, so the import request is aborted
  instead of completed, and no archive whose end was never seen is ever sent whole.

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

__all__ = ["PROGRESS_EVERY", "REPLACED", "ConvoxCopyError", "ExportRelay"]

PROGRESS_EVERY = 8 * 1024 * 1024
"""Bytes of export between two progress reports."""

_BLOCK = 512
_INFLATE_STEP = 256 * 1024
_BUILD_JSON_LIMIT = 16 * 1024 * 1024
_GZIP = 16 + zlib.MAX_WBITS
_ZERO_BLOCK = bytes(_BLOCK)

REPLACED = ".convox-copy-replaced-build-json"
"""The name of the entry that holds the export's original ``build.json`` entry in a passed-through
archive: a regular file the rack's import skips (neither ``build.json`` nor ``*.tar``)."""


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
        #: ``head`` until the first entry is read, then ``pass`` (relayed as received) or
        #: ``recode`` (decompressed, re-marked, compressed again).
        self.mode = "head"
        self._held: list[bytes] = []
        self._head = bytearray()
        self._header = bytearray()
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
        if self.mode == "pass":
            for plain in self._inflated(chunk):
                self._walk(plain)
            self.sent += len(chunk)
            yield chunk
        elif self.mode == "recode":
            for plain in self._inflated(chunk):
                yield from self._recoded(plain)
        else:
            self._held.append(chunk)
            for plain in self._inflated(chunk):
                self._head += plain
            yield from self._decide(final=False)
        if self._on_progress is not None and self.received - self._reported >= PROGRESS_EVERY:
            self._reported = self.received
            self._on_progress(self.received)

    def finish(self) -> bytes:
        """The end of the import body, once the export was seen to end; else raise."""
        if not self._inflate.eof:
            raise self._cut("its gzip stream ended before its trailer")
        head = b"".join(self._decide(final=True)) if self.mode == "head" else b""
        if not self._ended:
            raise self._cut("its tar archive has no end-of-archive blocks")
        if self.build_json is None:
            raise self._cut("it has no build.json")
        if self._on_progress is not None and self.received != self._reported:
            self._reported = self.received
            self._on_progress(self.received)
        if self.mode == "pass":
            return head
        tail = self._tar(b"") + bytes(self._pending)
        self._pending.clear()
        packed = head + self._deflate.compress(tail) + self._deflate.flush()
        self.sent += len(packed) - len(head)
        return packed

    # -- the modes ------------------------------------------------------------------------------

    def _inflated(self, data: bytes) -> Iterator[bytes]:
        """The plain tar data of one chunk of export, member after member."""
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
            if plain:
                yield plain

    def _decide(self, *, final: bool) -> Iterator[bytes]:
        """Once the first entry is in: pass the export through when it is a plain
        ``build.json``, else re-encode; ``final``: the export ended (decide with what came)."""
        head = self._head
        info: tarfile.TarInfo | None = None
        if len(head) >= _BLOCK and head[:_BLOCK] != _ZERO_BLOCK:
            info = self._parse(bytes(head[:_BLOCK]))
        plain_json = (
            info is not None
            and info.name == "build.json"
            and info.type == tarfile.REGTYPE
            and info.size <= _BUILD_JSON_LIMIT
        )
        if plain_json and info is not None:
            entry = _BLOCK + _padded(info.size)
            if len(head) < entry:
                if final:
                    raise self._cut("its build.json entry is incomplete")
                return
            yield from self._pass_through(info, entry)
            return
        if len(head) < _BLOCK and not final:
            return
        self.mode = "recode"
        self._held.clear()
        plain, self._head = bytes(head), bytearray()
        yield from self._recoded(plain)

    def _pass_through(self, info: tarfile.TarInfo, entry: int) -> Iterator[bytes]:
        """Send the marked ``build.json`` and a file holding the original entry, in a gzip
        member of their own, then the export as received so far; walk what follows."""
        head = self._head
        marked = self._marked(info, bytes(head[_BLOCK : _BLOCK + info.size]))
        cover = tarfile.TarInfo(REPLACED)
        cover.size = entry
        cover.mode = 0o600
        cover.mtime = info.mtime
        prefix = marked + cover.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")
        member = zlib.compressobj(1, zlib.DEFLATED, _GZIP)
        packed = member.compress(prefix) + member.flush()
        self.mode = "pass"
        held, self._held = self._held, []
        rest, self._head = bytes(head[entry:]), bytearray()
        self._walk(rest)
        self.sent += len(packed)
        yield packed
        for chunk in held:
            self.sent += len(chunk)
            yield chunk

    def _walk(self, plain: bytes) -> None:
        """Follow the tar entries of passed-through data (headers only, contents skipped)."""
        size = len(plain)
        pos = 0
        while pos < size and not self._ended:
            if self._skip:
                step = min(self._skip, size - pos)
                self._skip -= step
                pos += step
                continue
            step = min(_BLOCK - len(self._header), size - pos)
            self._header += plain[pos : pos + step]
            pos += step
            if len(self._header) < _BLOCK:
                return
            header, self._header = bytes(self._header), bytearray()
            if header == _ZERO_BLOCK:
                self._ended = True
                return
            info = self._parse(header)
            if info.name == "build.json" and info.isfile():
                raise ConvoxCopyError(
                    f"{self.source}: the export archive has a second build.json, which the"
                    " import would read instead of the marked one; the import was aborted",
                    rack="source",
                )
            if info.isfile() and info.name.endswith(".tar"):
                self.images.append(info.name)
            self._skip = _padded(info.size)

    def _recoded(self, plain: bytes) -> Iterator[bytes]:
        out = self._tar(plain)
        if out:
            packed = self._deflate.compress(out)
            if packed:
                self.sent += len(packed)
                yield packed

    def _parse(self, header: bytes) -> tarfile.TarInfo:
        """One tar header block; an invalid one is a cut export."""
        try:
            return tarfile.TarInfo.frombuf(header, "utf-8", "surrogateescape")
        except tarfile.HeaderError as exc:
            raise self._cut(f"a tar header is invalid ({exc})") from None

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
                info = self._parse(header)
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
