"""The parts of ``convox.yml`` the emulated rack needs, read with ``yamlsubset``.

``interpolate`` replaces ``${VAR}`` as the rack's manifest loader does (unknown names become
empty); ``load_manifest`` keeps markers verbatim unless given an environment. The checks a
build runs (shapes and the rack's validation rules) are in ``validation``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .errors import RackError
from .yamlsubset import ManifestError, parse_yaml, scalar_text

__all__ = ["Manifest", "ManifestError", "ManifestService", "interpolate", "load_manifest"]

_INTERPOLATION = re.compile(r"\$\{([^}]*?)\}")

DEFAULT_CPU = 250
DEFAULT_MEMORY = 512


@dataclass(frozen=True)
class ManifestService:
    """One service of the manifest with the rack's defaults applied."""

    name: str
    command: str = ""
    image: str = ""
    port: int | None = None
    port_scheme: str = "http"
    internal: bool = False
    agent: bool = False
    environment: tuple[str, ...] = ()
    count_min: int = 1
    count_max: int = 1
    cpu: int = DEFAULT_CPU
    memory: int = DEFAULT_MEMORY
    autoscale: bool = False


@dataclass(frozen=True)
class Manifest:
    """A parsed ``convox.yml``."""

    services: tuple[ManifestService, ...] = ()
    environment: tuple[str, ...] = ()
    resources: tuple[tuple[str, str], ...] = ()
    timers: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)

    def service(self, name: str) -> ManifestService | None:
        """The service called ``name``, if declared."""
        return next((s for s in self.services if s.name == name), None)

    def service_environment(self, name: str, env: dict[str, str]) -> dict[str, str]:
        """Variables that reach ``name``'s containers; missing required ones -> 500 (§5.3)."""
        service = self.service(name)
        declared = [*self.environment, *(service.environment if service else ())]
        result: dict[str, str] = {}
        missing: list[str] = []
        for entry in declared:
            key, sep, default = entry.partition("=")
            if not sep:
                if key == "*":
                    result.update(env)
                elif key in env:
                    result[key] = env[key]
                else:
                    missing.append(key)
                    result[key] = ""
            else:
                result[key] = env.get(key, default)
        if missing:
            raise RackError(500, "required env: " + ", ".join(sorted(set(missing))))
        return result


def interpolate(text: str, env: dict[str, str]) -> str:
    """``${NAME}`` replaced by ``env[NAME]`` (empty when unset), before YAML parsing."""
    return _INTERPOLATION.sub(lambda m: env.get(m.group(1), ""), text)


def load_manifest(text: str, env: dict[str, str] | None = None) -> Manifest:
    """Parse manifest text (interpolated first when ``env`` is given); ``ManifestError``."""
    data = parse_yaml(text if env is None else interpolate(text, env))
    if data is None:
        return Manifest()
    if not isinstance(data, dict):
        raise ManifestError("yaml: manifest must be a mapping")
    services = []
    raw_services = data.get("services") or {}
    if not isinstance(raw_services, dict):
        raise ManifestError("yaml: services must be a mapping")
    for name, spec in raw_services.items():
        services.append(_service(str(name), spec if isinstance(spec, dict) else {}))
    resources = []
    raw_resources = data.get("resources") or {}
    if isinstance(raw_resources, dict):
        for name, spec in raw_resources.items():
            kind = spec.get("type", "") if isinstance(spec, dict) else ""
            resources.append((str(name), str(kind)))
    timers = (
        tuple(str(t) for t in (data.get("timers") or {}))
        if isinstance(data.get("timers"), dict)
        else ()
    )
    return Manifest(
        services=tuple(sorted(services, key=lambda s: s.name)),
        environment=_string_list(data.get("environment")),
        resources=tuple(sorted(resources)),
        timers=timers,
        raw=data,
    )


def _string_list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list):
        return tuple(scalar_text(v) for v in value)
    if isinstance(value, dict):
        return tuple(f"{k}={scalar_text(v)}" for k, v in value.items())
    return (scalar_text(value),)


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise ManifestError(f"yaml: invalid {what}: {value}")
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError as exc:
        raise ManifestError(f"yaml: invalid {what}: {value}") from exc


def _service(name: str, spec: dict[str, Any]) -> ManifestService:
    port: int | None = None
    scheme = "http"
    raw_port = spec.get("port")
    if isinstance(raw_port, dict):
        scheme = str(raw_port.get("scheme", "http"))
        raw_port = raw_port.get("port")
    if raw_port is not None:
        text = str(raw_port)
        if ":" in text:
            scheme, _, text = text.partition(":")
        port = _int(text, "port")
    scale = spec.get("scale") if isinstance(spec.get("scale"), dict) else {}
    assert isinstance(scale, dict)
    count_min = count_max = 1
    count = scale.get("count")
    if count is not None:
        text = str(count)
        if "-" in text:
            low, _, high = text.partition("-")
            count_min, count_max = _int(low, "count"), _int(high, "count")
        else:
            count_min = count_max = _int(text, "count")
    if "min" in scale:
        count_min = _int(scale["min"], "min")
    if "max" in scale:
        count_max = _int(scale["max"], "max")
    command = spec.get("command", "")
    agent = spec.get("agent")
    return ManifestService(
        name=name,
        command=" ".join(str(c) for c in command)
        if isinstance(command, list)
        else scalar_text(command),
        image=scalar_text(spec.get("image", "")),
        port=port,
        port_scheme=scheme,
        internal=spec.get("internal") is True,
        agent=agent is True or (isinstance(agent, dict) and agent.get("enabled") is True),
        environment=_string_list(spec.get("environment")),
        count_min=count_min,
        count_max=count_max,
        cpu=_int(scale.get("cpu", DEFAULT_CPU), "cpu"),
        memory=_int(scale.get("memory", DEFAULT_MEMORY), "memory"),
        autoscale=isinstance(scale.get("targets"), dict) or count_max > count_min,
    )
