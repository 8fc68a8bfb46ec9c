"""Pydantic models of the rack's JSON objects (docs/rack-api.md §5), including what the SDK drops.

Rules:

* Field names are snake_case; the rack's keys are their aliases, ``_`` becoming ``-`` (``git-sha``
  → ``git_sha``), except the Object's capitalised ``Url`` → ``url``. Both are accepted on input
  (constructors type-check with the snake_case names);
  ``model_dump(by_alias=True)`` / ``model_dump_json(by_alias=True)`` reproduce the rack's keys
  (e.g. for a build export's ``build.json``). Keys the rack omits when empty dump as ``null``;
  add ``exclude_none=True`` to omit them too.
* Unknown keys are kept (``extra="allow"``), so newer racks lose nothing; models are frozen.
* Timestamps (§5.10) are UTC-aware ``datetime`` or ``None``: the zero time
  ``0001-01-01T00:00:00Z`` and ``""`` become ``None``; up to nine fractional digits are accepted and
  truncated to microseconds. In JSON mode they dump in the rack's form, ``None`` as the zero time.
* ``null`` lists and maps (Go nil slices/maps: ``ports``, ``nlb``, ``parameters``) become empty.
* ``status`` stays the raw string; ``app_status``, ``build_status`` and ``process_status`` give
  the typed value (:mod:`~convox_provider.client.status`).
* Secrets never appear in ``repr()``/``str()``: Release ``env``, Build ``repository`` (embeds the
  rack password for external builds, §4.3), Resource ``url`` and ``parameters`` (credentials,
  webhook tokens), Registry ``password``, AppConfig ``value`` and the JWT ``token`` show as
  ``'***'``. Validation errors never echo input values. ``model_dump()`` does include them.

Lists: ``list_adapter(Build).validate_json(content)`` gives ``list[Build]`` with a cached adapter.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Annotated, Any, ClassVar, TypeVar, cast

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import SchemaValidator, ValidationError, core_schema

from convox_provider.client.encoding import parse_env
from convox_provider.client.status import AppStatus, BuildStatus, ProcessStatus

__all__ = [
    "App",
    "AppConfig",
    "Balancer",
    "BalancerPort",
    "Build",
    "Capacity",
    "Certificate",
    "ConvoxModel",
    "Dns01Solver",
    "Instance",
    "JwtToken",
    "KeyPair",
    "LetsEncryptConfig",
    "Metric",
    "MetricValue",
    "Object",
    "Process",
    "Registry",
    "Release",
    "Resource",
    "ResourceParameter",
    "Route53",
    "ResourceType",
    "Service",
    "ServiceAutoscale",
    "ServiceNlb",
    "ServicePort",
    "System",
    "SystemJwt",
    "Timestamp",
    "list_adapter",
]

_T = TypeVar("_T")
_M = TypeVar("_M", bound=BaseModel)

_ZERO_TIME = "0001-01-01T00:00:00Z"
_UTC = timezone.utc
_ZERO_DATETIME = datetime(1, 1, 1, tzinfo=_UTC)


def _pydantic_truncates_nanoseconds() -> bool:
    """Whether this pydantic-core parses 9 fractional digits by truncating to microseconds."""
    validator = SchemaValidator(core_schema.datetime_schema())
    try:
        parsed = validator.validate_python("2000-01-01T00:00:00.000000999Z")
    except ValidationError:
        return False
    return isinstance(parsed, datetime) and parsed.microsecond == 0


_TRUNCATE_HERE = not _pydantic_truncates_nanoseconds()


def _truncate_fraction(value: str) -> str:
    dot = value.find(".", 19)
    if dot == -1:
        return value
    end = dot + 1
    while end < len(value) and value[end].isdigit():
        end += 1
    return value[: dot + 7] + value[end:] if end - dot > 7 else value


def _validate_timestamp(value: Any, handler: ValidatorFunctionWrapHandler) -> datetime | None:
    if isinstance(value, str):
        if not value or value.startswith("0001-01-01T00:00:00"):
            return None
        parsed = cast("datetime", handler(_truncate_fraction(value) if _TRUNCATE_HERE else value))
        if value.endswith("Z"):
            return parsed
    elif value is None:
        return None
    else:
        parsed = cast("datetime", handler(value))
    if parsed.utcoffset() is None:
        parsed = parsed.replace(tzinfo=_UTC)
    elif parsed.utcoffset():
        parsed = parsed.astimezone(_UTC)
    return None if parsed == _ZERO_DATETIME else parsed


def _dump_timestamp(value: datetime | None) -> str:
    if value is None:
        return _ZERO_TIME
    if value.utcoffset():
        value = value.astimezone(_UTC)
    fraction = f".{value.microsecond:06d}".rstrip("0") if value.microsecond else ""
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
        f"T{value.hour:02d}:{value.minute:02d}:{value.second:02d}{fraction}Z"
    )


Timestamp = Annotated[
    datetime | None,
    WrapValidator(_validate_timestamp),
    PlainSerializer(_dump_timestamp, return_type=str, when_used="json"),
]
"""A rack timestamp: UTC-aware ``datetime``, or ``None`` for the zero time (§5.10)."""


def _none_to_list(value: Any) -> Any:
    return [] if value is None else value


def _none_to_dict(value: Any) -> Any:
    return {} if value is None else value


_NullList = Annotated[list[_T], BeforeValidator(_none_to_list)]
_NullDict = Annotated[dict[str, _T], BeforeValidator(_none_to_dict)]


def _json_key(name: str) -> str:
    """The rack's JSON key of a field: Go's tags are the field names with ``-`` for ``_``."""
    return name.replace("_", "-")


class _Masked:
    __slots__ = ()

    def __repr__(self) -> str:
        return "'***'"


_MASKED = _Masked()


class ConvoxModel(BaseModel):
    """Base of every rack object: aliases for the rack's keys, unknown keys kept, frozen."""

    model_config = ConfigDict(
        alias_generator=_json_key,
        populate_by_name=True,
        extra="allow",
        frozen=True,
        hide_input_in_errors=True,
        defer_build=True,
    )

    _secret_fields: ClassVar[frozenset[str]] = frozenset()

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        secrets = self._secret_fields
        for name, value in super().__repr_args__():
            if value and name in secrets:
                yield name, _MASKED
            else:
                yield name, value


class App(ConvoxModel):
    """An app (§5.1). ``release`` is the current rollout target, not proof of a good deploy."""

    generation: str = ""
    locked: bool = False
    name: str = ""
    release: str = ""
    router: str = ""
    status: str = ""
    budget: dict[str, Any] | None = None
    parameters: _NullDict[str] = Field(default_factory=dict)

    @property
    def app_status(self) -> AppStatus:
        """``status`` as an :class:`AppStatus` (``running`` is idle, not success)."""
        return AppStatus.parse(self.status)


class AppConfig(ConvoxModel):
    """A named app config (``{"name", "value"}``, §4.1); ``value`` is masked in ``repr``."""

    _secret_fields = frozenset({"value"})

    name: str = ""
    value: str = ""


class Build(ConvoxModel):
    """A build (§5.2). ``repository`` (external builds) embeds the rack password."""

    _secret_fields = frozenset({"repository"})

    id: str = ""
    app: str = ""
    description: str = ""
    entrypoint: str = ""
    git_sha: str = ""
    logs: str = ""
    manifest: str = ""
    process: str = ""
    release: str = ""
    reason: str = ""
    repository: str = ""
    status: str = ""
    started: Timestamp = None
    ended: Timestamp = None

    @property
    def build_status(self) -> BuildStatus:
        """``status`` as a :class:`BuildStatus`."""
        return BuildStatus.parse(self.status)


class Release(ConvoxModel):
    """A release (§5.3). ``env`` is the raw environment string, masked in ``repr``."""

    _secret_fields = frozenset({"env"})

    id: str = ""
    app: str = ""
    build: str = ""
    env: str = ""
    manifest: str = ""
    description: str = ""
    created: Timestamp = None

    @property
    def environment(self) -> dict[str, str]:
        """``env`` parsed with the rack's own rules (a new dict on every call)."""
        return parse_env(self.env)


class ServicePort(ConvoxModel):
    """A load-balanced port of a service."""

    balancer: int = 0
    certificate: str = ""
    container: int = 0


class ServiceNlb(ConvoxModel):
    """A network-load-balancer port of a service."""

    container_port: int = 0
    port: int = 0
    protocol: str = ""
    scheme: str = ""
    certificate: str = ""
    cross_zone: bool | None = None
    allow_cidr: _NullList[str] = Field(default_factory=list)
    preserve_client_ip: bool | None = None


class ServiceAutoscale(ConvoxModel):
    """A service's autoscaling state."""

    enabled: bool = False
    cpu_threshold: int | None = None
    mem_threshold: int | None = None
    gpu_threshold: int | None = None
    queue_threshold: int | None = None
    metric_name: str = ""
    custom_triggers: int = 0


class Service(ConvoxModel):
    """A service of the active release (§5.4); services have no status.

    ``cpu`` in millicores, ``memory`` in MiB. ``min``/``max`` and the ``gpu_*`` telemetry
    (percent 0-100, memory in bytes, power in watts) are ``None`` when the rack omits them.
    """

    count: int = 0
    cpu: int = 0
    domain: str = ""
    gpu: int = 0
    gpu_vendor: str = ""
    memory: int = 0
    name: str = ""
    nlb: _NullList[ServiceNlb] = Field(default_factory=list)
    ports: _NullList[ServicePort] = Field(default_factory=list)
    min: int | None = None
    max: int | None = None
    cold_start: bool | None = None
    autoscale: ServiceAutoscale | None = None
    agent: bool = False
    gpu_util: float | None = None
    gpu_mem_used: int | None = None
    gpu_mem_total: int | None = None
    gpu_tensor_active: float | None = None
    gpu_sm_active: float | None = None
    gpu_dram_active: float | None = None
    gpu_fp16_active: float | None = None
    gpu_fp32_active: float | None = None
    gpu_power_w: float | None = None
    scale_override_active: bool | None = None
    triggers_override_active: bool | None = None

    @property
    def url(self) -> str | None:
        """``https://<domain>`` of a service the router exposes (it has a balanced port and a
        domain; the rack's router serves HTTPS on 443, docs/rack-api.md §5.4), else None."""
        if not self.domain or not any(port.balancer for port in self.ports):
            return None
        return f"https://{self.domain}"


class Process(ConvoxModel):
    """A pod (§5.5): service pods, one-off processes, timers and build pods.

    ``cpu`` (cores) and ``memory`` (MiB) are current usage, 0 without metrics; ``gpu_*`` telemetry
    as on :class:`Service`.
    """

    id: str = ""
    app: str = ""
    command: str = ""
    cpu: float = 0.0
    gpu: int = 0
    host: str = ""
    image: str = ""
    instance: str = ""
    memory: float = 0.0
    name: str = ""
    ports: _NullList[str] = Field(default_factory=list)
    release: str = ""
    started: Timestamp = None
    status: str = ""
    service: str = ""
    gpu_util: float | None = None
    gpu_mem_used: int | None = None
    gpu_mem_total: int | None = None
    gpu_tensor_active: float | None = None
    gpu_sm_active: float | None = None
    gpu_dram_active: float | None = None
    gpu_fp16_active: float | None = None
    gpu_fp32_active: float | None = None
    gpu_power_w: float | None = None

    @property
    def process_status(self) -> ProcessStatus:
        """``status`` as a :class:`ProcessStatus`."""
        return ProcessStatus.parse(self.status)


class Object(ConvoxModel):
    """The object-store reply (§5.6); the rack's key is ``Url``. Pass ``url`` to build create."""

    url: str = Field(default="", validation_alias="Url", serialization_alias="Url")


class System(ConvoxModel):
    """The rack (§5.7). On v3 ``status`` is always ``running``."""

    count: int = 0
    domain: str = ""
    name: str = ""
    outputs: _NullDict[str] = Field(default_factory=dict)
    parameters: _NullDict[str] = Field(default_factory=dict)
    provider: str = ""
    rack_domain: str = ""
    router_internal: str = ""
    region: str = ""
    status: str = ""
    type: str = ""
    version: str = ""


class SystemJwt(ConvoxModel):
    """A JWT minted by ``POST /system/jwt/token``; use it with Basic user ``jwt``."""

    _secret_fields = frozenset({"token"})

    token: str = ""


JwtToken = SystemJwt


class Resource(ConvoxModel):
    """An app or rack resource (§5.8); ``url`` and ``parameters`` hold credentials.

    ``status`` may be a raw RDS state (``available``, ``backing-up``, …), hence no enum.
    """

    _secret_fields = frozenset({"url", "parameters"})

    name: str = ""
    parameters: _NullDict[str] = Field(default_factory=dict)
    status: str = ""
    type: str = ""
    url: str = ""
    apps: _NullList[App] = Field(default_factory=list)


class ResourceParameter(ConvoxModel):
    """A parameter a resource type accepts."""

    default: str = ""
    description: str = ""
    name: str = ""


class ResourceType(ConvoxModel):
    """A rack resource type (``OPTIONS /resources``); on v3 only ``webhook``."""

    name: str = ""
    parameters: _NullList[ResourceParameter] = Field(default_factory=list)


class Instance(ConvoxModel):
    """A cluster node (§5.9); ``cpu`` in cores, ``memory`` in MiB; ``status`` running/pending."""

    agent: bool = False
    cpu: float = 0.0
    cpu_capacity: float = 0.0
    cpu_allocatable: float = 0.0
    gpu_capacity: int = 0
    gpu_allocatable: int = 0
    id: str = ""
    memory: float = 0.0
    memory_capacity: float = 0.0
    memory_allocatable: float = 0.0
    private_ip: str = ""
    processes: int = 0
    public_ip: str = ""
    status: str = ""
    started: Timestamp = None


class Certificate(ConvoxModel):
    """A TLS certificate."""

    id: str = ""
    domain: str = ""
    domains: _NullList[str] = Field(default_factory=list)
    expiration: Timestamp = None
    status: str = ""


class Registry(ConvoxModel):
    """A private image registry; ``password`` is masked in ``repr``."""

    _secret_fields = frozenset({"password"})

    server: str = ""
    username: str = ""
    password: str = ""


class Capacity(ConvoxModel):
    """Cluster capacity (``GET /system/capacity``)."""

    cluster_cpu: int = 0
    cluster_gpu: int = 0
    cluster_memory: int = 0
    process_count: int = 0
    process_cpu: int = 0
    process_gpu: int = 0
    process_memory: int = 0


class KeyPair(ConvoxModel):
    """The instance key pair returned by ``POST /instances/keyroll`` (501 on v3 racks);
    ``private_key`` is masked in ``repr``."""

    _secret_fields = frozenset({"private_key"})

    name: str | None = None
    private_key: str | None = None


class BalancerPort(ConvoxModel):
    """A port of a :class:`Balancer`."""

    protocol: str = ""
    source: int = 0
    target: int = 0


class Balancer(ConvoxModel):
    """A custom balancer of an app (``GET /apps/{app}/balancers``, a route this client does
    not use, docs/rack-api.md §4.1); the official SDK's model, for code that builds one."""

    name: str = ""
    endpoint: str = ""
    ports: _NullList[BalancerPort] = Field(default_factory=list)
    service: str = ""


class MetricValue(ConvoxModel):
    """One point of a metric series."""

    avg: float = 0.0
    count: float = 0.0
    max: float = 0.0
    min: float = 0.0
    sum: float = 0.0
    time: Timestamp = None


class Metric(ConvoxModel):
    """A named metric series (``GET /apps/{app}/metrics``, ``GET /system/metrics``)."""

    name: str = ""
    values: _NullList[MetricValue] = Field(default_factory=list)


class Route53(ConvoxModel):
    """The Route 53 settings of a DNS-01 solver."""

    hosted_zone_id: str | None = None
    region: str | None = None
    role: str | None = None


class Dns01Solver(ConvoxModel):
    """A Let's Encrypt DNS-01 solver."""

    id: int = 0
    dns_zones: _NullList[str] = Field(default_factory=list)
    route53: Route53 | None = None


class LetsEncryptConfig(ConvoxModel):
    """The rack's Let's Encrypt configuration (``/letsencrypt/config``)."""

    role: str = ""
    solvers: _NullList[Dns01Solver] = Field(default_factory=list)


_LIST_ADAPTERS: dict[type[BaseModel], TypeAdapter[Any]] = {}


def list_adapter(model: type[_M]) -> TypeAdapter[list[_M]]:
    """A cached ``TypeAdapter[list[model]]``: ``list_adapter(App).validate_json(content)``."""
    adapter = _LIST_ADAPTERS.get(model)
    if adapter is None:
        adapter = TypeAdapter(cast("Any", list.__class_getitem__(model)))
        _LIST_ADAPTERS[model] = adapter
    return cast("TypeAdapter[list[_M]]", adapter)
