"""Tarballs the rack reads and writes: build sources, build export and import archives.

Everything streams from and to files, so archive size never shows up in memory.
"""

from __future__ import annotations

import io
import json
import posixpath
import tarfile
import zlib
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
    destination: Path, build_json: bytes, build_id: str, services: list[str]
) -> None:
    """Write the export archive: ``build.json`` plus one ``<service>.<build-id>.tar`` each."""
    image = _empty_oci_archive()
    with tarfile.open(destination, mode="w:gz", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("build.json")
        info.size = len(build_json)
        info.mode = 0o600
        tar.addfile(info, io.BytesIO(build_json))
        for service in services:
            info = tarfile.TarInfo(f"{service}.{build_id}.tar")
            info.size = len(image)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(image))


def read_build_import(path: Path) -> tuple[dict[str, Any], list[str]]:
    """The source ``build.json`` (empty when absent) and the services with image archives."""
    source: dict[str, Any] = {}
    services: list[str] = []
    try:
        with tarfile.open(path, mode="r|gz") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                if member.name.endswith(".tar"):
                    services.append(member.name.split(".")[0])
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
                    source = loaded
    except tarfile.ReadError as exc:
        raise RackError(500, "gzip: invalid header") from exc
    except (zlib.error, EOFError) as exc:
        raise RackError(500, "unexpected EOF") from exc
    return source, services
