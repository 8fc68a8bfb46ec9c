"""Apps, their rollouts and their services (docs/rack-api.md §4.1, §4.5).

An app owns its configs, its lock and parameters, its active release and the rollout moving it
(``updating`` -> ``running``, or ``rollback`` when a rollout fails or is cancelled); services are
the active release's manifest with per-app overrides, deployed as service pods.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Any, Literal, TypedDict

from typing_extensions import Unpack

from ..encoding import shell_split
from ..errors import RackError
from ..models import App, Pod
from ..timing import seconds_to_ns
from ._base import AppStore, Model, Rack
from .releases import parse_manifest

__all__ = ["APP_PARAMETERS", "Apps", "ServiceScale", "template_hash"]

RESERVED_APP_NAMES = ("rack", "system")
APP_PARAMETERS = ("BuildCpu", "BuildLabels", "BuildMem")
_RFC1123 = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_NS_PER_S = 1_000_000_000


def template_hash(release: str, service: str, cpu: int, memory: int, generation: int) -> str:
    """The pod-template hash in a service pod's name (changes with what the pods run)."""
    digest = hashlib.sha256(f"{release}/{service}/{cpu}/{memory}/{generation}".encode()).digest()
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(alphabet[b % len(alphabet)] for b in digest[:9])


class ServiceScale(TypedDict, total=False):
    """What ``PUT /apps/{app}/services/{name}`` may change; None leaves a value as it is."""

    count: int | None
    cpu: int | None
    memory: int | None


_SCALE_KEYS: tuple[Literal["count", "cpu", "memory"], ...] = ("count", "cpu", "memory")


class Apps(Model):
    """Apps by name, with rollouts and services."""

    def __init__(self, rack: Rack) -> None:
        super().__init__(rack)
        self._apps: dict[str, App] = {}

    # --- apps ------------------------------------------------------------------------------

    def app(self, name: str) -> App:
        """The app record; 404 ``app not found``."""
        app = self._apps.get(name)
        if app is None:
            raise RackError(404, f"app not found: {name}")
        return app

    def find(self, name: str) -> App | None:
        """The app record, None when there is none (also while nothing was created)."""
        return self._apps.get(name)

    def namespace(self, app: str) -> str:
        """The Kubernetes namespace of ``app`` (``<rack>-<app>``)."""
        return f"{self.rack.name}-{app}"

    def registry(self, app: str) -> str:
        """The image repository of ``app``."""
        return f"registry.{self.rack.domain}/{app}"

    def _stores(self) -> tuple[AppStore, ...]:
        rack = self.rack
        return (rack.builds, rack.releases, rack.processes, rack.logs)

    def app_list(self) -> list[dict[str, Any]]:
        """``GET /apps``: sorted by name."""
        with self.locked():
            return [self._apps[n].to_wire() for n in sorted(self._apps)]

    def app_get(self, name: str) -> dict[str, Any]:
        """``GET /apps/{name}``."""
        with self.locked():
            return self.app(name).to_wire()

    def app_status(self, name: str) -> str:
        """The app's current status (``running``, ``updating``, ``rollback``, ``deleting``)."""
        with self.locked():
            return self.app(name).status

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
            app = App(
                name=name, router=self.rack.domain, parameters=dict.fromkeys(APP_PARAMETERS, "")
            )
            self._apps[name] = app
            for store in self._stores():
                store.open_app(name)
            if not settled:
                self.rollout(
                    app, now, "", kind="create", timeout=300 if timeout is None else timeout
                )
            return app.to_wire()

    def app_update(
        self, name: str, *, lock: bool | None, parameters: dict[str, str] | None
    ) -> None:
        """``PUT /apps/{name}``: lock and known parameters; re-applies the current release."""
        with self.locked() as now:
            app = self.app(name)
            if lock is not None:
                app.locked = lock
            if parameters is not None:
                for key, value in parameters.items():
                    if key in APP_PARAMETERS:
                        app.parameters[key] = value
            self.rollout(app, now, app.release, kind="update", timeout=30)

    def app_delete(self, name: str) -> None:
        """``DELETE /apps/{name}``: 409 when locked; ``deleting`` until it is gone."""
        with self.locked() as now:
            app = self.app(name)
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
        for store in self._stores():
            store.drop_app(name)
        self.rack.objects.drop_app(name)

    def app_cancel(self, name: str) -> None:
        """``POST /apps/{name}/cancel``: 403 unless updating; the rollout then rolls back."""
        with self.locked() as now:
            app = self.app(name)
            if app.status != "updating":
                raise RackError(403, "app is not updating")
            self._fail_rollout(app, now, "Cancelled")

    def config_list(self, app: str) -> list[dict[str, str]]:
        """``GET /apps/{app}/configs``."""
        with self.locked():
            configs = self.app(app).configs
            return [{"name": k, "value": configs[k]} for k in sorted(configs)]

    def config_get(self, app: str, name: str) -> dict[str, str]:
        """``GET /apps/{app}/configs/{name}``."""
        with self.locked():
            configs = self.app(app).configs
            if name not in configs:
                raise RackError(404, f"app config not found: {name}")
            return {"name": name, "value": configs[name]}

    def config_set(self, app: str, name: str, value_base64: str) -> None:
        """``PUT /apps/{app}/configs/{name}``: ``value`` must be base64."""
        with self.locked():
            target = self.app(app)
            try:
                decoded = base64.b64decode(value_base64, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise RackError(400, f"failed to parse base 64 value: {exc}") from exc
            target.configs[name] = decoded.decode("utf-8", errors="replace")

    # --- rollouts --------------------------------------------------------------------------

    def _atom(self, app: App, at: int, state: str) -> None:
        if app.atom_state != state:
            message = f"Status: {app.atom_state} => {state}".encode()
            self.rack.logs.log(app.name, at, "system/k8s/atom/app", message)
            app.atom_state = state

    def rollout(self, app: App, at: int, target: str, *, kind: str, timeout: int | None) -> None:
        """Move ``app`` to release ``target``: ``updating`` until it settles (or rolls back)."""
        app.rollout_token += 1
        token = app.rollout_token
        previous = app.release if kind != "create" else ""
        app.status = "updating"
        app.release = target
        if kind != "scale":
            self._atom(app, at, "Pending")
            self._atom(app, at, "Updating")
        scripted = self.scripts.take_promote_failure(app.name) if kind == "promote" else None
        failure = None if scripted is None else scripted.reason
        app.crashing = None
        if scripted is not None and scripted.crash is not None:
            app.crashing = (target, scripted.service, scripted.crash)
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
            self.retire_pods(app.name, due, keep_release=app.release, keep_current=True)

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
        app.crashing = None
        processes = self.rack.processes

        def retired(pod: Pod) -> bool:
            return pod.kind == "service" and pod.release == target and target != previous

        # Crash-looping pods stay listed while the old version is re-applied (terminating).
        for pod in processes.pods_of(app.name):
            if retired(pod) and not pod.restarts:
                processes.remove_pod(pod)

        def reverted(due: int) -> None:
            if app.rollout_token != token or app.deleting:
                return
            self._atom(app, due, "Reverted")
            app.status = "running"
            for pod in processes.pods_of(app.name):
                if retired(pod):
                    processes.remove_pod(pod)

        self._at(at + seconds_to_ns(self.timing.rollout), reverted)

    def settle_on(self, app: App, at: int, release_id: str) -> None:
        """Seeding: make ``release_id`` active and settled at once, its pods already running."""
        app.rollout_token += 1
        app.release = release_id
        app.status = "running"
        app.atom_state = "Running"
        self.deploy(app, at - seconds_to_ns(self.timing.process_start), release_id, seeded=True)
        self.retire_pods(app.name, at, keep_release=release_id, keep_current=True)

    # --- services and their pods -----------------------------------------------------------

    def _service_specs(self, app: App, release_id: str) -> list[tuple[str, int, int, int, Any]]:
        if not release_id:
            return []
        release = self.rack.releases.find(app.name, release_id)
        if release is None:
            return []
        manifest = parse_manifest(release.manifest)
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

    def deploy(
        self, app: App, at: int, release_id: str, only: str | None = None, *, seeded: bool = False
    ) -> None:
        """Create the pods of ``release_id``'s services (old ones retire on settle)."""
        release = self.rack.releases.find(app.name, release_id)
        if release is None:
            return
        processes = self.rack.processes
        for name, count, cpu, memory, service in self._service_specs(app, release_id):
            if only is not None and name != only:
                continue
            generation = app.service_overrides.get(name, {}).get("generation", 0)
            template = template_hash(release_id, name, cpu, memory, generation)
            existing = [
                p
                for p in processes.pods_of(app.name)
                if p.kind == "service" and p.id.startswith(f"{name}-{template}-")
            ]
            for _ in range(count - len(existing)):
                pod = processes.new_pod(
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
                pod.seeded = seeded
                pod.environment = processes.environment(app.name, release_id, name)
                pod.ports = [str(service.port)] if service.port else None
                crash = app.crashing
                if crash is not None and crash[0] == release_id and crash[1] in (None, name):
                    processes.crash_loop(pod, at, crash[2])
                    continue
                processes.start_pod(pod, at)
            for pod in sorted(existing, key=lambda p: p.created, reverse=True)[
                : max(len(existing) - count, 0)
            ]:
                processes.remove_pod(pod)

    def retire_pods(self, app: str, at: int, *, keep_release: str, keep_current: bool) -> None:
        """Remove the service pods not of ``keep_release``'s current templates."""
        target = self._apps.get(app)
        if target is None:
            return
        current = set()
        if keep_current:
            for name, _count, cpu, memory, _service in self._service_specs(target, keep_release):
                generation = target.service_overrides.get(name, {}).get("generation", 0)
                current.add(f"{name}-{template_hash(keep_release, name, cpu, memory, generation)}-")
        processes = self.rack.processes
        for pod in processes.pods_of(app):
            if pod.kind != "service":
                continue
            if not any(pod.id.startswith(prefix) for prefix in current):
                processes.remove_pod(pod)

    def manifest_service(self, app: str, service: str) -> dict[str, Any]:
        """``GET /apps/{app}/manifest/services/{service}``: the active manifest's declaration."""
        with self.locked():
            target = self.app(app)
            spec = None
            if target.release:
                release = self.rack.releases.release(app, target.release)
                spec = parse_manifest(release.manifest).service(service)
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
            target = self.app(app)
            services = []
            for name, count, cpu, memory, spec in self._service_specs(target, target.release):
                if spec.internal:
                    domain = f"{name}.{app}.{self.rack.name}.local"
                else:
                    domain = f"{name}.{app}.{self.rack.domain}"
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

    def _override(self, target: App, name: str) -> dict[str, int]:
        names = [spec[0] for spec in self._service_specs(target, target.release)]
        if name not in names:
            raise RackError(500, f'deployments.apps "{name}" not found')
        return target.service_overrides.setdefault(name, {})

    def service_update(self, app: str, name: str, **scale: Unpack[ServiceScale]) -> None:
        """``PUT /apps/{app}/services/{name}``: patch the deployment; the app is ``updating``."""
        with self.locked() as now:
            target = self.app(app)
            override = self._override(target, name)
            for key in _SCALE_KEYS:
                value = scale.get(key)
                if value is not None:
                    override[key] = value
            self.rollout(target, now, target.release, kind="scale", timeout=None)
            self.deploy(target, now, target.release, only=name)

    def service_restart(self, app: str, name: str) -> None:
        """``POST /apps/{app}/services/{name}/restart``: a rolling restart of that service.

        New pods start at once (``pending`` for ``Timing.process_start``); the old ones keep
        running until the new ones run, then go. No rollout record moves: the app's status
        and release stay as they are (docs/rack-api.md §4.5).
        """
        with self.locked() as now:
            target = self.app(app)
            override = self._override(target, name)
            override["generation"] = override.get("generation", 0) + 1
            generation = override["generation"]
            self.deploy(target, now, target.release, only=name)

            def replaced(due: int) -> None:
                current = target.service_overrides.get(name, {}).get("generation")
                if self._apps.get(app) is target and current == generation:
                    self.retire_pods(app, due, keep_release=target.release, keep_current=True)

            self._at(now + seconds_to_ns(self.timing.process_start), replaced)
