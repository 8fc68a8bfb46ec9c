"""What a build checks in ``convox.yml`` before building, as the rack's builder does.

The builder loads the manifest (``${VAR}`` interpolation, YAML, then decoding into Convox's
types, which fails on a wrong shape) and validates it; either failure ends the build with
``ERROR: <message>``. Unknown keys are ignored, as yaml.v2 (the rack's decoder) ignores them.
Shapes checked (a subset of *convox/convox pkg/manifest*): the top level and ``services``,
``resources``, ``timers`` are mappings; per service ``build`` (a path or ``{path, manifest,
args}``), ``image``, ``command`` (a string), ``port`` (``3000``, ``"https:3000"`` or
``{port, scheme}``), ``environment`` (a list), ``resources`` and ``domain`` (lists), ``scale``
(``count``, ``cpu``, ``memory``, ``min``, ``max``), ``deployment`` (``minimum``, ``maximum``)
and the boolean flags. Rules: names of services, resources and timers, a resource's type,
references from services and timers, deployment percentages, scale bounds.

Decoding errors read like yaml.v2's, with the key path in place of the line number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .manifest import interpolate
from .yamlsubset import ManifestError, parse_yaml

__all__ = ["BuildTarget", "check_manifest"]

_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
_NAME_RULE = "must contain only lowercase alphanumeric and dashes"
_BOOLS = ("internal", "internalRouter", "singleton", "sticky", "privileged", "init", "agent")


@dataclass(frozen=True)
class BuildTarget:
    """One service as the builder sees it: an ``image`` to pull or a Dockerfile to build."""

    service: str
    image: str = ""
    path: str = ""
    dockerfile: str = ""


# A decoded value's YAML tag and Go type, by Python type (bool before int: bool is an int).
_KINDS: tuple[tuple[type, str, str], ...] = (
    (dict, "!!map", "map[interface {}]interface {}"),
    (list, "!!seq", "[]interface {}"),
    (bool, "!!bool", "bool"),
    (int, "!!int", "int"),
    (float, "!!float", "float64"),
    (type(None), "!!null", "<nil>"),
)


def _kind(value: Any) -> tuple[str, str]:
    for kind, tag, go_type in _KINDS:
        if isinstance(value, kind):
            return tag, go_type
    return "!!str", "string"


def _tag(value: Any) -> str:
    return _kind(value)[0]


def _go_type(value: Any) -> str:
    return _kind(value)[1]


class _Decoder:
    """Collects yaml.v2-style type errors, which the rack reports all at once."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def mismatch(self, path: str, value: Any, into: str) -> None:
        shown = f" `{value}`" if not isinstance(value, (dict, list)) and value is not None else ""
        self.errors.append(f"{path}: cannot unmarshal {_tag(value)}{shown} into {into}")

    def mapping(self, path: str, value: Any, into: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.mismatch(path, value, into)
            return {}
        return value

    def string(self, path: str, value: Any) -> str:
        if isinstance(value, (dict, list)):
            self.mismatch(path, value, "string")
            return ""
        return "" if value is None else str(value)

    def integer(self, path: str, value: Any) -> int:
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int):
            self.mismatch(path, value, "int")
            return 0
        return value

    def strings(self, path: str, value: Any) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.mismatch(path, value, "[]string")
            return []
        return [self.string(f"{path}[{i}]", v) for i, v in enumerate(value)]


def check_manifest(text: str, env: dict[str, str]) -> list[BuildTarget]:
    """The services to build, or ``ManifestError`` with the message the builder logs."""
    data = parse_yaml(interpolate(text, env))
    decoder = _Decoder()
    top = decoder.mapping("manifest", data, "manifest.Manifest")
    if decoder.errors:
        raise ManifestError("yaml: unmarshal errors:\n  " + "\n  ".join(decoder.errors))
    environment = top.get("environment")
    if environment is not None and not isinstance(environment, list):
        raise ManifestError(f"unknown type for service environment: {_go_type(environment)}")
    resources = decoder.mapping("resources", top.get("resources"), "manifest.Resources")
    services = decoder.mapping("services", top.get("services"), "manifest.Services")
    timers = decoder.mapping("timers", top.get("timers"), "manifest.Timers")
    rules: list[str] = []
    for name, spec in resources.items():
        body = decoder.mapping(f"resources.{name}", spec, "manifest.Resource")
        if not _NAME.match(str(name)):
            rules.append(f"resource name {name} invalid, {_NAME_RULE}")
        if decoder.string(f"resources.{name}.type", body.get("type")) == "":
            rules.append(f'resource "{name}" has blank type')
    targets = [
        _service(decoder, rules, str(name), spec, set(map(str, resources)))
        for name, spec in services.items()
    ]
    for name, spec in timers.items():
        body = decoder.mapping(f"timers.{name}", spec, "manifest.Timer")
        if not _NAME.match(str(name)):
            rules.append(f"timer name {name} invalid, {_NAME_RULE}")
        service = decoder.string(f"timers.{name}.service", body.get("service"))
        if service not in {str(s) for s in services}:
            rules.append(f"timer {name} references a service that does not exist: {service}")
        if "?" in decoder.string(f"timers.{name}.schedule", body.get("schedule")):
            rules.append(f"timer {name} invalid, schedule cannot contain ?")
    if decoder.errors:
        raise ManifestError("yaml: unmarshal errors:\n  " + "\n  ".join(decoder.errors))
    if rules:
        raise ManifestError("validation errors:\n" + "\n".join(rules))
    return targets


def _service(
    decoder: _Decoder, rules: list[str], name: str, spec: Any, resources: set[str]
) -> BuildTarget:
    at = f"services.{name}"
    body = decoder.mapping(at, spec, "manifest.Service")
    build = body.get("build")
    path = dockerfile = ""
    if isinstance(build, dict):
        path = decoder.string(f"{at}.build.path", build.get("path"))
        dockerfile = decoder.string(f"{at}.build.manifest", build.get("manifest"))
        decoder.strings(f"{at}.build.args", build.get("args"))
    elif isinstance(build, str):
        path = build
    elif build is not None:
        raise ManifestError(f"unknown type for service build: {_go_type(build)}")
    image = decoder.string(f"{at}.image", body.get("image"))
    decoder.string(f"{at}.command", body.get("command"))
    _port(decoder, f"{at}.port", body.get("port"))
    environment = body.get("environment")
    if environment is not None and not isinstance(environment, list):
        raise ManifestError(f"unknown type for service environment: {_go_type(environment)}")
    for ref in decoder.strings(f"{at}.resources", body.get("resources")):
        if ref not in resources:
            rules.append(f"service {name} references a resource that does not exist: {ref}")
    domain = body.get("domain")
    if not isinstance(domain, (str, list)) and domain is not None:
        raise ManifestError(f"unknown type for service domain: {_go_type(domain)}")
    for flag in _BOOLS:
        value = body.get(flag)
        if isinstance(value, list) or (isinstance(value, dict) and flag != "agent"):
            decoder.mismatch(f"{at}.{flag}", value, "bool")
    _scale(decoder, rules, name, body.get("scale"))
    deployment = decoder.mapping(f"{at}.deployment", body.get("deployment"), "ServiceDeployment")
    minimum = decoder.integer(f"{at}.deployment.minimum", deployment.get("minimum", 50))
    maximum = decoder.integer(f"{at}.deployment.maximum", deployment.get("maximum", 200))
    if not _NAME.match(name):
        rules.append(f"service name {name} invalid, {_NAME_RULE}")
    if minimum < 0:
        rules.append(f"service {name} deployment minimum can not be less than 0")
    if minimum > 100:
        rules.append(f"service {name} deployment minimum can not be greater than 100")
    if maximum < 100:
        rules.append(f"service {name} deployment maximum can not be less than 100")
    if maximum > 200:
        rules.append(f"service {name} deployment maximum can not be greater than 200")
    if body.get("internal") is True and body.get("internalRouter") is True:
        rules.append(f"service {name} can not have both internal and internalRouter set as true")
    if image:
        return BuildTarget(service=name, image=image)
    # The rack's defaults: no build and no image means ``build: .``, Dockerfile by default.
    return BuildTarget(service=name, path=path or ".", dockerfile=dockerfile or "Dockerfile")


def _port(decoder: _Decoder, at: str, value: Any) -> None:
    if isinstance(value, dict):
        value = value.get("port")
        if value is None:
            raise ManifestError(f"could not parse port: {value}")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, list):
        decoder.mismatch(at, value, "manifest.ServicePortScheme")
        return
    text = str(value).split(":")[-1]
    if not re.fullmatch(r"[-+]?[0-9]+", text):
        raise ManifestError(f'strconv.Atoi: parsing "{text}": invalid syntax')


def _scale(decoder: _Decoder, rules: list[str], name: str, value: Any) -> None:
    at = f"services.{name}.scale"
    if value is None or (isinstance(value, (int, str)) and not isinstance(value, bool)):
        return  # ``scale: 2`` and ``scale: 1-3`` are counts
    scale = decoder.mapping(at, value, "manifest.ServiceScale")
    for key in ("cpu", "memory"):
        decoder.integer(f"{at}.{key}", scale.get(key))
    count = scale.get("count")
    if isinstance(count, (dict, list, bool)):
        decoder.mismatch(f"{at}.count", count, "manifest.ServiceScaleCount")
    elif isinstance(count, str) and not re.fullmatch(r"\d+(-\d+)?", count):
        raise ManifestError(f"invalid scale: {count}")
    low = decoder.integer(f"{at}.min", scale.get("min"))
    high = decoder.integer(f"{at}.max", scale.get("max"))
    if "min" in scale and low < 0:
        rules.append(f"service {name}: scale.min must be >= 0")
    if "max" in scale and high < 0:
        rules.append(f"service {name}: scale.max must be >= 0")
    if "min" in scale and "max" in scale and high < low:
        rules.append(f"service {name}: scale.max must be >= scale.min")
