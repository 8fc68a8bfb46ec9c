"""Records the emulated rack keeps, and their JSON shapes (docs/rack-api.md §5)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .encoding import format_time, format_time_seconds, go_shell_join

__all__ = ["App", "Build", "LogEntry", "Pod", "Release"]


def _wire(record: object, *names: str) -> dict[str, Any]:
    """``record``'s attributes ``names`` under their JSON keys (``git_sha`` is ``git-sha``)."""
    return {name.replace("_", "-"): getattr(record, name) for name in names}


@dataclass
class App:
    """An app (a namespace on the real rack)."""

    name: str
    router: str
    locked: bool = False
    release: str = ""
    previous_release: str = ""
    status: str = "running"
    parameters: dict[str, str] = field(default_factory=dict)
    configs: dict[str, str] = field(default_factory=dict)
    rollout_token: int = 0
    atom_state: str = "Running"
    deleting: bool = False
    service_overrides: dict[str, dict[str, int]] = field(default_factory=dict)
    #: a scripted failing rollout's crash loop: (release, service or None for all, log lines)
    crashing: tuple[str, str | None, tuple[str, ...]] | None = None

    def to_wire(self) -> dict[str, Any]:
        """``App`` JSON (§5.1): only known parameters that have values."""
        return {
            "generation": "3",
            "locked": self.locked,
            "name": self.name,
            "release": self.release,
            "router": self.router,
            "status": self.status,
            "parameters": {k: v for k, v in sorted(self.parameters.items()) if v != ""},
        }


@dataclass
class Build:
    """A build record (§5.2)."""

    id: str
    app: str
    description: str = ""
    entrypoint: str = ""
    git_sha: str = ""
    logs: str = ""
    manifest: str = ""
    process: str = ""
    release: str = ""
    reason: str = ""
    repository: str = ""
    status: str = "created"
    started: int | None = None
    ended: int | None = None
    output: list[tuple[int, bytes]] = field(default_factory=list)
    finished: bool = False

    def to_wire(self) -> dict[str, Any]:
        """``Build`` JSON in the key order Go emits."""
        return {
            **_wire(self, "id", "app", "description", "entrypoint", "git_sha", "logs", "manifest"),
            **_wire(self, "process", "release", "reason", "repository", "status"),
            "started": format_time(self.started),
            "ended": format_time(self.ended),
        }


@dataclass
class Release:
    """A release record (§5.3); ``env`` is stored raw, exactly as submitted."""

    id: str
    app: str
    build: str = ""
    env: str = ""
    manifest: str = ""
    description: str = ""
    created: int = 0

    def to_wire(self) -> dict[str, Any]:
        """``Release`` JSON."""
        return {
            **_wire(self, "id", "app", "build", "env", "manifest", "description"),
            "created": format_time(self.created),
        }


@dataclass
class Pod:
    """A pod: a service replica, a one-off process or a build pod (§5.5)."""

    id: str
    app: str
    service: str
    release: str
    kind: str
    args: list[str]
    image: str
    created: int
    status: str = "pending"
    ports: list[str] | None = None
    host: str = ""
    instance: str = ""
    cpu_request: int = 0
    memory_request: int = 0
    gpu: int = 0
    environment: dict[str, str] = field(default_factory=dict)
    exit_code: int | None = None
    ended: int | None = None
    token: int = 0
    seeded: bool = False  # started before the rack was seeded: no events or start line logged
    restarts: int = 0  # a crash-looping pod's restarts (the rack's Process has no such key)

    def to_wire(self) -> dict[str, Any]:
        """``Process`` JSON; usage metrics are reported as 0 (no metrics server)."""
        return {
            "id": self.id,
            "app": self.app,
            "command": go_shell_join(self.args),
            "cpu": 0,
            "gpu": self.gpu,
            "host": self.host,
            "image": self.image,
            "instance": self.instance,
            "memory": 0,
            "name": self.service,
            "ports": self.ports,
            "release": self.release,
            "started": format_time_seconds(self.created),
            "status": self.status,
            "service": self.service,
        }


@dataclass(frozen=True)
class LogEntry:
    """One log line of an app: ``stream`` is ``service/<svc>/<pod>`` or ``system/k8s/...``."""

    time: int
    stream: str
    message: bytes
    service: str = ""
    pod: str = ""
