"""Tarballs the rack reads and writes: build sources, build export and import archives.

Everything streams from and to files, so archive size never shows up in memory: a build
import keeps the image archives it carries as files, and the export of that build streams them
back (a 1 GiB build costs disk, not memory).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import posixpath
import shutil
import tarfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import RackError

__all__ = [
    "SourceError",
    "read_build_import",
    "read_source_files",
    "read_source_manifest",
    "write_build_export",
]

_MANIFEST_LIMIT = 8 * 1024 * 1024
_COPY_BUFFER = 1024 * 1024
STORED_ABOVE = 64 * 1024 * 1024
"""Exports whose image archives are larger than this are written with gzip's level 0 (stored):
image layers are compressed already, and the emulator must serve a large build quickly."""


class SourceError(Exception):
    """The build pod could not use its source; the message becomes ``ERROR: <message>``."""


def _normalise(name: str) -> str:
    return posixpath.normpath("/" + name).lstrip("/")


def read_source_manifest(path: Path, manifest: str) -> str:
    """Manifest text from a gzip tar build context, as the build pod reads it (§4.3)."""
    wanted = _normalise(manifest)
    try:
        with tarfile.open(path, mode="r|gz") as tar:
            for member in tar:
                if _normalise(member.name) != wanted or not member.isfile():
                    continue
                handle = tar.extractfile(member)
                if handle is None:
                    break
                data = handle.read(_MANIFEST_LIMIT)
                return data.decode("utf-8", errors="replace")
    except (tarfile.ReadError, zlib.error, EOFError, OSError) as exc:
        text = str(exc)
        if (
            "gzip" in text.lower()
            or "not a gzip" in text.lower()
            or isinstance(exc, tarfile.ReadError)
        ):
            raise SourceError("gzip: invalid header") from exc
        raise SourceError("unexpected EOF") from exc
    raise SourceError(f"open {manifest}: no such file or directory")


def read_source_files(path: Path, wanted: set[str]) -> tuple[dict[str, str], int]:
    """The text of the ``wanted`` files (normalised paths) found in a build context, and the
    context's total size in bytes (what ``docker build`` reports sending)."""
    found: dict[str, str] = {}
    total = 0
    try:
        with tarfile.open(path, mode="r|gz") as tar:
            for member in tar:
                total += member.size if member.isfile() else 0
                name = _normalise(member.name)
                if name not in wanted or not member.isfile():
                    continue
                handle = tar.extractfile(member)
                if handle is not None:
                    found[name] = handle.read(_MANIFEST_LIMIT).decode("utf-8", errors="replace")
    except (tarfile.ReadError, zlib.error, EOFError, OSError) as exc:
        raise SourceError("unexpected EOF") from exc
    return found, total


def _empty_oci_archive() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in (
            ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
            ("index.json", b'{"schemaVersion":2,"manifests":[]}'),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def write_build_export(
    destination: Path,
    build_json: bytes,
    build_id: str,
    services: list[str],
    images: Mapping[str, Path] | None = None,
) -> None:
    """Write the export archive: ``build.json`` plus one ``<service>.<build-id>.tar`` each, the
    image archive an import kept for that service (``images``), else an empty OCI archive."""
    kept = images or {}
    empty = _empty_oci_archive()
    size = sum(kept[s].stat().st_size for s in services if s in kept)
    level = 0 if size > STORED_ABOVE else 1
    with (
        destination.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=level, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w|", format=tarfile.USTAR_FORMAT) as tar,
    ):
        info = tarfile.TarInfo("build.json")
        info.size = len(build_json)
        info.mode = 0o600
        tar.addfile(info, io.BytesIO(build_json))
        for service in services:
            info = tarfile.TarInfo(f"{service}.{build_id}.tar")
            info.mode = 0o644
            if service in kept:
                with kept[service].open("rb") as image:
                    info.size = os.fstat(image.fileno()).st_size
                    tar.addfile(info, image)
            else:
                info.size = len(empty)
                tar.addfile(info, io.BytesIO(empty))


def read_build_import(path: Path, images: Path | None = None) -> tuple[dict[str, Any], list[str]]:
    """The source ``build.json`` (empty when absent; the last one read wins, as Go's
    ``json.Unmarshal`` into one struct does) and the services with image archives. With
    ``images``, each image archive is copied (streamed) there as ``<service>.tar``.

    The gzip stream may have several members, as Go's reader (multistream) reads it; regular
    files other than ``build.json`` and ``*.tar`` are skipped, as the rack skips them
    (docs/rack-api.md §4.12)."""
    source: dict[str, Any] = {}
    services: list[str] = []
    try:
        with gzip.open(path, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                if member.name.endswith(".tar"):
                    service = member.name.split(".")[0]
                    services.append(service)
                    if images is not None:
                        _keep_image(tar, member, images / f"{service}.tar")
                    continue
                if member.name == "build.json":
                    handle = tar.extractfile(member)
                    data = handle.read() if handle else b""
                    try:
                        loaded = json.loads(data or b"null")
                    except ValueError as exc:
                        raise RackError(500, f"invalid character in build.json: {exc}") from exc
                    if not isinstance(loaded, dict):
                        raise RackError(
                            500,
                            "json: cannot unmarshal build.json into Go value of type structs.Build",
                        )
                    source.update(loaded)
    except (tarfile.ReadError, gzip.BadGzipFile) as exc:
        raise RackError(500, "gzip: invalid header") from exc
    except (zlib.error, EOFError) as exc:
        raise RackError(500, "unexpected EOF") from exc
    return source, services


def _keep_image(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    handle = tar.extractfile(member)
    if handle is None:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        shutil.copyfileobj(handle, out, _COPY_BUFFER)
