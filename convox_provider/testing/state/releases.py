"""Releases: a build plus an environment, and promoting one (docs/rack-api.md §4.4).

A new release forks the newest (or a named parent) release; its manifest is its build's.
Promoting runs the synchronous pre-checks, then starts the app's rollout and deploys its pods.
"""

from __future__ import annotations

from typing import Any

from typing_extensions import Unpack

from ..encoding import new_id
from ..environment import env_diff, parse_env
from ..errors import RackError
from ..manifest import Manifest, ManifestError, load_manifest
from ..models import Release
from ._base import AppRecords, ReleaseFields

__all__ = ["Releases", "parse_manifest"]


def parse_manifest(text: str) -> Manifest:
    """A release's manifest; a broken one is a 500 with the parser's message."""
    try:
        return load_manifest(text)
    except ManifestError as exc:
        raise RackError(500, str(exc)) from exc


class Releases(AppRecords[Release]):
    """Releases per app."""

    def release(self, app: str, release_id: str) -> Release:
        """The release record (ids are case-insensitive); 500 like the k8s provider."""
        return self._record(app, release_id, "releases.convox.com")

    def find(self, app: str, release_id: str) -> Release | None:
        """The release with exactly this id, None when there is none."""
        return self._records[app].get(release_id)

    def newest(self, app: str) -> Release | None:
        releases = self._records.get(app, {})
        return max(releases.values(), key=lambda r: r.created) if releases else None

    def release_get(self, app: str, release_id: str) -> dict[str, Any]:
        """``GET /apps/{app}/releases/{id}``."""
        with self.locked():
            return self.release(app, release_id).to_wire()

    def release_list(self, app: str, limit: int | None) -> list[dict[str, Any]]:
        """``GET /apps/{app}/releases``: newest first by ``created``, ``limit`` default 10."""
        with self.locked():
            self.rack.apps.app(app)
            releases = sorted(self._records[app].values(), key=lambda r: r.created, reverse=True)
            return [r.to_wire() for r in releases[: 10 if limit is None else max(limit, 0)]]

    def release_create(self, app: str, **fields: Unpack[ReleaseFields]) -> dict[str, Any]:
        """``POST /apps/{app}/releases`` with the fork rule of docs/rack-api.md §4.4."""
        with self.locked() as now:
            self.rack.apps.app(app)
            return self.create(app, now, **fields).to_wire()

    def create(self, app: str, at: int, **fields: Unpack[ReleaseFields]) -> Release:
        """A new release record forked from ``parent`` (or the newest), created at ``at``."""
        build, env = fields.get("build"), fields.get("env")
        description, parent = fields.get("description"), fields.get("parent")
        release = Release(id=new_id("R"), app=app)
        if parent:
            base: Release | None = self.release(app, parent)
        else:
            base = self.newest(app)
        if base is not None:
            release.build, release.env = base.build, base.env
        if build is not None:
            release.build = build
        if release.build:
            source = self.rack.builds.build(app, release.build)
            release.build = source.id
            release.description = source.description
            release.manifest = source.manifest
        if env is not None:
            diff = env_diff(release.env, env)
            if diff.strip():
                release.description = f"env {diff}"
            release.env = env
        if description is not None:
            release.description = description
        release.created = self._stamp(at)
        self._records[app][release.id] = release
        return release

    def promote_check(self, app: str, release_id: str, *, force: bool) -> Release:
        """The synchronous promote pre-checks (403, 400 empty manifest, 400 older release)."""
        with self.locked():
            target = self.rack.apps.app(app)
            if not force and target.status != "running":
                raise RackError(403, "app is currently updating")
            release = self.release(app, release_id)
            if release.manifest.strip() == "":
                raise RackError(400, "can not promote a release with an empty manifest")
            if target.release:
                active = self.release(app, target.release)
                if release.created < active.created:
                    raise RackError(400, "can not promote an older release, try rollback")
            return release

    def release_promote(
        self, app: str, release_id: str, *, force: bool, timeout: int | None
    ) -> None:
        """``POST /apps/{app}/releases/{id}/promote``: pre-checks of §4.4, then an async rollout."""
        apps = self.rack.apps
        with self.locked() as now:
            target = apps.app(app)
            release = self.promote_check(app, release_id, force=force)
            manifest = parse_manifest(release.manifest)
            env = parse_env(release.env)
            for service in manifest.services:
                manifest.service_environment(service.name, env)
            apps.rollout(
                target,
                now,
                release.id,
                kind="promote",
                timeout=3000 if timeout is None else timeout,
            )
            apps.deploy(target, now, release.id)

    def seed_env(self, app: str, env: str, *, promote: bool = True) -> dict[str, Any]:
        """A new release with ``env`` (forked from the newest), promoted and settled if asked."""
        with self.locked() as now:
            target = self.rack.apps.app(app)
            release = self.create(app, now, env=env)
            if promote:
                if not release.manifest.strip():
                    raise ValueError(
                        f"app {app} has no build: seed a release with a manifest first"
                    )
                self.rack.apps.settle_on(target, now, release.id)
            return release.to_wire()
