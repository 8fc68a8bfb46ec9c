"""Files inside processes: what ``convox cp`` copies in and out, and what shells write.

Each pod has its own store of absolute paths to contents, created with the pod and gone with
it. The files routes move tar archives in and out as the rack's ``tar -C / -xf -`` and
``tar -cf - <path>`` do (*provider/k8s file.go*).
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from pathlib import Path

from ..errors import RackError
from ._base import Model, Rack

__all__ = ["Files", "normalise_path"]


def normalise_path(path: str) -> str:
    """An absolute, normalised path (relative ones are relative to ``/``)."""
    return posixpath.normpath(posixpath.join("/", path))


class Files(Model):
    """File stores by (app, pid)."""

    def __init__(self, rack: Rack) -> None:
        super().__init__(rack)
        self._stores: dict[tuple[str, str], dict[str, bytes]] = {}

    def store(self, app: str, pid: str) -> dict[str, bytes]:
        """The live store of a pod (call with the lock held); 500 when the pod is gone."""
        self.rack.processes.pod(app, pid)
        return self._stores.setdefault((app, pid), {})

    def live_store(self, app: str, pid: str) -> dict[str, bytes]:
        """The store itself, for a shell running in the pod to write to."""
        with self.locked():
            return self.store(app, pid)

    def forget(self, app: str, pid: str) -> None:
        """A removed pod's files go with it."""
        self._stores.pop((app, pid), None)

    def files(self, app: str, pid: str) -> dict[str, bytes]:
        """A copy of a pod's files."""
        with self.locked():
            return dict(self.store(app, pid))

    def put_file(self, app: str, pid: str, path: str, data: bytes) -> None:
        """Seed a file into a pod."""
        with self.locked():
            self.store(app, pid)[normalise_path(path)] = data

    def upload(self, app: str, pid: str, archive: Path | None) -> None:
        """``POST .../files``: extract a tar archive at ``/``."""
        with self.locked():
            self.store(app, pid)
        entries: dict[str, bytes] = {}
        if archive is not None:
            try:
                with tarfile.open(archive, mode="r|*") as tar:
                    for member in tar:
                        handle = tar.extractfile(member) if member.isfile() else None
                        if handle is not None:
                            entries[normalise_path(member.name)] = handle.read()
            except (tarfile.TarError, EOFError) as exc:
                raise RackError(500, "archive/tar: invalid tar header") from exc
        with self.locked():
            self.store(app, pid).update(entries)

    def download(self, app: str, pid: str, path: str) -> bytes:
        """``GET .../files?file=<path>``: a tar of the file, or of a directory's files."""
        wanted = normalise_path(path)
        with self.locked():
            found = {
                name: data
                for name, data in sorted(self.store(app, pid).items())
                if name == wanted or name.startswith(wanted.rstrip("/") + "/")
            }
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for name, data in found.items():
                info = tarfile.TarInfo(name.lstrip("/"))  # tar drops the leading slash
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    def delete(self, app: str, pid: str, paths: list[str]) -> None:
        """``DELETE .../files?files=a,b``: ``rm -f`` each."""
        with self.locked():
            store = self.store(app, pid)
            for path in paths:
                store.pop(normalise_path(path), None)
