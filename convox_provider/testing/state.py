"""The rack's state apart from HTTP: apps, builds, releases, objects, services, processes.

Time-driven transitions (build finished, rollout settled, pod started/ended/reaped) are queued
with their due time and applied lazily, in due order, before every read or write. So with zero
timings the next request already sees the new state, and every timestamp is the moment the
transition was due, not the moment somebody looked. All methods are thread-safe.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import itertools
import logging
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import archive
from .encoding import (
    format_time,
    new_id,
    parse_int,
    pod_suffix,
    render_json,
    shell_split,
)
from .environment import env_diff, parse_env
from .errors import RackError
from .manifest import Manifest, ManifestError, load_manifest
from .models import App, Build, LogEntry, Pod, Release
from .scripts import CommandResult, Invocation, Scripts
from .timing import Timing, seconds_to_ns

__all__ = ["ExecRecord", "RackState", "RunOptions"]

log = logging.getLogger("convox_provider.testing")

RESERVED_APP_NAMES = ("rack", "system")
APP_PARAMETERS = ("BuildCpu", "BuildLabels", "BuildMem")
_RFC1123 = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class RunOptions:
    """Options of ``POST /apps/{app}/services/{service}/processes`` (all headers, §4.6)."""

    command: str | None = None
    release: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    cpu: int | None = None
    memory: int | None = None
    gpu: int | None = None
    image: str | None = None


@dataclass
class ExecRecord:
    """One exec the rack received, kept so tests can assert what ran and what stdin it got."""

    app: str
    process: str
    command: str
    argv: tuple[str, ...]
    tty: bool
    stdin_enabled: bool
    stdin: bytearray = field(default_factory=bytearray)
    stdin_closed: bool = False
    exit_code: int | None = None


class RackState:
    """Everything the emulated rack knows, with the server's semantics (convox-api.md §4-§5)."""

    def __init__(
        self,
        *,
        timing: Timing,
        scripts: Scripts,
        storage: Path,
        password: str | None,
        name: str = "emulator",
        domain: str = "emulator.convox.localhost",
        version: str = "3.24.9",
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.timing = timing
        self.scripts = scripts
        self.password = password
        self.name = name
        self.domain = domain
        self.version = version
        self._clock = clock
        self._storage = storage
        (storage / "objects").mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._queue: list[tuple[int, int, Callable[[int], None]]] = []
        self._seq = itertools.count()
        self._last_stamp = 0
        self._apps: dict[str, App] = {}
        self._builds: dict[str, dict[str, Build]] = {}
        self._releases: dict[str, dict[str, Release]] = {}
        self._pods: dict[str, dict[str, Pod]] = {}
        self._logs: dict[str, list[LogEntry]] = {}
        self._objects: dict[tuple[str, str], Path] = {}
        self._registries: dict[str, tuple[str, str]] = {}
        self._webhooks: dict[str, str] = {}
        self._certificates: dict[str, dict[str, Any]] = {}
        self._tokens: dict[str, tuple[str, int]] = {}
        self.started = self._clock()
        self._instances: dict[str, dict[str, Any]] = {
            f"ip-10-0-1-{n}.{name}.internal": {"ip": f"10.0.1.{n}", "started": self.started}
            for n in (10,)
        }
        self.execs: list[ExecRecord] = []

    # --- time ------------------------------------------------------------------------------

    def now(self) -> int:
        """The rack's clock in epoch nanoseconds."""
        return self._clock()

    @contextmanager
    def locked(self) -> Iterator[int]:
        """Hold the state lock with all due transitions applied; yields the current time."""
        with self._lock:
            now = self._clock()
            while self._queue and self._queue[0][0] <= now:
                due, _, action = heapq.heappop(self._queue)
                try:
                    action(due)
                except Exception:
                    log.exception("scheduled rack transition failed")
            yield now

    def advance(self) -> None:
        """Apply every transition that is due."""
        with self.locked():
            return

    def next_due(self) -> int | None:
        """When the next queued transition is due, if any."""
        with self._lock:
            return self._queue[0][0] if self._queue else None

    def _at(self, due: int, action: Callable[[int], None]) -> None:
        heapq.heappush(self._queue, (due, next(self._seq), action))

    def _stamp(self, at: int) -> int:
        self._last_stamp = max(at, self._last_stamp + 1)
        return self._last_stamp

    # --- apps ------------------------------------------------------------------------------

    def _app(self, name: str) -> App:
        app = self._apps.get(name)
        if app is None:
            raise RackError(404, f"app not found: {name}")
        return app

    def namespace(self, app: str) -> str:
        """The Kubernetes namespace of ``app`` (``<rack>-<app>``)."""
        return f"{self.name}-{app}"

    def app_list(self) -> list[dict[str, Any]]:
        """``GET /apps``: sorted by name."""
        with self.locked():
            return [self._apps[n].to_wire() for n in sorted(self._apps)]

    def app_get(self, name: str) -> dict[str, Any]:
        """``GET /apps/{name}``."""
        with self.locked():
            return self._app(name).to_wire()

    def app_status(self, name: str) -> str:
        """The app's current status (``running``, ``updating``, ``rollback``, ``deleting``)."""
        with self.locked():
            return self._app(name).status

    def app_create(
        self, name: str, *, timeout: int | None = None, settled: bool = False
    ) -> dict[str, Any]:
        """``POST /apps``: the app is ``updating`` (empty release applied) unless ``settled``."""
        with self.locked() as now:
            if name in RESERVED_APP_NAMES:
                raise RackError(400, "app name is reserved")
            if name in self._apps:
                raise RackError(409, f"app already exists: {name}")
            namespace = self.namespace(name)
            if re.fullmatch(_RFC1123, namespace) is None or len(namespace) > 63:
                raise RackError(
                    500,
                    f'Namespace "{namespace}" is invalid: metadata.name: '
                    f'Invalid value: "{namespace}": '
                    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
                    "or '-', and must start and end with an alphanumeric character "
                    "(e.g. 'my-name',  "
                    f"or '123-abc', regex used for validation is '{_RFC1123}')",
                )
            app = App(name=name, router=self.domain, parameters=dict.fromkeys(APP_PARAMETERS, ""))
            self._apps[name] = app
            self._builds[name] = {}
            self._releases[name] = {}
            self._pods[name] = {}
            self._logs[name] = []
            if not settled:
                self._rollout(
                    app, now, "", kind="create", timeout=300 if timeout is None else timeout
                )
            return app.to_wire()

    def app_update(
        self, name: str, *, lock: bool | None, parameters: dict[str, str] | None
    ) -> None:
        """``PUT /apps/{name}``: lock and known parameters; re-applies the current release."""
        with self.locked() as now:
            app = self._app(name)
            if lock is not None:
                app.locked = lock
            if parameters is not None:
                for key, value in parameters.items():
                    if key in APP_PARAMETERS:
                        app.parameters[key] = value
            self._rollout(app, now, app.release, kind="update", timeout=30)

    def app_delete(self, name: str) -> None:
        """``DELETE /apps/{name}``: 409 when locked; ``deleting`` until it is gone."""
        with self.locked() as now:
            app = self._app(name)
            if app.locked:
                raise RackError(409, f"app is locked: {name}")
            if app.deleting:
                return
            app.deleting = True
            app.status = "deleting"
            app.rollout_token += 1

            def gone(_: int) -> None:
                if self._apps.get(name) is app:
                    self._drop_app(name)

            self._at(now + seconds_to_ns(self.timing.app_delete), gone)

    def _drop_app(self, name: str) -> None:
        del self._apps[name]
        for store in (self._builds, self._releases, self._pods, self._logs):
            store.pop(name, None)
        for key in [k for k in self._objects if k[0] == name]:
            self._objects.pop(key).unlink(missing_ok=True)

    def app_cancel(self, name: str) -> None:
        """``POST /apps/{name}/cancel``: 403 unless updating; the rollout then rolls back."""
        with self.locked() as now:
            app = self._app(name)
            if app.status != "updating":
                raise RackError(403, "app is not updating")
            self._fail_rollout(app, now, "Cancelled")

    def config_list(self, app: str) -> list[dict[str, str]]:
        """``GET /apps/{app}/configs``."""
        with self.locked():
            configs = self._app(app).configs
            return [{"name": k, "value": configs[k]} for k in sorted(configs)]

    def config_get(self, app: str, name: str) -> dict[str, str]:
        """``GET /apps/{app}/configs/{name}``."""
        with self.locked():
            configs = self._app(app).configs
            if name not in configs:
                raise RackError(404, f"app config not found: {name}")
            return {"name": name, "value": configs[name]}

    def config_set(self, app: str, name: str, value_base64: str) -> None:
        """``PUT /apps/{app}/configs/{name}``: ``value`` must be base64."""
        with self.locked():
            target = self._app(app)
            try:
                decoded = base64.b64decode(value_base64, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise RackError(400, f"failed to parse base 64 value: {exc}") from exc
            target.configs[name] = decoded.decode("utf-8", errors="replace")

    # --- rollouts --------------------------------------------------------------------------

    def _atom(self, app: App, at: int, state: str) -> None:
        if app.atom_state != state:
            message = f"Status: {app.atom_state} => {state}".encode()
            self._log(app.name, at, "system/k8s/atom/app", message)
            app.atom_state = state

    def _rollout(self, app: App, at: int, target: str, *, kind: str, timeout: int | None) -> None:
        app.rollout_token += 1
        token = app.rollout_token
        previous = app.release if kind != "create" else ""
        app.status = "updating"
        app.release = target
        if kind != "scale":
            self._atom(app, at, "Pending")
            self._atom(app, at, "Updating")
        failure = self.scripts.take_promote_failure(app.name) if kind == "promote" else None
        duration = seconds_to_ns(self.timing.rollout)
        if failure is None and timeout is not None and duration > timeout * _NS_PER_S:
            failure, duration = "Deadline", timeout * _NS_PER_S

        def settle(due: int) -> None:
            if app.rollout_token != token or app.deleting:
                return
            if failure is not None:
                self._fail_rollout(app, due, failure, previous=previous)
                return
            if kind != "scale":
                self._atom(app, due, "Running")
            app.status = "running"
            self._retire_pods(app.name, due, keep_release=app.release, keep_current=True)

        self._at(at + duration, settle)
        app.previous_release = previous

    def _fail_rollout(self, app: App, at: int, reason: str, previous: str | None = None) -> None:
        if previous is None:
            previous = app.previous_release
        target = app.release
        app.rollout_token += 1
        token = app.rollout_token
        self._atom(app, at, reason)
        self._atom(app, at, "Rollback")
        app.status = "rollback"
        app.release = previous
        for pod in list(self._pods.get(app.name, {}).values()):
            if pod.kind == "service" and pod.release == target and target != previous:
                self._remove_pod(pod)

        def reverted(due: int) -> None:
            if app.rollout_token != token or app.deleting:
                return
            self._atom(app, due, "Reverted")
            app.status = "running"

        self._at(at + seconds_to_ns(self.timing.rollout), reverted)

    # --- objects ---------------------------------------------------------------------------

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

    def object_read(self, app: str, key: str) -> bytes:
        """An object's content."""
        return self.object_path(app, key).read_bytes()

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

    # --- builds ----------------------------------------------------------------------------

    def _build(self, app: str, build_id: str) -> Build:
        build = self._builds.get(app, {}).get(build_id.upper())
        if build is None:
            raise RackError(500, f'builds.convox.com "{build_id.lower()}" not found')
        return build

    def build_get(self, app: str, build_id: str) -> dict[str, Any]:
        """``GET /apps/{app}/builds/{id}``."""
        with self.locked():
            return self._build(app, build_id).to_wire()

    def build_record(self, app: str, build_id: str) -> Build:
        """A copy of the build record (for log streaming)."""
        with self.locked():
            return replace(
                self._build(app, build_id), output=list(self._build(app, build_id).output)
            )

    def build_list(self, app: str, limit: int | None) -> list[dict[str, Any]]:
        """``GET /apps/{app}/builds``: newest first, ``limit`` default 10."""
        with self.locked():
            self._app(app)
            builds = sorted(self._builds[app].values(), key=lambda b: b.started or 0, reverse=True)
            return [b.to_wire() for b in builds[: 10 if limit is None else max(limit, 0)]]

    def build_create(
        self,
        app: str,
        url: str,
        *,
        description: str | None = None,
        git_sha: str | None = None,
        manifest: str | None = None,
        external: bool = False,
        source_path: Path | None = None,
    ) -> dict[str, Any]:
        """``POST /apps/{app}/builds``: a ``running`` build, finished after ``Timing.build``.

        ``source_path`` is the object file the URL points to, resolved by the caller outside the
        lock (None when missing); the tarball is inspected before this call.
        """
        manifest_path = manifest or "convox.yml"
        outcome = self._inspect_source(app, url, manifest_path, source_path)
        with self.locked() as now:
            target = self._app(app)
            for param, label in (("BuildCpu", "cpu"), ("BuildMem", "mem")):
                value = target.parameters.get(param, "")
                if value:
                    try:
                        parse_int(value, "strconv.ParseInt")
                    except RackError as exc:
                        raise RackError(
                            400, f"invalid build {label}: {value}, err: {exc.message}"
                        ) from exc
            build = Build(
                id=new_id("B"),
                app=app,
                description=description or "",
                git_sha=git_sha or "",
                started=self._stamp(now),
            )
            self._builds[app][build.id] = build
            if external:
                wire = build.to_wire()
                wire["repository"] = f"https://convox:{self.password or ''}@api.{self.domain}/{app}"
                return wire
            script = self.scripts.take_build(app)
            pod = self._new_pod(
                app,
                "build",
                kind="build",
                release=target.release,
                args=["build", "-method", "tgz", "-cache", "true"],
                image=f"convox/convox:{self.version}-build",
                at=now,
            )
            build.process = pod.id
            build.status = "running"
            build.entrypoint = script.entrypoint
            self._start_pod(pod, now)
            self._run_build(
                build,
                pod=pod,
                at=now,
                fail=script.fail,
                logs=script.logs,
                duration_s=script.duration,
                outcome=outcome,
            )
            return build.to_wire()

    def _inspect_source(
        self, app: str, url: str, manifest_path: str, source_path: Path | None
    ) -> tuple[str | None, str | None]:
        """(manifest text, failure reason) of a build source, as the build pod finds them."""
        parts = urlsplit(url)
        if parts.scheme != "object":
            return None, "unknown source type"
        if source_path is None:
            return None, f"object not found: {parts.path}"
        try:
            return archive.read_source_manifest(source_path, manifest_path), None
        except archive.SourceError as exc:
            return None, str(exc)

    def _run_build(
        self,
        build: Build,
        *,
        pod: Pod,
        at: int,
        fail: str | None,
        logs: tuple[str, ...] | None,
        duration_s: float | None,
        outcome: tuple[str | None, str | None],
    ) -> None:
        manifest_text, source_error = outcome
        reason = source_error or fail
        lines = (
            list(logs)
            if logs is not None
            else self._default_build_lines(build, manifest_text, source_error, failing=bool(fail))
        )
        if reason:
            lines.append(f"ERROR: {reason}")
        duration = seconds_to_ns(self.timing.build if duration_s is None else duration_s)
        start = at + seconds_to_ns(self.timing.process_start)
        # Only the build pod moves its build on (convox-api.md §4.3): once the pod is deleted,
        # the build writes nothing more and reads ``running`` forever, as on a rack.
        token = pod.token
        if manifest_text is not None:

            def read_manifest(_: int) -> None:
                if self._alive(pod, token):
                    build.manifest = manifest_text

            self._at(start, read_manifest)
        for index, line in enumerate(lines):
            offset = duration * (index + 1) // (len(lines) + 1)
            data = (line + "\n").encode()

            def emit(due: int, data: bytes = data) -> None:
                if self._alive(pod, token):
                    build.output.append((due, data))

            self._at(start + offset, emit)

        def finish(due: int) -> None:
            if build.app not in self._apps or not self._alive(pod, token):
                return
            key = f"build/{build.id}/logs"
            build.logs = self.object_store_bytes(
                build.app, key, b"".join(d for _, d in build.output)
            )
            build.ended = self._stamp(due)
            if reason:
                build.status = "failed"
                self._end_pod(pod, due, 1)
            else:
                release = self._create_release(build.app, due, build=build.id)
                build.release = release.id
                build.status = "complete"
                self._end_pod(pod, due, 0)
            build.finished = True

        self._at(start + duration, finish)

    def _default_build_lines(
        self, build: Build, manifest_text: str | None, error: str | None, *, failing: bool
    ) -> list[str]:
        """A failing build stops inside its first service: no push, no ``Build complete``."""
        lines = ["Building: ."]
        if error or manifest_text is None:
            return lines
        try:
            services = [s.name for s in load_manifest(manifest_text).services]
        except ManifestError:
            services = []
        for service in services:
            lines.append(f"Building service: {service}")
            if failing:
                return lines
            lines.append(f"Pushing: {self.registry(build.app)}:{service}.{build.id}")
        if not failing:
            lines.append(f"Build complete: {build.id}")
        return lines

    def registry(self, app: str) -> str:
        """The image repository of ``app``."""
        return f"registry.{self.domain}/{app}"

    def build_update(self, app: str, build_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """``PUT /apps/{app}/builds/{id}``: set any of the updatable fields."""
        with self.locked():
            build = self._build(app, build_id)
            for key, value in fields.items():
                setattr(build, key, value)
            if build.status in ("complete", "failed"):
                build.finished = True
            return build.to_wire()

    def build_import_image(self, app: str, build_id: str, image: str) -> None:
        """``POST /apps/{app}/builds/{id}/image``: async; ends ``complete`` without a release."""
        with self.locked() as now:
            build = self._build(app, build_id)
            if build.status == "running":
                raise RackError(
                    409,
                    f"build {build_id} is already importing; wait for completion before retrying",
                )
            if build.manifest.strip() == "":
                raise RackError(
                    422,
                    f"build {build_id} has no manifest; "
                    "populate via BuildUpdate before BuildImportImage",
                )
            build.status = "running"
            build.started = self._stamp(now)

            def done(due: int) -> None:
                build.status = "complete"
                build.ended = self._stamp(due)
                build.finished = True

            self._at(now + seconds_to_ns(self.timing.build), done)

    def build_import(self, app: str, path: Path) -> dict[str, Any]:
        """``POST /apps/{app}/builds/import``: synchronous; a new complete build and release."""
        source, _services = archive.read_build_import(path)
        with self.locked() as now:
            self._app(app)
            build = Build(
                id=new_id("B"),
                app=app,
                description=str(source.get("description", "")),
                logs=str(source.get("logs", "")),
                manifest=str(source.get("manifest", "")),
                started=self._stamp(now),
            )
            build.ended = self._stamp(now)
            self._builds[app][build.id] = build
            release = self._create_release(app, now, build=build.id)
            build.status = "complete"
            build.release = release.id
            build.finished = True
            return build.to_wire()

    def build_export(self, app: str, build_id: str, destination: Path) -> None:
        """``GET /apps/{app}/builds/{id}.tgz``: write the export archive to ``destination``."""
        with self.locked():
            build = self._build(app, build_id)
            release = self._release(app, build.release)
            env = parse_env(release.env)
            manifest = self._manifest(build.manifest)
            for service in manifest.services:
                manifest.service_environment(service.name, env)
            services = [s.name for s in manifest.services]
            if not services:
                raise RackError(400, "no services found to export")
            data = render_json(build.to_wire())[:-1]
        archive.write_build_export(destination, data, build.id, services)

    # --- releases --------------------------------------------------------------------------

    def _release(self, app: str, release_id: str) -> Release:
        release = self._releases.get(app, {}).get(release_id.upper())
        if release is None:
            raise RackError(500, f'releases.convox.com "{release_id.lower()}" not found')
        return release

    def _newest_release(self, app: str) -> Release | None:
        releases = self._releases.get(app, {})
        return max(releases.values(), key=lambda r: r.created) if releases else None

    def release_get(self, app: str, release_id: str) -> dict[str, Any]:
        """``GET /apps/{app}/releases/{id}``."""
        with self.locked():
            return self._release(app, release_id).to_wire()

    def release_list(self, app: str, limit: int | None) -> list[dict[str, Any]]:
        """``GET /apps/{app}/releases``: newest first by ``created``, ``limit`` default 10."""
        with self.locked():
            self._app(app)
            releases = sorted(self._releases[app].values(), key=lambda r: r.created, reverse=True)
            return [r.to_wire() for r in releases[: 10 if limit is None else max(limit, 0)]]

    def release_create(
        self,
        app: str,
        *,
        build: str | None = None,
        env: str | None = None,
        description: str | None = None,
        parent: str | None = None,
    ) -> dict[str, Any]:
        """``POST /apps/{app}/releases`` with the fork rule of convox-api.md §4.4."""
        with self.locked() as now:
            self._app(app)
            return self._create_release(
                app, now, build=build, env=env, description=description, parent=parent
            ).to_wire()

    def _create_release(
        self,
        app: str,
        at: int,
        *,
        build: str | None = None,
        env: str | None = None,
        description: str | None = None,
        parent: str | None = None,
    ) -> Release:
        release = Release(id=new_id("R"), app=app)
        if parent:
            base: Release | None = self._release(app, parent)
        else:
            base = self._newest_release(app)
        if base is not None:
            release.build, release.env = base.build, base.env
        if build is not None:
            release.build = build
        if release.build:
            source = self._build(app, release.build)
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
        self._releases[app][release.id] = release
        return release

    def _manifest(self, text: str) -> Manifest:
        try:
            return load_manifest(text)
        except ManifestError as exc:
            raise RackError(500, str(exc)) from exc

    def promote_check(self, app: str, release_id: str, *, force: bool) -> Release:
        """The synchronous promote pre-checks (403, 400 empty manifest, 400 older release)."""
        with self.locked():
            target = self._app(app)
            if not force and target.status != "running":
                raise RackError(403, "app is currently updating")
            release = self._release(app, release_id)
            if release.manifest.strip() == "":
                raise RackError(400, "can not promote a release with an empty manifest")
            if target.release:
                active = self._release(app, target.release)
                if release.created < active.created:
                    raise RackError(400, "can not promote an older release, try rollback")
            return release

    def release_promote(
        self, app: str, release_id: str, *, force: bool, timeout: int | None
    ) -> None:
        """``POST /apps/{app}/releases/{id}/promote``: pre-checks of §4.4, then an async rollout."""
        with self.locked() as now:
            target = self._app(app)
            release = self.promote_check(app, release_id, force=force)
            manifest = self._manifest(release.manifest)
            env = parse_env(release.env)
            for service in manifest.services:
                manifest.service_environment(service.name, env)
            self._rollout(
                target,
                now,
                release.id,
                kind="promote",
                timeout=3000 if timeout is None else timeout,
            )
            self._deploy(target, now, release.id)

    # --- services and their pods -----------------------------------------------------------

    def _service_specs(self, app: App, release_id: str) -> list[tuple[str, int, int, int, Any]]:
        if not release_id:
            return []
        release = self._releases[app.name].get(release_id)
        if release is None:
            return []
        manifest = self._manifest(release.manifest)
        specs = []
        for service in manifest.services:
            override = app.service_overrides.get(service.name, {})
            specs.append(
                (
                    service.name,
                    override.get("count", service.count_min),
                    override.get("cpu", service.cpu),
                    override.get("memory", service.memory),
                    service,
                )
            )
        return specs

    def _template_hash(
        self, release: str, service: str, cpu: int, memory: int, generation: int
    ) -> str:
        digest = hashlib.sha256(
            f"{release}/{service}/{cpu}/{memory}/{generation}".encode()
        ).digest()
        alphabet = "bcdfghjklmnpqrstvwxz2456789"
        return "".join(alphabet[b % len(alphabet)] for b in digest[:9])

    def _deploy(self, app: App, at: int, release_id: str, only: str | None = None) -> None:
        """Create the pods of ``release_id``'s services (old ones retire on settle)."""
        release = self._releases[app.name].get(release_id)
        if release is None:
            return
        for name, count, cpu, memory, service in self._service_specs(app, release_id):
            if only is not None and name != only:
                continue
            generation = app.service_overrides.get(name, {}).get("generation", 0)
            template = self._template_hash(release_id, name, cpu, memory, generation)
            existing = [
                p
                for p in self._pods[app.name].values()
                if p.kind == "service" and p.id.startswith(f"{name}-{template}-")
            ]
            for _ in range(count - len(existing)):
                pod = self._new_pod(
                    app.name,
                    name,
                    kind="service",
                    release=release_id,
                    args=shell_split(service.command) if service.command else [],
                    image=service.image or f"{self.registry(app.name)}:{name}.{release.build}",
                    at=at,
                    template=template,
                )
                pod.cpu_request, pod.memory_request = cpu, memory
                pod.ports = [str(service.port)] if service.port else None
                self._start_pod(pod, at)
            for pod in sorted(existing, key=lambda p: p.created, reverse=True)[
                : max(len(existing) - count, 0)
            ]:
                self._remove_pod(pod)

    def _retire_pods(self, app: str, at: int, *, keep_release: str, keep_current: bool) -> None:
        target = self._apps.get(app)
        if target is None:
            return
        current = set()
        if keep_current:
            for name, _count, cpu, memory, _service in self._service_specs(target, keep_release):
                generation = target.service_overrides.get(name, {}).get("generation", 0)
                current.add(
                    f"{name}-{self._template_hash(keep_release, name, cpu, memory, generation)}-"
                )
        for pod in list(self._pods.get(app, {}).values()):
            if pod.kind != "service":
                continue
            if not any(pod.id.startswith(prefix) for prefix in current):
                self._remove_pod(pod)

    def manifest_service(self, app: str, service: str) -> dict[str, Any]:
        """``GET /apps/{app}/manifest/services/{service}``: the active manifest's declaration."""
        with self.locked():
            target = self._app(app)
            spec = None
            if target.release:
                spec = self._manifest(self._release(app, target.release).manifest).service(service)
            if spec is None:
                raise RackError(500, f"service {service} not found in manifest for app {app}")
            return {
                "name": spec.name,
                "environment": list(spec.environment),
                "scale": {"min": spec.count_min, "max": spec.count_max},
            }

    def service_list(self, app: str) -> list[dict[str, Any]]:
        """``GET /apps/{app}/services``: services of the active release (``[]`` without one)."""
        with self.locked():
            target = self._app(app)
            services = []
            for name, count, cpu, memory, spec in self._service_specs(target, target.release):
                if spec.internal:
                    domain = f"{name}.{app}.{self.name}.local"
                else:
                    domain = f"{name}.{app}.{self.domain}"
                ports = None
                if spec.port:
                    ports = [
                        {
                            "balancer": 0 if spec.internal else 443,
                            "certificate": "",
                            "container": spec.port,
                        }
                    ]
                entry: dict[str, Any] = {
                    "count": count,
                    "cpu": cpu,
                    "domain": domain,
                    "gpu": 0,
                    "gpu-vendor": "",
                    "memory": memory,
                    "name": name,
                    "nlb": None,
                    "ports": ports,
                    "min": spec.count_min,
                    "max": spec.count_max,
                }
                if spec.count_min == 0 and count == 0:
                    entry["cold-start"] = True
                if spec.autoscale:
                    entry["autoscale"] = {"enabled": True}
                entry["scale-override-active"] = False
                entry["triggers-override-active"] = False
                services.append(entry)
            return services

    def service_update(
        self,
        app: str,
        name: str,
        *,
        count: int | None = None,
        cpu: int | None = None,
        memory: int | None = None,
    ) -> None:
        """``PUT /apps/{app}/services/{name}``: patch the deployment; the app is ``updating``."""
        with self.locked() as now:
            target = self._app(app)
            names = [spec[0] for spec in self._service_specs(target, target.release)]
            if name not in names:
                raise RackError(500, f'deployments.apps "{name}" not found')
            override = target.service_overrides.setdefault(name, {})
            for key, value in (("count", count), ("cpu", cpu), ("memory", memory)):
                if value is not None:
                    override[key] = value
            self._rollout(target, now, target.release, kind="scale", timeout=None)
            self._deploy(target, now, target.release, only=name)

    def service_restart(self, app: str, name: str) -> None:
        """``POST /apps/{app}/services/{name}/restart``: replace that service's pods."""
        with self.locked() as now:
            target = self._app(app)
            names = [spec[0] for spec in self._service_specs(target, target.release)]
            if name not in names:
                raise RackError(500, f'deployments.apps "{name}" not found')
            override = target.service_overrides.setdefault(name, {})
            override["generation"] = override.get("generation", 0) + 1
            self._deploy(target, now, target.release, only=name)
            self._retire_pods(app, now, keep_release=target.release, keep_current=True)

    # --- pods ------------------------------------------------------------------------------

    def _new_pod(
        self,
        app: str,
        service: str,
        *,
        kind: str,
        release: str,
        args: list[str],
        image: str,
        at: int,
        template: str | None = None,
    ) -> Pod:
        while True:
            pid = (
                f"{service}-{template}-{pod_suffix()}" if template else f"{service}-{pod_suffix()}"
            )
            if pid not in self._pods[app]:
                break
        number = len(self._pods[app]) % 250 + 2
        pod = Pod(
            id=pid,
            app=app,
            service=service,
            release=release,
            kind=kind,
            args=args,
            image=image,
            created=at,
            host=f"10.1.{secrets.randbelow(250) + 1}.{number}",
            instance=next(iter(self._instances), ""),
        )
        self._pods[app][pid] = pod
        return pod

    def _alive(self, pod: Pod, token: int) -> bool:
        return self._pods.get(pod.app, {}).get(pod.id) is pod and pod.token == token

    def _start_pod(self, pod: Pod, at: int, then: Callable[[int], None] | None = None) -> None:
        token = pod.token

        def running(due: int) -> None:
            if self._alive(pod, token):
                pod.status = "running"
                if then is not None:
                    then(due)

        self._at(at + seconds_to_ns(self.timing.process_start), running)

    def _end_pod(self, pod: Pod, at: int, exit_code: int) -> None:
        if self._pods.get(pod.app, {}).get(pod.id) is not pod:
            return
        pod.token += 1
        token = pod.token
        pod.status = "complete" if exit_code == 0 else "failed"
        pod.exit_code = exit_code
        pod.ended = at

        def reap(_: int) -> None:
            if self._alive(pod, token):
                self._remove_pod(pod)

        self._at(at + seconds_to_ns(self.timing.reap), reap)

    def _remove_pod(self, pod: Pod) -> None:
        pods = self._pods.get(pod.app, {})
        if pods.get(pod.id) is pod:
            del pods[pod.id]
            pod.token += 1

    def _pod(self, app: str, pid: str) -> Pod:
        pod = self._pods.get(app, {}).get(pid)
        if pod is None:
            raise RackError(500, f'pods "{pid}" not found')
        return pod

    def process_list(
        self, app: str, *, service: str | None = None, release: str | None = None
    ) -> list[dict[str, Any]]:
        """``GET /apps/{app}/processes``: service, one-off and build pods."""
        with self.locked():
            self._app(app)
            pods = [
                p
                for p in self._pods[app].values()
                if (service is None or p.service == service)
                and (release is None or p.release == release)
            ]
            return [p.to_wire() for p in sorted(pods, key=lambda p: (p.service, p.id))]

    def process_get(self, app: str, pid: str) -> dict[str, Any]:
        """``GET /apps/{app}/processes/{pid}``: gone -> 500 ``pods "<pid>" not found``."""
        with self.locked():
            return self._pod(app, pid).to_wire()

    def process_stop(self, app: str, pid: str) -> None:
        """``DELETE /apps/{app}/processes/{pid}``; a service pod is replaced by its deployment."""
        with self.locked() as now:
            pod = self._pod(app, pid)
            self._remove_pod(pod)
            target = self._apps[app]
            if pod.kind == "service" and pod.release == target.release:
                self._deploy(target, now, pod.release, only=pod.service)

    def process_run(self, app: str, service: str, options: RunOptions) -> dict[str, Any]:
        """``POST /apps/{app}/services/{service}/processes``: a one-off pod, ``pending`` first."""
        with self.locked() as now:
            target = self._app(app)
            release_id = options.release or target.release
            spec = None
            env: dict[str, str] = {}
            build_id = ""
            if release_id:
                release = self._release(app, release_id)
                release_id = release.id
                build_id = release.build
                manifest = self._manifest(release.manifest)
                spec = manifest.service(service)
                if spec is not None:
                    env = manifest.service_environment(service, parse_env(release.env))
            args = shell_split(options.command) if options.command is not None else []
            if options.command is None and spec is not None and spec.command:
                args = shell_split(spec.command)
            image = options.image or (
                (spec.image or f"{self.registry(app)}:{service}.{build_id}")
                if spec is not None
                else ""
            )
            if not image:
                raise RackError(
                    500,
                    f'Pod "{service}-{pod_suffix()}" is invalid: '
                    "spec.containers[0].image: Required value",
                )
            pod = self._new_pod(
                app, service, kind="run", release=release_id, args=args, image=image, at=now
            )
            pod.environment = {**env, **options.environment}
            pod.cpu_request = options.cpu or 0
            pod.memory_request = options.memory or 0
            pod.gpu = options.gpu or 0
            wire = pod.to_wire()
            self._start_pod(pod, now, then=lambda due: self._run_command(pod, due))
            return wire

    def _run_command(self, pod: Pod, at: int) -> None:
        if not pod.args:
            return
        if pod.args[0] == "sleep" and len(pod.args) == 2:
            try:
                seconds = float(pod.args[1])
            except ValueError:
                seconds = None
            if seconds is not None:
                token = pod.token
                self._at(
                    at + seconds_to_ns(seconds),
                    lambda due: self._end_pod(pod, due, 0) if self._alive(pod, token) else None,
                )
                return
        invocation = Invocation(
            command=" ".join(pod.args),
            argv=tuple(pod.args),
            app=pod.app,
            service=pod.service,
            process=pod.id,
            mode="run",
            environment=dict(pod.environment),
        )
        result = self.scripts.resolve(invocation)
        self._schedule_output(pod, at, result)

    def _schedule_output(self, pod: Pod, at: int, result: CommandResult) -> None:
        token = pod.token
        duration = self.timing.process_run if result.duration is None else result.duration
        pending = b""
        for offset, data in result.timeline():
            pending += data
            *complete, pending = pending.split(b"\n")
            for line in complete:

                def emit(due: int, line: bytes = line) -> None:
                    if self._alive(pod, token):
                        self._log(pod.app, due, f"service/{pod.service}/{pod.id}", line, pod)

                self._at(at + seconds_to_ns(min(offset, duration)), emit)
        if pending:
            tail = pending
            self._at(
                at + seconds_to_ns(duration),
                lambda due: (
                    self._log(pod.app, due, f"service/{pod.service}/{pod.id}", tail, pod)
                    if self._alive(pod, token)
                    else None
                ),
            )

        def finish(due: int) -> None:
            if self._alive(pod, token):
                self._end_pod(pod, due, result.exit_code)

        self._at(at + seconds_to_ns(duration), finish)

    # --- exec ------------------------------------------------------------------------------

    def exec_target(
        self, app: str, pid: str, command: str, entrypoint: bool
    ) -> tuple[Pod, list[str]]:
        """The pod an exec runs in and the command's argv (``pid`` may name a service, §4.6)."""
        with self.locked():
            running = [
                p
                for p in self._pods.get(app, {}).values()
                if p.service == pid and p.status == "running"
            ]
            pod = secrets.choice(running) if running else self._pod(app, pid)
            argv = shell_split(command)
            if entrypoint:
                release = self._release(app, pod.release)
                build = self._build(app, release.build)
                if build.entrypoint:
                    argv = shell_split(build.entrypoint) + argv
            return replace(pod), argv

    def pod_status(self, app: str, pid: str) -> str | None:
        """A pod's status, None once it is gone."""
        with self.locked():
            pod = self._pods.get(app, {}).get(pid)
            return None if pod is None else pod.status

    # --- logs ------------------------------------------------------------------------------

    def _log(self, app: str, at: int, stream: str, message: bytes, pod: Pod | None = None) -> None:
        entries = self._logs.get(app)
        if entries is None:
            return
        entries.append(
            LogEntry(
                time=at,
                stream=stream,
                message=message,
                service=pod.service if pod else "",
                pod=pod.id if pod else "",
            )
        )

    def emit_log(self, app: str, message: str | bytes, *, service: str = "", pod: str = "") -> None:
        """Append a line to ``app``'s logs (``service/<svc>/<pod>`` or ``system/emulator``)."""
        data = message.encode() if isinstance(message, str) else message
        with self.locked() as now:
            self._app(app)
            stream = f"service/{service}/{pod}" if service else "system/emulator"
            self._logs[app].append(
                LogEntry(time=now, stream=stream, message=data, service=service, pod=pod)
            )

    def log_entries(self, app: str, start: int) -> tuple[list[LogEntry], int]:
        """Entries of ``app`` from index ``start`` and the next index; 404 when the app is gone."""
        with self.locked():
            self._app(app)
            entries = self._logs[app]
            return entries[start:], len(entries)

    def service_pods(self, app: str, service: str) -> list[str]:
        """Ids of ``service``'s pods (service replicas and one-off processes)."""
        with self.locked():
            return [p.id for p in self._pods.get(app, {}).values() if p.service == service]

    def app_exists(self, app: str) -> bool:
        """Whether ``app`` exists (including while deleting)."""
        with self.locked():
            return app in self._apps

    # --- system ----------------------------------------------------------------------------

    def system(self) -> dict[str, Any]:
        """``GET /system`` (§5.7)."""
        return {
            "count": 0,
            "domain": f"router.{self.domain}",
            "name": self.name,
            "provider": "k8s",
            "rack-domain": f"api.{self.domain}",
            "router-internal": "",
            "region": "",
            "status": "running",
            "type": "",
            "version": self.version,
        }

    def system_processes(self) -> list[dict[str, Any]]:
        """``GET /system/processes``: the rack's own components."""
        processes = []
        for service in ("api", "atom", "router"):
            pod = Pod(
                id=f"{service}-{self._template_hash('system', service, 0, 0, 0)}-{service[:1]}rack",
                app="system",
                service=service,
                release=self.version,
                kind="service",
                args=[],
                image=f"convox/convox:{self.version}",
                created=self.started,
                status="running",
                instance=next(iter(self._instances), ""),
            )
            processes.append(pod.to_wire())
        return processes

    def instance_list(self) -> list[dict[str, Any]]:
        """``GET /instances`` (§5.9)."""
        with self.locked():
            pods = sum(len(p) for p in self._pods.values())
            return [
                {
                    "agent": False,
                    "cpu": 0.05,
                    "cpu-capacity": 2,
                    "cpu-allocatable": 1.93,
                    "gpu-capacity": 0,
                    "gpu-allocatable": 0,
                    "id": node,
                    "memory": 812.5,
                    "memory-capacity": 7820,
                    "memory-allocatable": 7100,
                    "private-ip": info["ip"],
                    "processes": pods,
                    "public-ip": "",
                    "status": "running",
                    "started": format_time(info["started"]),
                }
                for node, info in sorted(self._instances.items())
            ]

    def instance_terminate(self, node: str) -> None:
        """``DELETE /instances/{id}``."""
        with self.locked():
            if self._instances.pop(node, None) is None:
                raise RackError(500, f'nodes "{node}" not found')

    def instance_exists(self, node: str) -> bool:
        """Whether ``node`` is a node of the rack."""
        with self.locked():
            return node in self._instances

    def registry_list(self) -> list[dict[str, str]]:
        """``GET /registries``."""
        with self.locked():
            return [
                {"server": s, "username": u, "password": p}
                for s, (u, p) in sorted(self._registries.items())
            ]

    def registry_add(self, server: str, username: str, password: str) -> dict[str, str]:
        """``POST /registries``."""
        with self.locked():
            self._registries[server] = (username, password)
            return {"server": server, "username": username, "password": password}

    def registry_remove(self, server: str) -> None:
        """``DELETE /registries/{server}``."""
        with self.locked():
            if self._registries.pop(server, None) is None:
                raise RackError(500, f'secrets "registry-{server}" not found')

    def webhook_list(self) -> list[dict[str, Any]]:
        """Rack resources: only webhooks exist on v3 (§4.9)."""
        with self.locked():
            return [
                {
                    "name": n,
                    "parameters": {"Url": u},
                    "status": "running",
                    "type": "webhook",
                    "url": "",
                }
                for n, u in sorted(self._webhooks.items())
            ]

    def webhook_create(self, name: str | None, url: str) -> dict[str, Any]:
        """Create a webhook resource."""
        with self.locked():
            key = (
                name
                or "webhook-"
                + hashlib.sha256(f"{url}-{secrets.randbits(62)}".encode()).hexdigest()[:6]
            )
            self._webhooks[key] = url
        return self.webhook_get(key)

    def webhook_get(self, name: str) -> dict[str, Any]:
        """One rack resource; 404 ``no such resource``."""
        for resource in self.webhook_list():
            if resource["name"] == name:
                return resource
        raise RackError(404, f"no such resource: {name}")

    def webhook_delete(self, name: str) -> None:
        """Delete a webhook resource."""
        self.webhook_get(name)
        with self.locked():
            self._webhooks.pop(name, None)

    def app_resources(self, app: str) -> list[dict[str, Any]]:
        """``GET /apps/{app}/resources``: resources declared in the active manifest."""
        with self.locked():
            target = self._app(app)
            if not target.release:
                return []
            manifest = self._manifest(self._release(app, target.release).manifest)
            return [
                {
                    "name": name,
                    "status": "running",
                    "type": kind,
                    "url": f"{kind}://{app}:password@resource-{name}.{self.namespace(app)}.svc.cluster.local/app",
                }
                for name, kind in manifest.resources
            ]

    def app_resource(self, app: str, name: str) -> dict[str, Any]:
        """``GET /apps/{app}/resources/{name}``."""
        for resource in self.app_resources(app):
            if resource["name"] == name:
                return resource
        raise RackError(404, f"resource not found: {name}")

    def certificate_list(self) -> list[dict[str, Any]]:
        """``GET /certificates``."""
        with self.locked():
            return [self._certificates[k] for k in sorted(self._certificates, key=str.upper)]

    def certificate_add(self, domain: str, *, status: str) -> dict[str, Any]:
        """Create (or generate) a certificate record."""
        with self.locked() as now:
            cert_id = "cert-" + secrets.token_hex(5)
            cert = {
                "id": cert_id,
                "domain": domain,
                "domains": [domain] if domain else [],
                "expiration": format_time(now + 90 * 86400 * _NS_PER_S),
                "status": status,
            }
            self._certificates[cert_id] = cert
            return cert

    def certificate_delete(self, cert_id: str) -> None:
        """``DELETE /certificates/{id}``."""
        with self.locked():
            if self._certificates.pop(cert_id, None) is None:
                raise RackError(500, f'secrets "{cert_id}" not found')

    def certificate_get(self, cert_id: str) -> dict[str, Any]:
        """One certificate."""
        with self.locked():
            cert = self._certificates.get(cert_id)
            if cert is None:
                raise RackError(500, f'secrets "{cert_id}" not found')
            return cert

    def jwt_mint(self, role: str, hours: int) -> str:
        """Mint a token for Basic user ``jwt``; ``role`` is ``r``, ``rw`` or ``rwa``."""
        token = secrets.token_urlsafe(32)
        with self.locked() as now:
            self._tokens[token] = (role, now + hours * 3600 * _NS_PER_S)
        return token

    def jwt_role(self, token: str) -> str:
        """The role of a minted token; raises ``RackError(401)`` when invalid or expired."""
        with self.locked() as now:
            entry = self._tokens.get(token)
            if entry is None:
                raise RackError(
                    401,
                    "invalid authentication: token is malformed: "
                    "token contains an invalid number of segments",
                )
            role, expires = entry
            if expires < now:
                raise RackError(
                    401, "invalid authentication: token has invalid claims: token is expired"
                )
            return role

    def jwt_rotate(self) -> None:
        """``PUT /system/jwt/rotate``: every minted token stops working."""
        with self.locked():
            self._tokens.clear()

    # --- seeding (no HTTP) -----------------------------------------------------------------

    def seed_release(
        self,
        app: str,
        manifest: str,
        *,
        env: str | None = None,
        description: str = "",
        promote: bool = True,
        entrypoint: str = "",
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A completed build of ``manifest`` and its release, promoted and settled if asked."""
        with self.locked() as now:
            self._app(app)
            try:
                parsed = load_manifest(manifest)
            except ManifestError as exc:
                raise ValueError(f"invalid manifest: {exc}") from exc
            build = Build(
                id=new_id("B"),
                app=app,
                description=description,
                entrypoint=entrypoint,
                manifest=manifest,
                started=self._stamp(now),
                status="complete",
                finished=True,
            )
            self._builds[app][build.id] = build
            lines = ["Building: ."] + [f"Building service: {s.name}" for s in parsed.services]
            build.logs = self.object_store_bytes(
                app, f"build/{build.id}/logs", "".join(f"{x}\n" for x in lines).encode()
            )
            build.ended = self._stamp(now)
            release = self._create_release(app, now, build=build.id, env=env)
            build.release = release.id
            if promote:
                self._settle_on(self._apps[app], now, release.id)
            return build.to_wire(), release.to_wire()

    def seed_env(self, app: str, env: str, *, promote: bool = True) -> dict[str, Any]:
        """A new release with ``env`` (forked from the newest), promoted and settled if asked."""
        with self.locked() as now:
            target = self._app(app)
            release = self._create_release(app, now, env=env)
            if promote:
                if not release.manifest.strip():
                    raise ValueError(
                        f"app {app} has no build: seed a release with a manifest first"
                    )
                self._settle_on(target, now, release.id)
            return release.to_wire()

    def _settle_on(self, app: App, at: int, release_id: str) -> None:
        app.rollout_token += 1
        app.release = release_id
        app.status = "running"
        app.atom_state = "Running"
        self._deploy(app, at - seconds_to_ns(self.timing.process_start), release_id)
        self._retire_pods(app.name, at, keep_release=release_id, keep_current=True)
