"""Processes: the pods of services, builds and one-off runs, and exec into them (§4.6).

A pod is ``pending``, ``running`` after ``Timing.process_start``, then ends (``complete`` or
``failed``) and is reaped after ``Timing.reap``. Every scheduled step carries the pod's token,
so a pod removed or ended meanwhile ignores it. Execs received are kept in ``execs``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from typing_extensions import Unpack

from ..encoding import pod_suffix, shell_split
from ..environment import parse_env
from ..errors import RackError
from ..models import Pod
from ..scripts import CommandResult, Invocation
from ..timing import seconds_to_ns
from ._base import AppRecords, NewPod, Rack
from .releases import parse_manifest

__all__ = ["ExecRecord", "Processes", "RunOptions"]


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


class Processes(AppRecords[Pod]):
    """Pods per app, one-off runs and the record of execs."""

    def __init__(self, rack: Rack) -> None:
        super().__init__(rack)
        self.execs: list[ExecRecord] = []

    def pods_of(self, app: str) -> list[Pod]:
        """The app's pods (a copy: callers may remove pods while they go through it)."""
        return list(self._records.get(app, {}).values())

    def count(self) -> int:
        """How many pods the rack runs, over all apps."""
        return sum(len(p) for p in self._records.values())

    # --- pod lifecycle ---------------------------------------------------------------------

    def new_pod(self, app: str, service: str, **spec: Unpack[NewPod]) -> Pod:
        """A ``pending`` pod with a fresh name (``<service>[-<template>]-<suffix>``)."""
        template = spec.get("template")
        while True:
            pid = (
                f"{service}-{template}-{pod_suffix()}" if template else f"{service}-{pod_suffix()}"
            )
            if pid not in self._records[app]:
                break
        number = len(self._records[app]) % 250 + 2
        pod = Pod(
            id=pid,
            app=app,
            service=service,
            release=spec["release"],
            kind=spec["kind"],
            args=spec["args"],
            image=spec["image"],
            created=spec["at"],
            host=f"10.1.{secrets.randbelow(250) + 1}.{number}",
            instance=self.rack.rack_system.first_instance(),
        )
        self._records[app][pid] = pod
        return pod

    def alive(self, pod: Pod, token: int) -> bool:
        """Whether ``pod`` still exists and has not moved on since ``token`` was taken."""
        return self._records.get(pod.app, {}).get(pod.id) is pod and pod.token == token

    def start_pod(self, pod: Pod, at: int, then: Callable[[int], None] | None = None) -> None:
        """``running`` after ``Timing.process_start``, then ``then(due)``."""
        token = pod.token
        self._pod_event(pod, at, f"Successfully assigned {pod.app}/{pod.id} to {pod.instance}")
        self._pod_event(pod, at, f'Pulling image "{pod.image}"')

        def running(due: int) -> None:
            if self.alive(pod, token):
                pod.status = "running"
                self._pod_event(pod, due, f'Successfully pulled image "{pod.image}"')
                self._pod_event(pod, due, f"Created container {pod.app}")
                self._pod_event(pod, due, f"Started container {pod.app}")
                if pod.kind == "service" and not pod.seeded:
                    self._container_output(pod, due)
                if then is not None:
                    then(due)

        self._at(at + seconds_to_ns(self.timing.process_start), running)

    def crash_loop(self, pod: Pod, at: int, lines: Sequence[str]) -> None:
        """The pod never becomes ready: after ``Timing.process_start`` its container starts,
        writes ``lines``, exits 1 and reads ``crashed`` (CrashLoopBackOff); it is restarted
        after a back-off that doubles from that start time up to 10 s, until it is removed.
        ``pod.restarts`` counts the restarts; the rack's Process JSON has no such key."""
        token = pod.token
        step = seconds_to_ns(max(self.timing.process_start, 0.05))
        stream = f"service/{pod.service}/{pod.id}"
        self._pod_event(pod, at, f"Successfully assigned {pod.app}/{pod.id} to {pod.instance}")

        def attempt(due: int) -> None:
            if not self.alive(pod, token):
                return
            self._pod_event(pod, due, f"Started container {pod.service}")
            for line in lines:
                self.rack.logs.log(pod.app, due, stream, line.encode(), pod)
            pod.status = "crashed"
            pod.restarts += 1
            self._pod_event(
                pod, due, f"Back-off restarting failed container {pod.service} in pod {pod.id}"
            )
            self._at(due + min(step * 2**pod.restarts, seconds_to_ns(10.0)), attempt)

        pod.status = "starting"
        self._at(at + step, attempt)

    def _pod_event(self, pod: Pod, at: int, message: str) -> None:
        """A Kubernetes event of the pod, as the rack logs it (``system/k8s/<pod>``)."""
        if pod.kind in ("service", "run") and not pod.seeded:
            self.rack.logs.log(pod.app, at, f"system/k8s/{pod.id}", message.encode())

    def _container_output(self, pod: Pod, at: int) -> None:
        """A service replica's output: a start line, then the lines a test scripted."""
        stream = f"service/{pod.service}/{pod.id}"
        command = " ".join(pod.args) or pod.image
        lines = [f"emulated process {pod.id} started: {command}"]
        lines += self.scripts.service_output(pod.app, pod.service)
        for line in lines:
            self.rack.logs.log(pod.app, at, stream, line.encode(), pod)

    def end_pod(self, pod: Pod, at: int, exit_code: int) -> None:
        """The pod's command exited; it is reaped after ``Timing.reap``."""
        if self._records.get(pod.app, {}).get(pod.id) is not pod:
            return
        pod.token += 1
        token = pod.token
        pod.status = "complete" if exit_code == 0 else "failed"
        pod.exit_code = exit_code
        pod.ended = at

        def reap(_: int) -> None:
            if self.alive(pod, token):
                self.remove_pod(pod)

        self._at(at + seconds_to_ns(self.timing.reap), reap)

    def remove_pod(self, pod: Pod) -> None:
        """Delete the pod now; whatever it had scheduled does nothing."""
        pods = self._records.get(pod.app, {})
        if pods.get(pod.id) is pod:
            del pods[pod.id]
            pod.token += 1
            self.rack.files.forget(pod.app, pod.id)

    def pod(self, app: str, pid: str) -> Pod:
        """The pod (call with the lock held); 500 ``pods "<pid>" not found`` when gone."""
        pod = self._records.get(app, {}).get(pid)
        if pod is None:
            raise RackError(500, f'pods "{pid}" not found')
        return pod

    # --- routes ----------------------------------------------------------------------------

    def process_list(
        self, app: str, *, service: str | None = None, release: str | None = None
    ) -> list[dict[str, Any]]:
        """``GET /apps/{app}/processes``: service, one-off and build pods."""
        with self.locked():
            self.rack.apps.app(app)
            pods = [
                p
                for p in self._records[app].values()
                if (service is None or p.service == service)
                and (release is None or p.release == release)
            ]
            return [p.to_wire() for p in sorted(pods, key=lambda p: (p.service, p.id))]

    def process_get(self, app: str, pid: str) -> dict[str, Any]:
        """``GET /apps/{app}/processes/{pid}``: gone -> 500 ``pods "<pid>" not found``."""
        with self.locked():
            return self.pod(app, pid).to_wire()

    def process_stop(self, app: str, pid: str) -> None:
        """``DELETE /apps/{app}/processes/{pid}``; a service pod is replaced by its deployment."""
        with self.locked() as now:
            pod = self.pod(app, pid)
            self.remove_pod(pod)
            target = self.rack.apps.app(app)
            if pod.kind == "service" and pod.release == target.release:
                self.rack.apps.deploy(target, now, pod.release, only=pod.service)

    def process_run(self, app: str, service: str, options: RunOptions) -> dict[str, Any]:
        """``POST /apps/{app}/services/{service}/processes``: a one-off pod, ``pending`` first."""
        with self.locked() as now:
            target = self.rack.apps.app(app)
            release_id = options.release or target.release
            spec = None
            env: dict[str, str] = {}
            build_id = ""
            if release_id:
                release = self.rack.releases.release(app, release_id)
                release_id = release.id
                build_id = release.build
                manifest = parse_manifest(release.manifest)
                spec = manifest.service(service)
                if spec is not None:
                    env = self.environment(app, release_id, service, strict=True)
            args = shell_split(options.command) if options.command is not None else []
            if options.command is None and spec is not None and spec.command:
                args = shell_split(spec.command)
            image = options.image or (
                (spec.image or f"{self.rack.apps.registry(app)}:{service}.{build_id}")
                if spec is not None
                else ""
            )
            if not image:
                raise RackError(
                    500,
                    f'Pod "{service}-{pod_suffix()}" is invalid: '
                    "spec.containers[0].image: Required value",
                )
            pod = self.new_pod(
                app, service, kind="run", release=release_id, args=args, image=image, at=now
            )
            pod.environment = {**env, **options.environment}
            pod.cpu_request = options.cpu or 0
            pod.memory_request = options.memory or 0
            pod.gpu = options.gpu or 0
            wire = pod.to_wire()
            self.start_pod(pod, now, then=lambda due: self._run_command(pod, due))
            return wire

    def environment(
        self, app: str, release_id: str, service: str, *, strict: bool = False
    ) -> dict[str, str]:
        """What the rack puts in a process's environment (*provider/k8s helpers.go*).

        ``RACK``, ``RACK_URL``, ``APP``, ``RELEASE``, ``BUILD``, ``BUILD_DESCRIPTION``,
        ``BUILD_GIT_SHA``, ``SERVICE`` and ``PORT`` (when the service has one), then the
        manifest's variables with the release's values. ``strict``: a required variable
        without a value is the 500 the rack answers; otherwise it is left empty.
        """
        release = self.rack.releases.find(app, release_id)
        if release is None:
            return {}
        env = {"RACK": self.rack.name, "RACK_URL": self.rack.rack_url, "APP": app}
        env["RELEASE"] = release.id
        build = self.rack.builds.find(app, release.build) if release.build else None
        if build is not None:
            env["BUILD"] = build.id
            env["BUILD_DESCRIPTION"] = build.description
            env["BUILD_GIT_SHA"] = build.git_sha
        manifest = parse_manifest(release.manifest)
        spec = manifest.service(service)
        env["SERVICE"] = service
        if spec is not None and spec.port:
            env["PORT"] = str(spec.port)
        try:
            env.update(manifest.service_environment(service, parse_env(release.env)))
        except RackError:
            if strict:
                raise
        return env

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
                    lambda due: self.end_pod(pod, due, 0) if self.alive(pod, token) else None,
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
            files=self.rack.files.store(pod.app, pod.id),
        )
        result = self.scripts.resolve(invocation)
        self._schedule_output(pod, at, result)

    def _schedule_output(self, pod: Pod, at: int, result: CommandResult) -> None:
        token = pod.token
        duration = self.timing.process_run if result.duration is None else result.duration
        stream = f"service/{pod.service}/{pod.id}"
        logs = self.rack.logs

        def emitter(line: bytes) -> Callable[[int], None]:
            def emit(due: int) -> None:
                if self.alive(pod, token):
                    logs.log(pod.app, due, stream, line, pod)

            return emit

        pending = b""
        for offset, data in result.timeline():
            pending += data
            *complete, pending = pending.split(b"\n")
            for line in complete:
                self._at(at + seconds_to_ns(min(offset, duration)), emitter(line))
        if pending:
            self._at(at + seconds_to_ns(duration), emitter(pending))

        def finish(due: int) -> None:
            if self.alive(pod, token):
                self.end_pod(pod, due, result.exit_code)

        self._at(at + seconds_to_ns(duration), finish)

    # --- exec ------------------------------------------------------------------------------

    def exec_target(
        self, app: str, pid: str, command: str, entrypoint: bool
    ) -> tuple[Pod, list[str]]:
        """The pod an exec runs in and the command's argv (``pid`` may name a service, §4.6)."""
        with self.locked():
            running = [p for p in self.pods_of(app) if p.service == pid and p.status == "running"]
            pod = secrets.choice(running) if running else self.pod(app, pid)
            argv = shell_split(command)
            if entrypoint:
                release = self.rack.releases.release(app, pod.release)
                build = self.rack.builds.build(app, release.build)
                if build.entrypoint:
                    argv = shell_split(build.entrypoint) + argv
            return replace(pod), argv

    def pod_status(self, app: str, pid: str) -> str | None:
        """A pod's status, None once it is gone."""
        with self.locked():
            pod = self._records.get(app, {}).get(pid)
            return None if pod is None else pod.status

    def service_pods(self, app: str, service: str) -> list[str]:
        """Ids of ``service``'s pods (service replicas and one-off processes)."""
        with self.locked():
            return [p.id for p in self.pods_of(app) if p.service == service]
