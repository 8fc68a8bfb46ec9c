"""Builds: created from a source object, run by a build pod, imported and exported (§4.3).

A build's pod reads the source's manifest, checks it and finds each service's Dockerfile
(``builder``), writes its output lines over ``Timing.build`` and finishes it ``complete`` with
a new release, or ``failed`` after ``ERROR: <reason>`` without one; the logs become an object.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .. import archive
from ..builder import BuildJob, BuildOutcome, run_builder
from ..encoding import new_id, parse_int, render_json
from ..environment import parse_env
from ..errors import RackError
from ..manifest import ManifestError, load_manifest
from ..models import Build, Pod
from ..timing import seconds_to_ns
from ._base import AppRecords
from .releases import parse_manifest

__all__ = ["BuildCreateOptions", "Builds"]


@dataclass(frozen=True)
class BuildCreateOptions:
    """The fields of ``POST /apps/{app}/builds`` the emulator acts on (the server's
    ``structs.BuildCreateOptions``; the others are accepted and ignored), with the server's
    defaults for absent or empty ones."""

    description: str = ""
    git_sha: str = ""
    manifest: str = "convox.yml"
    external: bool = False


class Builds(AppRecords[Build]):
    """Builds per app."""

    def build(self, app: str, build_id: str) -> Build:
        """The build record (ids are case-insensitive); 500 like the k8s provider."""
        return self._record(app, build_id, "builds.convox.com")

    def find(self, app: str, build_id: str) -> Build | None:
        """The build with exactly this id, None when there is none."""
        return self._records.get(app, {}).get(build_id)

    def build_get(self, app: str, build_id: str) -> dict[str, Any]:
        """``GET /apps/{app}/builds/{id}``."""
        with self.locked():
            return self.build(app, build_id).to_wire()

    def build_record(self, app: str, build_id: str) -> Build:
        """A copy of the build record (for log streaming)."""
        with self.locked():
            return replace(self.build(app, build_id), output=list(self.build(app, build_id).output))

    def build_list(self, app: str, limit: int | None) -> list[dict[str, Any]]:
        """``GET /apps/{app}/builds``: newest first, ``limit`` default 10."""
        with self.locked():
            self.rack.apps.app(app)
            builds = sorted(self._records[app].values(), key=lambda b: b.started or 0, reverse=True)
            return [b.to_wire() for b in builds[: 10 if limit is None else max(limit, 0)]]

    def build_create(
        self, app: str, url: str, options: BuildCreateOptions, source_path: Path | None
    ) -> dict[str, Any]:
        """``POST /apps/{app}/builds``: a ``running`` build, finished after ``Timing.build``.

        ``source_path`` is the object file the URL points to, resolved by the caller outside the
        lock (None when missing); the tarball is inspected before this call.
        """
        manifest_text, source_error = self._inspect_source(app, url, options.manifest, source_path)
        with self.locked():
            for param, label in (("BuildCpu", "cpu"), ("BuildMem", "mem")):
                value = self.rack.apps.app(app).parameters.get(param, "")
                if value:
                    try:
                        parse_int(value, "strconv.ParseInt")
                    except RackError as exc:
                        raise RackError(
                            400, f"invalid build {label}: {value}, err: {exc.message}"
                        ) from exc
            newest = self.rack.releases.newest(app)
            app_env = parse_env(newest.env) if newest is not None else {}
        script = None if options.external else self.scripts.take_build(app)
        build_id = new_id("B")
        outcome = BuildOutcome(error=source_error)
        if manifest_text is not None and source_path is not None and script is not None:
            outcome = run_builder(
                BuildJob(
                    build_id=build_id,
                    app=app,
                    rack=self.rack.name,
                    registry=self.rack.apps.registry(app),
                    manifest_text=manifest_text,
                    source=source_path,
                    env=app_env,
                    fail=script.fail,
                )
            )
        with self.locked() as now:
            target = self.rack.apps.app(app)
            build = Build(
                id=build_id,
                app=app,
                description=options.description,
                git_sha=options.git_sha,
                started=self._stamp(now),
            )
            self._records[app][build.id] = build
            if options.external or script is None:
                wire = build.to_wire()
                rack = self.rack
                wire["repository"] = f"https://convox:{rack.password or ''}@api.{rack.domain}/{app}"
                return wire
            processes = self.rack.processes
            pod = processes.new_pod(
                app,
                "build",
                kind="build",
                release=target.release,
                args=["build", "-method", "tgz", "-cache", "true"],
                image=f"convox/convox:{self.rack.version}-build",
                at=now,
            )
            build.process = pod.id
            build.status = "running"
            build.entrypoint = script.entrypoint
            processes.start_pod(pod, now)
            self._run_build(
                build,
                pod=pod,
                at=now,
                fail=script.fail,
                logs=script.logs,
                duration_s=script.duration,
                manifest_text=manifest_text,
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
        manifest_text: str | None,
        outcome: BuildOutcome,
    ) -> None:
        reason = outcome.error or (fail if logs is not None else None)
        lines = list(logs) if logs is not None else list(outcome.lines)
        if reason:
            lines.append(f"ERROR: {reason}")
        duration = seconds_to_ns(self.timing.build if duration_s is None else duration_s)
        start = at + seconds_to_ns(self.timing.process_start)
        processes = self.rack.processes
        # Only the build pod moves its build on (docs/rack-api.md §4.3): once the pod is deleted,
        # the build writes nothing more and reads ``running`` forever, as on a rack.
        token = pod.token
        if manifest_text is not None:

            def read_manifest(_: int) -> None:
                if processes.alive(pod, token):
                    build.manifest = manifest_text

            self._at(start, read_manifest)
        for index, line in enumerate(lines):
            offset = duration * (index + 1) // (len(lines) + 1)
            data = (line + "\n").encode()

            def emit(due: int, data: bytes = data) -> None:
                if processes.alive(pod, token):
                    build.output.append((due, data))

            self._at(start + offset, emit)

        def finish(due: int) -> None:
            if self.rack.apps.find(build.app) is None or not processes.alive(pod, token):
                return
            key = f"build/{build.id}/logs"
            build.logs = self.rack.objects.object_store_bytes(
                build.app, key, b"".join(d for _, d in build.output)
            )
            build.ended = self._stamp(due)
            if reason:
                build.status = "failed"
                processes.end_pod(pod, due, 1)
            else:
                release = self.rack.releases.create(build.app, due, build=build.id)
                build.release = release.id
                build.status = "complete"
                processes.end_pod(pod, due, 0)
            build.finished = True

        self._at(start + duration, finish)

    def build_update(self, app: str, build_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """``PUT /apps/{app}/builds/{id}``: set any of the updatable fields."""
        with self.locked():
            build = self.build(app, build_id)
            for key, value in fields.items():
                setattr(build, key, value)
            if build.status in ("complete", "failed"):
                build.finished = True
            return build.to_wire()

    def build_import_image(self, app: str, build_id: str, image: str) -> None:
        """``POST /apps/{app}/builds/{id}/image``: async; ends ``complete`` without a release."""
        with self.locked() as now:
            build = self.build(app, build_id)
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
            self.rack.apps.app(app)
            build = Build(
                id=new_id("B"),
                app=app,
                description=str(source.get("description", "")),
                logs=str(source.get("logs", "")),
                manifest=str(source.get("manifest", "")),
                started=self._stamp(now),
            )
            build.ended = self._stamp(now)
            self._records[app][build.id] = build
            release = self.rack.releases.create(app, now, build=build.id)
            build.status = "complete"
            build.release = release.id
            build.finished = True
            return build.to_wire()

    def build_export(self, app: str, build_id: str, destination: Path) -> None:
        """``GET /apps/{app}/builds/{id}.tgz``: write the export archive to ``destination``."""
        with self.locked():
            build = self.build(app, build_id)
            release = self.rack.releases.release(app, build.release)
            env = parse_env(release.env)
            manifest = parse_manifest(build.manifest)
            for service in manifest.services:
                manifest.service_environment(service.name, env)
            services = [s.name for s in manifest.services]
            if not services:
                raise RackError(400, "no services found to export")
            data = render_json(build.to_wire())[:-1]
        archive.write_build_export(destination, data, build.id, services)

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
        apps = self.rack.apps
        with self.locked() as now:
            target = apps.app(app)
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
            self._records[app][build.id] = build
            lines = ["Building: ."] + [
                f"Running: docker push {apps.registry(app)}:{s.name}.{build.id}"
                for s in parsed.services
            ]
            build.logs = self.rack.objects.object_store_bytes(
                app, f"build/{build.id}/logs", "".join(f"{x}\n" for x in lines).encode()
            )
            build.ended = self._stamp(now)
            release = self.rack.releases.create(app, now, build=build.id, env=env)
            build.release = release.id
            if promote:
                apps.settle_on(target, now, release.id)
            return build.to_wire(), release.to_wire()
