"""Models of the rack's JSON objects, checked against the examples of docs/rack-api.md §5."""

from __future__ import annotations

import functools
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from convox_provider.client import models
from convox_provider.client.models import (
    App,
    AppConfig,
    Build,
    Capacity,
    Certificate,
    Instance,
    JwtToken,
    Object,
    Process,
    Registry,
    Release,
    Resource,
    ResourceParameter,
    ResourceType,
    Service,
    ServiceAutoscale,
    ServiceNlb,
    ServicePort,
    System,
    SystemJwt,
    list_adapter,
)
from convox_provider.client.status import AppStatus, BuildStatus, ProcessStatus

# The JSON examples of docs/rack-api.md §5, verbatim: they are the spec.

APP_JSON = """
{
  "generation": "3",
  "locked": false,
  "name": "myapp",
  "release": "RKQZPLMNOA",
  "router": "0a1b2c3d4e5f.convox.cloud",
  "status": "running",
  "parameters": {"BuildMem": "2048"}
}
"""

BUILD_JSON = """
{
  "id": "BHTQWERTYU",
  "app": "myapp",
  "description": "build 1a2b3c4d5e fix login",
  "entrypoint": "",
  "git-sha": "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b",
  "logs": "object://myapp/build/BHTQWERTYU/logs",
  "manifest": "services:\\n  web:\\n    build: .\\n    port: 3000\\n",
  "process": "build-7xk2p",
  "release": "RKQZPLMNOA",
  "reason": "",
  "repository": "",
  "status": "complete",
  "started": "2026-01-15T14:28:02.118734512Z",
  "ended": "2026-01-15T14:30:41.902211377Z"
}
"""

RELEASE_JSON = """
{
  "id": "RKQZPLMNOA",
  "app": "myapp",
  "build": "BHTQWERTYU",
  "env": "DATABASE_URL=postgres://db/app\\nLOG_LEVEL=info",
  "manifest": "services:\\n  web:\\n    build: .\\n    port: 3000\\n",
  "description": "env add:LOG_LEVEL",
  "created": "2026-01-15T14:31:05.447120931Z"
}
"""

SERVICE_JSON = """
{
  "count": 2,
  "cpu": 256,
  "domain": "web.myapp.0a1b2c3d4e5f.convox.cloud",
  "gpu": 0,
  "gpu-vendor": "",
  "memory": 512,
  "name": "web",
  "nlb": null,
  "ports": [{"balancer": 443, "certificate": "", "container": 3000}],
  "min": 2,
  "max": 2,
  "scale-override-active": false,
  "triggers-override-active": false
}
"""

PROCESS_JSON = """
{
  "id": "web-5d8f7c9b6-x2kqp",
  "app": "myapp",
  "command": "bin/web --port 3000",
  "cpu": 0.012,
  "gpu": 0,
  "host": "10.1.42.17",
  "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/production/myapp:web.BHTQWERTYU",
  "instance": "ip-10-1-40-12.ec2.internal",
  "memory": 84.3,
  "name": "web",
  "ports": ["3000"],
  "release": "RKQZPLMNOA",
  "started": "2026-01-15T14:30:51Z",
  "status": "running",
  "service": "web"
}
"""

OBJECT_JSON = """{"Url": "object://myapp/src/20260115-3f9c0a1b2c3d.tgz"}"""

SYSTEM_JSON = """
{
  "count": 0,
  "domain": "router.0a1b2c3d4e5f.convox.cloud",
  "name": "production",
  "provider": "aws",
  "rack-domain": "api.0a1b2c3d4e5f.convox.cloud",
  "router-internal": "",
  "region": "",
  "status": "running",
  "type": "",
  "version": "3.24.9"
}
"""

UTC = timezone.utc


_utc = functools.partial(datetime, tzinfo=UTC)


# --- the §5 examples --------------------------------------------------------------------------


def test_app_example() -> None:
    app = App.model_validate_json(APP_JSON)
    assert app.generation == "3"
    assert app.locked is False
    assert app.name == "myapp"
    assert app.release == "RKQZPLMNOA"
    assert app.router == "0a1b2c3d4e5f.convox.cloud"
    assert app.status == "running"
    assert app.app_status is AppStatus.RUNNING
    assert app.parameters == {"BuildMem": "2048"}
    assert app.budget is None


def test_build_example() -> None:
    build = Build.model_validate_json(BUILD_JSON)
    assert build.id == "BHTQWERTYU"
    assert build.app == "myapp"
    assert build.description == "build 1a2b3c4d5e fix login"
    assert build.entrypoint == ""
    assert build.git_sha == "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"
    assert build.logs == "object://myapp/build/BHTQWERTYU/logs"
    assert build.manifest == "services:\n  web:\n    build: .\n    port: 3000\n"
    assert build.process == "build-7xk2p"
    assert build.release == "RKQZPLMNOA"
    assert build.reason == ""
    assert build.repository == ""
    assert build.status == "complete"
    assert build.build_status is BuildStatus.COMPLETE
    # nanoseconds from the Go server are truncated to microseconds
    assert build.started == _utc(2026, 1, 15, 14, 28, 2, 118734)
    assert build.ended == _utc(2026, 1, 15, 14, 30, 41, 902211)


def test_release_example() -> None:
    release = Release.model_validate_json(RELEASE_JSON)
    assert release.id == "RKQZPLMNOA"
    assert release.app == "myapp"
    assert release.build == "BHTQWERTYU"
    assert release.env == "DATABASE_URL=postgres://db/app\nLOG_LEVEL=info"
    assert release.manifest == "services:\n  web:\n    build: .\n    port: 3000\n"
    assert release.description == "env add:LOG_LEVEL"
    assert release.created == _utc(2026, 1, 15, 14, 31, 5, 447120)
    assert release.environment == {"DATABASE_URL": "postgres://db/app", "LOG_LEVEL": "info"}


def test_service_example() -> None:
    service = Service.model_validate_json(SERVICE_JSON)
    assert service.count == 2
    assert service.cpu == 256
    assert service.domain == "web.myapp.0a1b2c3d4e5f.convox.cloud"
    assert service.gpu == 0
    assert service.gpu_vendor == ""
    assert service.memory == 512
    assert service.name == "web"
    assert service.nlb == []
    assert service.ports == [ServicePort(balancer=443, certificate="", container=3000)]
    assert service.min == 2
    assert service.max == 2
    assert service.scale_override_active is False
    assert service.triggers_override_active is False
    assert service.cold_start is None
    assert service.autoscale is None
    assert service.agent is False
    assert service.gpu_util is None


def test_process_example() -> None:
    process = Process.model_validate_json(PROCESS_JSON)
    assert process.id == "web-5d8f7c9b6-x2kqp"
    assert process.app == "myapp"
    assert process.command == "bin/web --port 3000"
    assert process.cpu == pytest.approx(0.012)
    assert process.gpu == 0
    assert process.host == "10.1.42.17"
    assert process.image.endswith("/production/myapp:web.BHTQWERTYU")
    assert process.instance == "ip-10-1-40-12.ec2.internal"
    assert process.memory == pytest.approx(84.3)
    assert process.name == "web"
    assert process.ports == ["3000"]
    assert process.release == "RKQZPLMNOA"
    assert process.started == _utc(2026, 1, 15, 14, 30, 51)
    assert process.status == "running"
    assert process.process_status is ProcessStatus.RUNNING
    assert process.service == "web"


def test_object_example_capitalised_url() -> None:
    obj = Object.model_validate_json(OBJECT_JSON)
    assert obj.url == "object://myapp/src/20260115-3f9c0a1b2c3d.tgz"
    assert obj.model_dump(by_alias=True) == {"Url": obj.url}
    assert Object(url="object://a/b").url == "object://a/b"


def test_system_example() -> None:
    system = System.model_validate_json(SYSTEM_JSON)
    assert system.count == 0
    assert system.domain == "router.0a1b2c3d4e5f.convox.cloud"
    assert system.name == "production"
    assert system.provider == "aws"
    assert system.rack_domain == "api.0a1b2c3d4e5f.convox.cloud"
    assert system.router_internal == ""
    assert system.region == ""
    assert system.status == "running"
    assert system.type == ""
    assert system.version == "3.24.9"
    assert system.outputs == {}
    assert system.parameters == {}


# --- fields the official SDK drops (§8 item 13) -----------------------------------------------


def test_service_full_shape() -> None:
    service = Service.model_validate(
        {
            "name": "worker",
            "nlb": [
                {
                    "container-port": 5432,
                    "port": 5432,
                    "protocol": "tcp",
                    "scheme": "internal",
                    "certificate": "",
                    "cross-zone": True,
                    "allow-cidr": ["10.0.0.0/8"],
                    "preserve-client-ip": False,
                }
            ],
            "ports": None,
            "min": 0,
            "max": 4,
            "cold-start": True,
            "autoscale": {
                "enabled": True,
                "cpu-threshold": 70,
                "mem-threshold": 80,
                "gpu-threshold": 60,
                "queue-threshold": 5,
                "metric-name": "queue_depth",
                "custom-triggers": 2,
            },
            "agent": True,
            "gpu": 1,
            "gpu-vendor": "nvidia",
            "gpu-util": 42.5,
            "gpu-mem-used": 1024,
            "gpu-mem-total": 16384,
            "gpu-tensor-active": 1.5,
            "gpu-sm-active": 2.5,
            "gpu-dram-active": 3.5,
            "gpu-fp16-active": 4.5,
            "gpu-fp32-active": 5.5,
            "gpu-power-w": 250.0,
        }
    )
    assert service.ports == []
    assert service.nlb == [
        ServiceNlb(
            container_port=5432,
            port=5432,
            protocol="tcp",
            scheme="internal",
            cross_zone=True,
            allow_cidr=["10.0.0.0/8"],
            preserve_client_ip=False,
        )
    ]
    assert (service.min, service.max, service.cold_start, service.agent) == (0, 4, True, True)
    assert service.autoscale == ServiceAutoscale(
        enabled=True,
        cpu_threshold=70,
        mem_threshold=80,
        gpu_threshold=60,
        queue_threshold=5,
        metric_name="queue_depth",
        custom_triggers=2,
    )
    assert (service.gpu, service.gpu_vendor) == (1, "nvidia")
    assert service.gpu_util == 42.5
    assert (service.gpu_mem_used, service.gpu_mem_total) == (1024, 16384)
    assert service.gpu_tensor_active == 1.5
    assert service.gpu_sm_active == 2.5
    assert service.gpu_dram_active == 3.5
    assert service.gpu_fp16_active == 4.5
    assert service.gpu_fp32_active == 5.5
    assert service.gpu_power_w == 250.0


def test_process_gpu_and_service_fields_and_null_ports() -> None:
    process = Process.model_validate(
        {"id": "run-abcde", "gpu": 2, "service": "web", "ports": None, "gpu-util": 99.0}
    )
    assert (process.gpu, process.service, process.ports, process.gpu_util) == (
        2,
        "web",
        [],
        99.0,
    )


def test_instance_shape() -> None:
    instance = Instance.model_validate(
        {
            "agent": True,
            "cpu": 0.5,
            "cpu-capacity": 4,
            "cpu-allocatable": 3.92,
            "gpu-capacity": 1,
            "gpu-allocatable": 1,
            "id": "ip-10-1-40-12.ec2.internal",
            "memory": 1024.5,
            "memory-capacity": 16000,
            "memory-allocatable": 15000,
            "private-ip": "10.1.40.12",
            "processes": 12,
            "public-ip": "",
            "status": "running",
            "started": "2026-01-10T08:00:00Z",
        }
    )
    assert (instance.gpu_capacity, instance.gpu_allocatable) == (1, 1)
    assert (instance.cpu_capacity, instance.cpu_allocatable) == (4.0, 3.92)
    assert (instance.memory_capacity, instance.memory_allocatable) == (16000.0, 15000.0)
    assert (instance.private_ip, instance.public_ip, instance.processes) == ("10.1.40.12", "", 12)
    assert instance.started == _utc(2026, 1, 10, 8)


def test_other_objects() -> None:
    resource = Resource.model_validate(
        {
            "name": "database",
            "type": "postgres",
            "status": "running",
            "url": "postgres://u:p@db:5432/app",
            "apps": None,
        }
    )
    assert (resource.parameters, resource.apps) == ({}, [])
    linked = Resource.model_validate({"name": "hook", "apps": [{"name": "myapp"}]})
    assert linked.apps == [App(name="myapp")]
    rtype = ResourceType.model_validate(
        {"name": "webhook", "parameters": [{"default": "", "description": "url", "name": "Url"}]}
    )
    assert rtype.parameters == [ResourceParameter(default="", description="url", name="Url")]
    assert ResourceType.model_validate({"name": "x", "parameters": None}).parameters == []
    cert = Certificate.model_validate(
        {
            "id": "cert-1",
            "domain": "a.example.com",
            "domains": None,
            "expiration": "2027-01-01T00:00:00Z",
            "status": "issued",
        }
    )
    assert (cert.domains, cert.expiration) == ([], _utc(2027, 1, 1))
    capacity = Capacity.model_validate(
        {
            "cluster-cpu": 8000,
            "cluster-gpu": 1,
            "cluster-memory": 32000,
            "process-count": 12,
            "process-cpu": 2048,
            "process-gpu": 0,
            "process-memory": 4096,
        }
    )
    assert (capacity.cluster_cpu, capacity.cluster_gpu, capacity.process_memory) == (8000, 1, 4096)
    assert (
        Registry.model_validate({"server": "r", "username": "u", "password": "p"}).password == "p"
    )
    assert AppConfig.model_validate({"name": "cli-env-mask", "value": "QQ=="}).value == "QQ=="
    assert JwtToken is SystemJwt
    assert SystemJwt.model_validate_json('{"token": "abc"}').token == "abc"
    assert App.model_validate({"name": "a", "parameters": None}).parameters == {}
    assert App.model_validate({"budget": {"monthly-cap-usd": 100}}).budget == {
        "monthly-cap-usd": 100
    }


# --- timestamps (§5.10) -----------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["0001-01-01T00:00:00Z", "", None, "0001-01-01T00:00:00+00:00"])
def test_zero_or_empty_timestamp_is_none(raw: str | None) -> None:
    build = Build.model_validate({"started": raw, "ended": raw})
    assert build.started is None
    assert build.ended is None


def test_missing_timestamp_is_none() -> None:
    assert Build.model_validate({}).started is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-01-15T14:31:05.447120931Z", _utc(2026, 1, 15, 14, 31, 5, 447120)),
        ("2026-01-15T14:31:05.4471209Z", _utc(2026, 1, 15, 14, 31, 5, 447120)),
        ("2026-01-15T14:31:05.999999999Z", _utc(2026, 1, 15, 14, 31, 5, 999999)),
        ("2026-01-15T14:31:05.5Z", _utc(2026, 1, 15, 14, 31, 5, 500000)),
        ("2026-01-15T14:31:05Z", _utc(2026, 1, 15, 14, 31, 5)),
        ("2026-01-15T16:31:05.123456789+02:00", _utc(2026, 1, 15, 14, 31, 5, 123456)),
        ("2026-01-15T14:31:05", _utc(2026, 1, 15, 14, 31, 5)),
    ],
)
@pytest.mark.parametrize("truncate_here", [False, True])
def test_timestamps_are_utc_aware_and_truncated_to_microseconds(
    raw: str, expected: datetime, truncate_here: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # truncate_here=True exercises the fallback for pydantic versions that refuse 9 digits
    monkeypatch.setattr(models, "_TRUNCATE_HERE", truncate_here)
    created = Release.model_validate({"created": raw}).created
    assert created == expected
    assert created is not None
    assert created.utcoffset() == timedelta(0)


def test_datetime_input_is_normalised_to_utc() -> None:
    paris = timezone(timedelta(hours=1))
    created = Release(created=datetime(2026, 1, 15, 15, 0, tzinfo=paris)).created
    assert created == _utc(2026, 1, 15, 14, 0)
    assert created is not None
    assert created.utcoffset() == timedelta(0)
    naive = Release(created=datetime(2026, 1, 15, 15, 0)).created
    assert naive is not None
    assert naive.tzinfo is not None
    assert naive == _utc(2026, 1, 15, 15, 0)


def test_bad_timestamp_is_a_validation_error() -> None:
    with pytest.raises(ValidationError):
        Build.model_validate({"started": "yesterday"})


def test_timestamps_dump_in_the_racks_form() -> None:
    build = Build.model_validate({"started": "2026-01-15T14:28:02.118734512Z", "ended": None})
    dumped = json.loads(build.model_dump_json(by_alias=True))
    assert dumped["started"] == "2026-01-15T14:28:02.118734Z"
    assert dumped["ended"] == "0001-01-01T00:00:00Z"
    assert Build.model_validate({"started": "2026-01-15T14:28:02Z"}).model_dump(mode="json")[
        "started"
    ] == ("2026-01-15T14:28:02Z")
    assert build.model_dump()["ended"] is None


# --- tolerance: unknown keys, null lists ------------------------------------------------------


def test_unknown_fields_are_kept_and_dumped() -> None:
    app = App.model_validate({"name": "a", "new-field": {"x": 1}, "other": 2})
    assert app.model_extra == {"new-field": {"x": 1}, "other": 2}
    assert app.model_dump(by_alias=True)["new-field"] == {"x": 1}


@pytest.mark.parametrize(
    ("model", "data", "field"),
    [
        (Service, {"nlb": None}, "nlb"),
        (Service, {"ports": None}, "ports"),
        (Process, {"ports": None}, "ports"),
        (ServiceNlb, {"allow-cidr": None}, "allow_cidr"),
        (Resource, {"apps": None}, "apps"),
        (Certificate, {"domains": None}, "domains"),
        (ResourceType, {"parameters": None}, "parameters"),
    ],
)
def test_null_lists_become_empty(model: type[BaseModel], data: dict[str, Any], field: str) -> None:
    assert getattr(model.model_validate(data), field) == []


def test_models_are_frozen() -> None:
    app = App(name="a")
    with pytest.raises(ValidationError):
        app.name = "b"


def test_fields_accept_python_names_and_aliases() -> None:
    assert Build(git_sha="abc").git_sha == "abc"
    assert Build.model_validate({"git_sha": "abc"}).git_sha == "abc"
    assert Build.model_validate({"git-sha": "abc"}).git_sha == "abc"
    assert System(rack_domain="api.x").rack_domain == "api.x"


# --- typed statuses ---------------------------------------------------------------------------


def test_status_properties_parse_and_keep_the_raw_string() -> None:
    assert App(status="rollback").app_status is AppStatus.ROLLBACK
    assert Build(status="failed").build_status is BuildStatus.FAILED
    assert Process(status="crashed").process_status is ProcessStatus.CRASHED
    odd = Build(status="cancelled")
    assert odd.build_status is BuildStatus.UNKNOWN
    assert odd.status == "cancelled"


# --- environment ------------------------------------------------------------------------------


def test_release_environment_uses_the_racks_rules() -> None:
    release = Release(env="A=1\r\n#B=2\n C =x \nNOEQ\nA=3\nD=a\u2028b")
    assert release.environment == {"A": "3", "#B": "2", "C": "x ", "D": "a\u2028b"}
    assert Release().environment == {}


# --- secrets never in repr/str ----------------------------------------------------------------

SECRET = "hunter2-s3cr3t"


@pytest.mark.parametrize(
    ("model", "data", "field"),
    [
        (Release, {"id": "R1", "env": f"DATABASE_URL=postgres://u:{SECRET}@db/app"}, "env"),
        (Build, {"id": "B1", "repository": f"https://convox:{SECRET}@api.x/app"}, "repository"),
        (Resource, {"name": "db", "url": f"postgres://u:{SECRET}@db/app"}, "url"),
        (Resource, {"name": "hook", "parameters": {"Url": f"https://h/{SECRET}"}}, "parameters"),
        (Registry, {"server": "r", "username": "u", "password": SECRET}, "password"),
        (AppConfig, {"name": "c", "value": SECRET}, "value"),
        (SystemJwt, {"token": SECRET}, "token"),
    ],
)
def test_secrets_are_masked_in_repr_and_str(
    model: type[BaseModel], data: dict[str, Any], field: str
) -> None:
    instance = model.model_validate(data)
    for text in (repr(instance), str(instance), repr([instance]), f"{instance!r}"):
        assert SECRET not in text
        assert f"{field}='***'" in text
    # the value itself is intact
    assert SECRET in json.dumps(instance.model_dump(mode="json"))


def test_release_repr_hides_even_the_keys_but_shows_the_rest() -> None:
    release = Release.model_validate_json(RELEASE_JSON)
    text = repr(release)
    assert "DATABASE_URL" not in text
    assert "postgres://db/app" not in text
    assert "id='RKQZPLMNOA'" in text
    assert "env='***'" in text


def test_empty_secret_fields_are_shown_as_empty() -> None:
    assert "repository=''" in repr(Build.model_validate_json(BUILD_JSON))


def test_validation_errors_do_not_echo_input_values() -> None:
    with pytest.raises(ValidationError) as info:
        Release.model_validate({"env": {"DATABASE_URL": SECRET}})
    assert SECRET not in str(info.value)


# --- dumping back to the rack's keys ----------------------------------------------------------


def test_build_dump_by_alias_reproduces_the_racks_json() -> None:
    original = json.loads(BUILD_JSON)
    dumped = Build.model_validate_json(BUILD_JSON).model_dump(mode="json", by_alias=True)
    assert list(dumped) == list(original)
    original["started"] = "2026-01-15T14:28:02.118734Z"
    original["ended"] = "2026-01-15T14:30:41.902211Z"
    assert dumped == original


@pytest.mark.parametrize(
    ("model", "text"),
    [(App, APP_JSON), (Process, PROCESS_JSON), (System, SYSTEM_JSON), (Object, OBJECT_JSON)],
)
def test_dump_by_alias_reproduces_example_keys_and_values(
    model: type[BaseModel], text: str
) -> None:
    original = json.loads(text)
    dumped = model.model_validate_json(text).model_dump(mode="json", by_alias=True)
    assert {key: dumped[key] for key in original} == original


def test_release_dump_by_alias_reproduces_keys() -> None:
    original = json.loads(RELEASE_JSON)
    dumped = Release.model_validate_json(RELEASE_JSON).model_dump(mode="json", by_alias=True)
    assert list(dumped) == list(original)
    assert dumped["env"] == original["env"]
    assert dumped["created"] == "2026-01-15T14:31:05.44712Z"


def test_service_dump_by_alias_keeps_hyphenated_keys() -> None:
    original = json.loads(SERVICE_JSON)
    dumped = Service.model_validate_json(SERVICE_JSON).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    original["nlb"] = []
    assert {key: dumped[key] for key in original} == original
    assert "cold-start" not in dumped


@pytest.mark.parametrize(
    ("model", "text"),
    [
        (App, APP_JSON),
        (Build, BUILD_JSON),
        (Release, RELEASE_JSON),
        (Service, SERVICE_JSON),
        (Process, PROCESS_JSON),
        (Object, OBJECT_JSON),
        (System, SYSTEM_JSON),
    ],
)
def test_by_alias_round_trip(model: type[BaseModel], text: str) -> None:
    parsed = model.model_validate_json(text)
    assert model.model_validate_json(parsed.model_dump_json(by_alias=True)) == parsed
    assert model.model_validate(parsed.model_dump(by_alias=True)) == parsed


# --- lists ------------------------------------------------------------------------------------


def test_list_adapter_parses_response_bytes() -> None:
    content = f"[{BUILD_JSON}, {{}}]".encode()
    builds = list_adapter(Build).validate_json(content)
    assert [build.id for build in builds] == ["BHTQWERTYU", ""]
    assert all(isinstance(build, Build) for build in builds)
    assert list_adapter(App).validate_json(b"[]") == []


def test_list_adapter_is_cached_per_model() -> None:
    assert list_adapter(Build) is list_adapter(Build)
    assert list_adapter(Build) is not list_adapter(Release)  # type: ignore[comparison-overlap]
