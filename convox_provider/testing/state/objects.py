"""Objects: the app-scoped blob store behind ``object://`` URLs (docs/rack-api.md §4.2).

Each object is one file under the rack's storage directory, named by a hash of app and key;
uploads are moved in from the spool, never copied into memory.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from pathlib import Path

from ..errors import RackError
from ._base import Model, Rack

__all__ = ["Objects"]


class Objects(Model):
    """Objects by (app, key)."""

    def __init__(self, rack: Rack, storage: Path) -> None:
        super().__init__(rack)
        self._storage = storage
        (storage / "objects").mkdir(parents=True, exist_ok=True)
        self._objects: dict[tuple[str, str], Path] = {}

    def drop_app(self, app: str) -> None:
        """Delete a deleted app's objects and their files."""
        for key in [k for k in self._objects if k[0] == app]:
            self._objects.pop(key).unlink(missing_ok=True)

    def _object_file(self, app: str, key: str) -> Path:
        digest = hashlib.sha256(f"{app}\0{key}".encode()).hexdigest()
        return self._storage / "objects" / digest

    def object_store_file(self, app: str, key: str, source: Path | None) -> str:
        """Store an object from a spooled upload (moved, not copied); returns its ``object://`` URL.

        An empty ``key`` picks ``tmp/<30 hex>`` like the rack. The app is not checked (k8s
        provider behaviour).
        """
        with self.locked():
            if key == "":
                key = "tmp/" + secrets.token_hex(15)
            target = self._object_file(app, key)
            if source is None:
                target.write_bytes(b"")
            else:
                shutil.move(os.fspath(source), os.fspath(target))
            self._objects[(app, key)] = target
            return f"object://{app}/{key}"

    def object_store_bytes(self, app: str, key: str, data: bytes) -> str:
        """Store ``data`` under ``key``; returns the ``object://`` URL."""
        with self.locked():
            target = self._object_file(app, key)
            target.write_bytes(data)
            self._objects[(app, key)] = target
            return f"object://{app}/{key}"

    def object_path(self, app: str, key: str) -> Path:
        """The file holding an object; 404 ``object not found: <key>``."""
        with self.locked():
            path = self._objects.get((app, key.lstrip("/")))
            if path is None:
                raise RackError(404, f"object not found: {key}")
            return path

    def object_exists(self, app: str, key: str) -> bool:
        """Whether an object exists."""
        with self.locked():
            return (app, key) in self._objects

    def object_delete(self, app: str, key: str) -> None:
        """``DELETE`` an object; 404 when missing."""
        with self.locked():
            path = self._objects.pop((app, key), None)
            if path is None:
                raise RackError(404, f"object not found: {key}")
            path.unlink(missing_ok=True)
