"""Build sources: a directory as a streamed ``.tgz``, and its upload (docs/rack-api.md §7.1, §4.2).

:class:`SourceArchive` packages a directory the way ``convox build`` does (§7.1 step 3): ``.`` is
the root, ``.dockerignore`` is honoured and nothing else is excluded, symlinks are stored as
links and never followed (the directory itself is resolved if it is a link). Unlike the CLI,
which builds the whole archive in memory, it is produced chunk by chunk while it is uploaded:
tar headers come from ``TarInfo.tobuf`` and file contents are read in fixed-size blocks and
compressed by one ``zlib`` stream, so memory stays flat whatever the size of the tree or its
files. Entries are in a fixed order (depth first, names sorted by their bytes).

:func:`upload_call` and :func:`upload` send it through the objects API as a raw streamed body;
the async client advances the archive in a worker thread, so its event loop never compresses.
"""

from __future__ import annotations

import os
import secrets
import stat
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from convox_provider.client.bodies import LocalChunks
from convox_provider.client.dockerignore import DockerIgnore
from convox_provider.client.errors import ConvoxInputError
from convox_provider.client.models import Object
from convox_provider.client.operation import Call, Flow, Resource, call
from convox_provider.client.resources import objects as object_routes
from convox_provider.client.resources._common import TRANSFER_TIMEOUT
from convox_provider.client.websocket import console_session

__all__ = [
    "DEFAULT_LEVEL",
    "Archived",
    "ArchiveEvent",
    "Finished",
    "Scanned",
    "SourceArchive",
    "Uploaded",
    "new_object_key",
    "upload",
    "upload_call",
]

DEFAULT_LEVEL = 1
"""gzip level. On mixed trees (source files, logs, incompressible blobs; bench/bench_upload.py)
level 1 takes about 0.65x the CPU time of ``tar -czf`` (GNU gzip, level 6) and 0.7x that of
zlib at level 6, for an archive 2-3 % larger. Uploading a source tree is bound by compression
far more often than by those few percent of bytes."""

_READ_SIZE = 256 * 1024
_CHUNK_SIZE = 256 * 1024
_BLOCK = tarfile.BLOCKSIZE


@dataclass(frozen=True)
class Scanned:
    """The first pass is done: ``files`` entries (files, links, directories) hold ``bytes``."""

    files: int
    bytes: int


@dataclass(frozen=True)
class Archived:
    """``bytes`` of file contents read and compressed so far, of ``total`` (None: not scanned)."""

    bytes: int
    total: int | None


@dataclass(frozen=True)
class Uploaded:
    """``bytes`` of the compressed archive handed to the HTTP client so far."""

    bytes: int


@dataclass(frozen=True)
class Finished:
    """The whole archive was handed over: ``files`` entries, ``bytes`` read, ``sent`` bytes."""

    files: int
    bytes: int
    sent: int


ArchiveEvent: TypeAlias = Scanned | Archived | Uploaded | Finished


@dataclass(frozen=True)
class _Entry:
    name: str
    path: str
    stat: os.stat_result


def _walk(root: str, ignore: DockerIgnore) -> Iterator[_Entry]:
    """Entries under ``root`` not excluded by ``ignore``, depth first, sorted by name bytes."""
    stack: list[tuple[str, str, list[str]]] = [(root, "", _names(root))]
    while stack:
        directory, prefix, names = stack[-1]
        if not names:
            stack.pop()
            continue
        name = names.pop()
        relative = prefix + name
        path = os.path.join(directory, name)
        info = os.lstat(path)
        excluded = ignore.excludes(relative)
        if stat.S_ISDIR(info.st_mode):
            if not excluded:
                yield _Entry(relative + "/", path, info)
            if not excluded or ignore.walk_excluded(relative):
                stack.append((path, relative + "/", _names(path)))
        elif not excluded and (stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)):
            yield _Entry(relative, path, info)


def _names(directory: str) -> list[str]:
    """Names in ``directory``, in reverse order so that ``pop()`` yields them sorted."""
    return sorted(os.listdir(directory), key=os.fsencode, reverse=True)


class SourceArchive:
    """A directory as a gzip-compressed tar stream: iterate it for chunks of the ``.tgz``.

    Each iteration reads the tree afresh, so a request that must be sent again (a console
    session challenge, a connect retry) sends a complete archive. ``progress`` receives
    :data:`ArchiveEvent` values: :class:`Scanned` after a first counting pass (made only when
    ``progress`` is given), then :class:`Archived` and :class:`Uploaded` for every chunk handed
    out, and :class:`Finished`. With the async client it is called from a worker thread.
    Sockets, FIFOs and devices are left out. A file that grows while it is read is stored with
    the size it had when its header was written; one that shrinks raises ``ConvoxInputError``.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        progress: Callable[[ArchiveEvent], None] | None = None,
        level: int = DEFAULT_LEVEL,
    ) -> None:
        root = Path(directory).resolve()
        if not root.is_dir():
            problem = "is not a directory" if root.exists() else "does not exist"
            raise ConvoxInputError(
                f"build source {str(directory)!r} {problem}: give the directory that holds the"
                " app's convox.yml (on the machine that runs the task)"
            )
        if not 0 <= level <= 9:
            raise ConvoxInputError(f"gzip level must be 0 to 9, got {level}")
        self.root = root
        self.ignore = DockerIgnore.for_directory(root)
        self.progress = progress
        self.level = level

    def __repr__(self) -> str:
        return f"SourceArchive({str(self.root)!r})"

    def scan(self) -> Scanned:
        """Count the entries and content bytes that an iteration would archive."""
        files = size = 0
        for entry in _walk(str(self.root), self.ignore):
            files += 1
            if stat.S_ISREG(entry.stat.st_mode):
                size += entry.stat.st_size
        return Scanned(files, size)

    def __iter__(self) -> Iterator[bytes]:
        report = self.progress
        total: int | None = None
        if report is not None:
            scanned = self.scan()
            total = scanned.bytes
            report(scanned)
        files = read = sent = 0
        for chunk, count, done in self._chunks():
            files, read = count, done
            sent += len(chunk)
            if report is not None:
                report(Archived(read, total))
                report(Uploaded(sent))
            yield chunk
        if report is not None:
            report(Finished(files, read, sent))

    def _chunks(self) -> Iterator[tuple[bytes, int, int]]:
        """``(compressed chunk, entries so far, content bytes read so far)``; every chunk but
        the last holds at least 256 KiB."""
        compressor = zlib.compressobj(self.level, zlib.DEFLATED, 31)  # 31: gzip wrapper
        pending = bytearray()
        files = read = 0
        links: dict[tuple[int, int], str] = {}
        buffer = memoryview(bytearray(_READ_SIZE))  # one read buffer for every file
        for entry in _walk(str(self.root), self.ignore):
            files += 1
            header, size = _header(entry, links)
            pending += compressor.compress(header)
            if size:
                for block in _contents(entry, size, buffer):
                    read += len(block)
                    pending += compressor.compress(block)
                    if len(pending) >= _CHUNK_SIZE:
                        yield bytes(pending), files, read
                        pending.clear()
                pending += compressor.compress(b"\0" * (-size % _BLOCK))
            if len(pending) >= _CHUNK_SIZE:
                yield bytes(pending), files, read
                pending.clear()
        pending += compressor.compress(b"\0" * (2 * _BLOCK))  # end-of-archive marker
        pending += compressor.flush()
        yield bytes(pending), files, read


def _header(entry: _Entry, links: dict[tuple[int, int], str]) -> tuple[bytes, int]:
    """The tar header of ``entry`` and the number of content bytes that follow it."""
    info = tarfile.TarInfo(entry.name)
    mode = entry.stat.st_mode
    info.mode = stat.S_IMODE(mode)
    info.mtime = int(entry.stat.st_mtime)
    info.uid, info.gid = entry.stat.st_uid, entry.stat.st_gid
    size = 0
    if stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(entry.path)
    else:
        key = (entry.stat.st_dev, entry.stat.st_ino)
        first = links.get(key) if entry.stat.st_nlink > 1 else None
        if first is not None:
            info.type = tarfile.LNKTYPE
            info.linkname = first
        else:
            if entry.stat.st_nlink > 1:
                links[key] = entry.name
            size = info.size = entry.stat.st_size
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"), size


def _contents(entry: _Entry, size: int, buffer: memoryview) -> Iterator[memoryview]:
    """``size`` bytes of the file, read into ``buffer``: each block is valid until the next."""
    remaining = size
    with open(entry.path, "rb", buffering=0) as handle:
        while remaining:
            count = handle.readinto(buffer[: min(len(buffer), remaining)])
            if not count:
                raise ConvoxInputError(
                    f"{entry.name} shrank while it was being archived; build again once the "
                    "source tree is no longer being written to"
                )
            remaining -= count
            yield buffer[:count]


def new_object_key() -> str:
    """A fresh key for a build source, as the CLI makes them: ``tmp/<30 hex>.tgz``."""
    return f"tmp/{secrets.token_hex(15)}.tgz"


def upload_call(
    app: str,
    chunks: Iterable[bytes],
    *,
    key: str | None = None,
    timeout: float | None = TRANSFER_TIMEOUT,
) -> Call[Object]:
    """The objects-API call storing ``chunks`` (e.g. a :class:`SourceArchive`) as one object.

    ``key`` defaults to :func:`new_object_key`. The same call runs on either client: on the
    async client the chunks are produced in a worker thread. The answer's ``url``
    (``object://<app>/<key>``) is what ``builds.create`` takes.
    """
    body = LocalChunks(chunks)
    return object_routes.store(
        app, key if key is not None else new_object_key(), body, timeout=timeout
    )


def upload(
    resource: Resource[Any],
    app: str,
    chunks: Iterable[bytes],
    *,
    key: str | None = None,
    timeout: float | None = TRANSFER_TIMEOUT,
) -> Flow[Object]:
    """Flow: :func:`upload_call`, after opening the console session if one is needed.

    The session is opened first with a small GET because a challenge answered on the upload
    itself would mean streaming the whole archive twice (docs/rack-api.md §1.5).
    """
    upload_request = upload_call(app, chunks, key=key, timeout=timeout)
    yield from console_session(resource._driver, upload_request.path)
    return (yield from call(upload_request))
