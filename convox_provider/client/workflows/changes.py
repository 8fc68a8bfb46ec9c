"""What promoting a release would change: the candidate release against the app's active one.

``client.releases.change(app, release_id)`` reads (never writes) the candidate release and the
app's active release with their builds, and returns a :class:`ReleaseChange`: build ids,
descriptions, git shas and ages of both sides, the environment KEYS added, removed and changed
(never a value, not even masked), and a unified diff of the manifests. With ``source=`` (the
client of another rack) the candidate is a release on that rack, e.g. a staging release about
to be copied to production with ``client.builds.copy``: the build and manifest are the
candidate's, but the environment is the target app's NEWEST release's, since the import forks
the release it creates from that one (docs/rack-api.md §4.4.1). One definition serves both
clients; a second rack is reached through the :class:`~.effects.On` effect, as the copy does.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from convox_provider.client.encoding import segment
from convox_provider.client.errors import ConvoxInputError, ConvoxNotFoundError
from convox_provider.client.models import Build, Release
from convox_provider.client.operation import Call, D, Flow, On, Resource, call, operation
from convox_provider.client.resources import apps as app_routes
from convox_provider.client.resources import builds as build_routes
from convox_provider.client.resources import releases as release_routes
from convox_provider.client.resources.environment import read_environment
from convox_provider.client.status import AppStatus
from convox_provider.client.workflows.copy import _Rack, copy_marker, other_driver

__all__ = ["ReleaseChange", "ReleaseChangeWorkflows", "ReleaseSide", "release_change"]

T = TypeVar("T")


@dataclass(frozen=True)
class ReleaseSide:
    """One side of a :class:`ReleaseChange`: a release and its build, without its environment.

    ``git_sha`` is the build's ``git-sha`` (``convox build`` sends ``git rev-parse HEAD``); the
    CLI's default ``description`` is ``build <10-char sha> <subject>`` (docs/rack-api.md §7.1).
    An imported build keeps the description (which a copy made by this client ends with its
    ``[convox-copy:…]`` marker); do not count on it keeping the sha (docs/rack-api.md §4.4.1).
    """

    rack: str
    app: str
    release_id: str
    build_id: str
    build_description: str
    git_sha: str
    created: datetime | None
    """When the release was created."""
    built: datetime | None
    """When its build ended (or started, for a build without an end)."""
    manifest: str


@dataclass(frozen=True)
class ReleaseChange:
    """What promoting ``candidate`` on ``app`` would change against ``active`` (None: the app
    runs no release yet).

    ``env_added``/``env_removed``/``env_changed`` are sorted keys only. ``env_release`` is the
    release whose environment the deploy would run: the candidate itself on the same rack, the
    target app's newest release for a candidate on another rack (a copy forks from it, §4.4.1).
    ``manifest_diff`` is a unified diff (``""``: the same manifest). ``unchanged`` says why
    promoting would change nothing (``""`` when it would): the candidate is the active release,
    or the active release runs a copy of the candidate's build with the same environment.
    ``checked_at`` is when the change was read (UTC), for the ages.
    """

    app: str
    rack: str
    candidate: ReleaseSide
    active: ReleaseSide | None
    env_release: str
    env_added: tuple[str, ...]
    env_removed: tuple[str, ...]
    env_changed: tuple[str, ...]
    manifest_diff: str
    unchanged: str
    checked_at: datetime

    @property
    def cross_rack(self) -> bool:
        """Whether the candidate lives on another rack than the app it would be promoted on."""
        return self.candidate.rack != self.rack

    def age(self, side: ReleaseSide) -> timedelta | None:
        """How old ``side``'s release was at ``checked_at`` (None: the rack gave no time)."""
        return None if side.created is None else self.checked_at - side.created

    @property
    def fingerprint(self) -> str:
        """A digest of what a promote would change (releases, builds, env keys, manifest diff;
        not ``checked_at``), to tell later whether a change read again is still the same one.
        Made of ids and keys only, so it is safe to store (e.g. in XCom)."""
        active = self.active.release_id if self.active is not None else ""
        parts = [
            self.rack,
            self.app,
            self.candidate.rack,
            self.candidate.app,
            self.candidate.release_id,
            self.candidate.build_id,
            active,
            self.env_release,
            ",".join(self.env_added),
            ",".join(self.env_removed),
            ",".join(self.env_changed),
            self.manifest_diff,
        ]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]

    def differs_from(self, fingerprint: str) -> str:
        """``""`` when this is the change whose :attr:`fingerprint` is ``fingerprint``; else what
        a promote would change now, in a sentence (ids and keys only)."""
        if fingerprint == self.fingerprint:
            return ""
        active = self.active.release_id if self.active is not None else "no release"
        keys = ", ".join(
            f"{name} {list(found)}"
            for name, found in (
                ("added", self.env_added),
                ("removed", self.env_removed),
                ("changed", self.env_changed),
            )
            if found
        )
        return (
            f"app {self.app} on rack {self.rack} now runs {active}, and promoting release"
            f" {self.candidate.release_id} would run the environment of release"
            f" {self.env_release or '(none)'} (keys {keys or 'unchanged'})"
        )


def _env_keys(before: Mapping[str, str], after: Mapping[str, str]) -> tuple[tuple[str, ...], ...]:
    added = tuple(sorted(key for key in after if key not in before))
    removed = tuple(sorted(key for key in before if key not in after))
    changed = tuple(sorted(key for key in after if key in before and before[key] != after[key]))
    return added, removed, changed


def _side(rack: _Rack, app: str, release: Release, build: Build) -> ReleaseSide:
    return ReleaseSide(
        rack=rack.name,
        app=app,
        release_id=release.id,
        build_id=build.id,
        build_description=build.description,
        git_sha=build.git_sha,
        created=release.created,
        built=build.ended or build.started,
        manifest=release.manifest or build.manifest,
    )


def _manifest_diff(active: ReleaseSide | None, candidate: ReleaseSide) -> str:
    before = active.manifest if active is not None else ""
    if before == candidate.manifest:
        return ""
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            candidate.manifest.splitlines(keepends=True),
            fromfile=f"active {active.release_id}" if active is not None else "no release",
            tofile=f"candidate {candidate.release_id}",
        )
    )


class _Reader:
    """Reads of one rack for the change: here (the flow's own driver) or through :class:`On`."""

    def __init__(self, rack: _Rack) -> None:
        self.rack = rack

    def call(self, request: Call[T]) -> Flow[T]:
        if self.rack.here:
            return (yield from call(request))
        return (yield On(self.rack.driver, request))  # type: ignore[no-any-return]

    def release(self, app: str, release_id: str, what: str) -> Flow[tuple[Release, Build]]:
        """Flow: release ``release_id`` of ``app`` and its build; missing ones are bad input."""
        try:
            release = yield from self.call(release_routes.get(app, release_id))
        except ConvoxNotFoundError:
            raise ConvoxInputError(
                f"{what} release {release_id} of app {app} does not exist on rack"
                f" {self.rack.name}: give the id of an existing release (a deploy or build task"
                " pushes it as the XCom release_id); nobody was asked to approve anything"
            ) from None
        if not release.build:
            raise ConvoxInputError(
                f"{what} release {release_id} of app {app} on rack {self.rack.name} has no build"
                " (an environment-only release of an app never built), so it cannot be"
                " promoted; build the app first"
            )
        build = yield from self.call(build_routes.get(app, release.build))
        return release, build


def release_change(
    target: _Rack, app: str, release_id: str, source: _Rack, source_app: str
) -> Flow[ReleaseChange]:
    """Flow: :meth:`ReleaseChangeWorkflows.change`."""
    here, there = _Reader(target), _Reader(source)
    try:
        current = yield from here.call(app_routes.get(app))
    except ConvoxNotFoundError:
        raise ConvoxInputError(
            f"app {app} does not exist on rack {target.name}: create it first (or check the"
            " app name and the connection); nobody was asked to approve anything"
        ) from None
    if current.app_status is AppStatus.DELETING:
        raise ConvoxInputError(f"app {app} on rack {target.name} is being deleted")
    cross = source.key != target.key or source_app != app
    candidate_release, candidate_build = yield from there.release(
        source_app, release_id, "candidate"
    )
    candidate = _side(source, source_app, candidate_release, candidate_build)
    active: ReleaseSide | None = None
    active_env: dict[str, str] = {}
    active_build: Build | None = None
    if current.release:
        active_release, active_build = yield from here.release(app, current.release, "active")
        active = _side(target, app, active_release, active_build)
        active_env = active_release.environment
    env_release: Release | None = candidate_release
    if cross:
        env_release, deployed_env = yield from read_environment(app)
    else:
        deployed_env = candidate_release.environment
        if (
            active is not None
            and candidate.created is not None
            and active.created is not None
            and candidate.created < active.created
        ):
            raise ConvoxInputError(
                f"candidate release {release_id} of app {app} is older than the active release"
                f" {active.release_id}: the rack refuses to promote an older release (400 'can"
                " not promote an older release, try rollback', docs/rack-api.md §4.4); roll back"
                " to it instead (ConvoxRollbackOperator), or give a newer release"
            )
    added, removed, changed = _env_keys(active_env, deployed_env)
    unchanged = ""
    if active is not None and not cross and active.release_id == candidate.release_id:
        unchanged = f"app {app} already runs release {release_id}"
    elif active_build is not None and cross and not (added or removed or changed):
        marker = copy_marker(source.key, source_app, candidate.build_id)
        if active is not None and marker in active_build.description:
            unchanged = (
                f"app {app} on rack {target.name} already runs release {active.release_id}, a"
                f" copy of build {candidate.build_id} of the candidate release {release_id}"
            )
    return ReleaseChange(
        app=app,
        rack=target.name,
        candidate=candidate,
        active=active,
        env_release=env_release.id if env_release is not None else "",
        env_added=added,
        env_removed=removed,
        env_changed=changed,
        manifest_diff=_manifest_diff(active, candidate),
        unchanged=unchanged,
        checked_at=datetime.now(timezone.utc),
    )


class ReleaseChangeWorkflows(Resource[D]):
    """The release-change reader of ``client.releases``."""

    @operation
    def change(
        self,
        app: str,
        release_id: str,
        *,
        source: Any = None,
        source_app: str | None = None,
    ) -> Flow[ReleaseChange]:
        """What promoting release ``release_id`` on ``app`` would change; reads only.

        The app's active release (``app.release``) is compared with the candidate: builds,
        descriptions, git shas, ages, environment keys (never values) and a manifest diff.
        ``source`` is the client of the rack the candidate lives on (default: this one) and
        ``source_app`` its app there (default ``app``): a candidate on another rack is what a
        copy would bring (its build and manifest; the environment of this app's newest release,
        which the import forks, docs/rack-api.md §4.4.1).

        Refused (:class:`ConvoxInputError`), having read only: an app that does not exist or is
        being deleted, a candidate release that does not exist or has no build, and on the same
        rack a candidate older than the active release (the rack would refuse its promote). A
        candidate that changes nothing is not an error: ``unchanged`` says why. ``source`` must
        be a client of the same kind as this one (both sync or both async).
        """
        segment(app, kind="app name")
        segment(release_id, kind="release id")
        source_app = app if source_app is None else source_app
        segment(source_app, kind="app name")
        target = _Rack("target", self._driver, here=True)
        if source is None:
            origin = target
        else:
            other = other_driver(self._driver, source, "source", "the candidate's rack")
            origin = _Rack("source", other, here=other is self._driver)
        return release_change(target, app, release_id, origin, source_app)
