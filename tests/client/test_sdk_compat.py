"""Code written for the official ``convox`` SDK 0.1.0 runs on ``convox_provider.client``.

Every public call of that SDK, with the argument forms its README and docstrings document,
over pytest-httpx (what goes on the wire, what comes back) on both clients. The same calls
over HTTP against the emulator are in ``test_sdk_compat_emulator.py``. Where the SDK is wrong
against the server (docs/migrating-from-convox.md), the wire shape asserted is the server's.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

import convox_provider
import convox_provider.client as convox
from convox_provider.client.models import (
    App,
    AppConfig,
    Build,
    Capacity,
    Certificate,
    Instance,
    KeyPair,
    LetsEncryptConfig,
    Metric,
    Process,
    Registry,
    Release,
    Resource,
    ResourceType,
    Service,
    System,
    SystemJwt,
)

Rack = Any  # the conftest fixture (a pytest-httpx client of either kind)

APP_JSON = {"name": "myapp", "status": "running", "release": "R1", "generation": "2"}
BUILD_JSON = {"id": "B1", "app": "myapp", "status": "complete", "release": "R1"}
RELEASE_JSON = {"id": "R1", "app": "myapp", "build": "B1", "env": "A=1\n"}
PROCESS_JSON = {"id": "web-1", "app": "myapp", "name": "web", "status": "pending"}
RESOURCE_JSON = {"name": "hook", "type": "webhook", "status": "running"}
CERT_JSON = {"id": "c1", "domain": "a.example", "domains": ["a.example"]}
METRICS_JSON = [{"name": "cpu", "values": [{"avg": 1.5, "time": "2026-01-01T00:00:00Z"}]}]
LE_JSON = {"role": "arn:aws:iam::1:role/x", "solvers": [{"id": 1, "dns-zones": ["a.example"]}]}
OK = "ok\n"


@dataclass(frozen=True)
class Case:
    """One SDK call: the call, the one request it sends, the rack's answer, the result."""

    call: Callable[[Any], Any]
    method: str
    path: str
    form: list[tuple[str, str]] | None = None
    query: list[tuple[str, str]] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)
    answer: Any = OK
    result: Callable[[Any], bool] = lambda r: r is None


def is_list_of(model: type) -> Callable[[Any], bool]:
    return lambda r: isinstance(r, list) and len(r) >= 1 and all(isinstance(x, model) for x in r)


def is_(model: type) -> Callable[[Any], bool]:
    return lambda r: isinstance(r, model)


T = "20260101.000000.000000000"
LE = LetsEncryptConfig.model_validate(LE_JSON)

CASES: dict[str, Case] = {
    # -- apps
    "apps.list": Case(
        lambda c: c.apps.list(), "GET", "/apps", answer=[APP_JSON], result=is_list_of(App)
    ),
    "apps.get": Case(
        lambda c: c.apps.get("myapp"), "GET", "/apps/myapp", answer=APP_JSON, result=is_(App)
    ),
    "apps.create": Case(
        lambda c: c.apps.create("myapp"),
        "POST",
        "/apps",
        form=[("name", "myapp"), ("generation", "2")],
        answer=APP_JSON,
        result=is_(App),
    ),
    "apps.create generation timeout": Case(
        lambda c: c.apps.create("myapp", generation="2", timeout=60),
        "POST",
        "/apps",
        form=[("name", "myapp"), ("generation", "2"), ("timeout", "60")],
        answer=APP_JSON,
        result=is_(App),
    ),
    "apps.update lock": Case(
        lambda c: c.apps.update("myapp", lock=True), "PUT", "/apps/myapp", form=[("lock", "true")]
    ),
    # §8 item 3: one field holding KEY=VALUE, the form the server reads (not parameters[KEY])
    "apps.update parameters": Case(
        lambda c: c.apps.update("myapp", parameters={"BuildCpu": "512"}),
        "PUT",
        "/apps/myapp",
        form=[("parameters", "BuildCpu=512")],
    ),
    "apps.delete": Case(lambda c: c.apps.delete("myapp"), "DELETE", "/apps/myapp"),
    "apps.cancel": Case(lambda c: c.apps.cancel("myapp"), "POST", "/apps/myapp/cancel"),
    "apps.metrics": Case(
        lambda c: c.apps.metrics("myapp", start=T, end=T, period=60, metrics=["cpu", "mem"]),
        "GET",
        "/apps/myapp/metrics",
        query=[("start", T), ("end", T), ("period", "60"), ("metrics", "cpu,mem")],
        answer=METRICS_JSON,
        result=is_list_of(Metric),
    ),
    "apps.config_list": Case(
        lambda c: c.apps.config_list("myapp"),
        "GET",
        "/apps/myapp/configs",
        answer=[{"name": "n", "value": "v"}],
        result=is_list_of(AppConfig),
    ),
    "apps.config_get": Case(
        lambda c: c.apps.config_get("myapp", "n"),
        "GET",
        "/apps/myapp/configs/n",
        answer={"name": "n", "value": "v"},
        result=is_(AppConfig),
    ),
    # the SDK's third parameter is the value already base64-encoded: sent as given
    "apps.config_set value_base64": Case(
        lambda c: c.apps.config_set("myapp", "n", value_base64="aGk="),
        "PUT",
        "/apps/myapp/configs/n",
        form=[("value", "aGk=")],
    ),
    "apps.config_set positional base64": Case(
        lambda c: c.apps.config_set("myapp", "n", "aGk="),
        "PUT",
        "/apps/myapp/configs/n",
        form=[("value", "aGk=")],
    ),
    # -- builds
    "builds.list": Case(
        lambda c: c.builds.list("myapp", limit=5),
        "GET",
        "/apps/myapp/builds",
        query=[("limit", "5")],
        answer=[BUILD_JSON],
        result=is_list_of(Build),
    ),
    "builds.get": Case(
        lambda c: c.builds.get("myapp", "B1"),
        "GET",
        "/apps/myapp/builds/B1",
        answer=BUILD_JSON,
        result=is_(Build),
    ),
    "builds.create": Case(
        lambda c: c.builds.create("myapp", "object://myapp/src.tgz", description="v2.0 release"),
        "POST",
        "/apps/myapp/builds",
        form=[("url", "object://myapp/src.tgz"), ("description", "v2.0 release")],
        answer=BUILD_JSON,
        result=is_(Build),
    ),
    "builds.update": Case(
        lambda c: c.builds.update("myapp", "B1", status="complete", release="R1"),
        "PUT",
        "/apps/myapp/builds/B1",
        form=[("status", "complete"), ("release", "R1")],
        answer=BUILD_JSON,
        result=is_(Build),
    ),
    "builds.import_build": Case(
        lambda c: c.builds.import_build("myapp", b"\x1f\x8b tarball", timeout=600),
        "POST",
        "/apps/myapp/builds/import",
        answer=BUILD_JSON,
        result=is_(Build),
    ),
    # -- releases (promote and rollback are workflows: test_sdk_compat_emulator.py)
    "releases.list": Case(
        lambda c: c.releases.list("myapp", limit=3),
        "GET",
        "/apps/myapp/releases",
        query=[("limit", "3")],
        answer=[RELEASE_JSON],
        result=is_list_of(Release),
    ),
    "releases.get": Case(
        lambda c: c.releases.get("myapp", "R1"),
        "GET",
        "/apps/myapp/releases/R1",
        answer=RELEASE_JSON,
        result=is_(Release),
    ),
    "releases.create": Case(
        lambda c: c.releases.create("myapp", build="B1", env="A=1\n", description="d"),
        "POST",
        "/apps/myapp/releases",
        form=[("build", "B1"), ("env", "A=1\n"), ("description", "d")],
        answer=RELEASE_JSON,
        result=is_(Release),
    ),
    # -- services
    "services.list": Case(
        lambda c: c.services.list("myapp"),
        "GET",
        "/apps/myapp/services",
        answer=[{"name": "web", "count": 1}],
        result=is_list_of(Service),
    ),
    "services.update": Case(
        lambda c: c.services.update("myapp", "web", count=3, memory=1024),
        "PUT",
        "/apps/myapp/services/web",
        form=[("count", "3"), ("memory", "1024")],
    ),
    "services.restart": Case(
        lambda c: c.services.restart("myapp", "web"), "POST", "/apps/myapp/services/web/restart"
    ),
    # -- processes
    "processes.list": Case(
        lambda c: c.processes.list("myapp", service="web", release="R1"),
        "GET",
        "/apps/myapp/processes",
        query=[("service", "web"), ("release", "R1")],
        answer=[PROCESS_JSON],
        result=is_list_of(Process),
    ),
    "processes.get": Case(
        lambda c: c.processes.get("myapp", "web-1"),
        "GET",
        "/apps/myapp/processes/web-1",
        answer=PROCESS_JSON,
        result=is_(Process),
    ),
    "processes.stop": Case(
        lambda c: c.processes.stop("myapp", "web-1"), "DELETE", "/apps/myapp/processes/web-1"
    ),
    "processes.run": Case(
        lambda c: c.processes.run(
            "myapp", "web", command="bin/migrate", release="R1", cpu=256, memory=512, image="img:1"
        ),
        "POST",
        "/apps/myapp/services/web/processes",
        options={
            "command": "bin/migrate",
            "release": "R1",
            "cpu": "256",
            "memory": "512",
            "image": "img:1",
        },
        answer=PROCESS_JSON,
        result=is_(Process),
    ),
    # -- resources
    "resources.list": Case(
        lambda c: c.resources.list("myapp"),
        "GET",
        "/apps/myapp/resources",
        answer=[RESOURCE_JSON],
        result=is_list_of(Resource),
    ),
    "resources.get": Case(
        lambda c: c.resources.get("myapp", "database"),
        "GET",
        "/apps/myapp/resources/database",
        answer=RESOURCE_JSON,
        result=is_(Resource),
    ),
    "resources.system_list": Case(
        lambda c: c.resources.system_list(),
        "GET",
        "/resources",
        answer=[RESOURCE_JSON],
        result=is_list_of(Resource),
    ),
    "resources.system_get": Case(
        lambda c: c.resources.system_get("hook"),
        "GET",
        "/resources/hook",
        answer=RESOURCE_JSON,
        result=is_(Resource),
    ),
    "resources.system_create": Case(
        lambda c: c.resources.system_create(
            "webhook", name="hook", parameters={"Url": "https://h.example/x"}
        ),
        "POST",
        "/resources",
        form=[
            ("kind", "webhook"),
            ("name", "hook"),
            ("parameters", "Url=https%3A%2F%2Fh.example%2Fx"),
        ],
        answer=RESOURCE_JSON,
        result=is_(Resource),
    ),
    "resources.system_update": Case(
        lambda c: c.resources.system_update("hook", parameters={"Url": "u"}),
        "PUT",
        "/resources/hook",
        form=[("parameters", "Url=u")],
        answer=RESOURCE_JSON,
        result=is_(Resource),
    ),
    "resources.system_delete": Case(
        lambda c: c.resources.system_delete("hook"), "DELETE", "/resources/hook"
    ),
    "resources.system_link": Case(
        lambda c: c.resources.system_link("hook", "myapp"),
        "POST",
        "/resources/hook/links",
        form=[("app", "myapp")],
        answer=RESOURCE_JSON,
        result=is_(Resource),
    ),
    "resources.system_unlink": Case(
        lambda c: c.resources.system_unlink("hook", "myapp"),
        "DELETE",
        "/resources/hook/links/myapp",
        answer=RESOURCE_JSON,
        result=is_(Resource),
    ),
    "resources.system_types": Case(
        lambda c: c.resources.system_types(),
        "OPTIONS",
        "/resources",
        answer=[{"name": "webhook", "parameters": []}],
        result=is_list_of(ResourceType),
    ),
    # -- instances
    "instances.list": Case(
        lambda c: c.instances.list(),
        "GET",
        "/instances",
        answer=[{"id": "i-1"}],
        result=is_list_of(Instance),
    ),
    "instances.terminate": Case(lambda c: c.instances.terminate("i-1"), "DELETE", "/instances/i-1"),
    "instances.keyroll": Case(
        lambda c: c.instances.keyroll(),
        "POST",
        "/instances/keyroll",
        answer={"name": "k", "private-key": "PEM"},
        result=is_(KeyPair),
    ),
    # -- registries
    "registries.list": Case(
        lambda c: c.registries.list(),
        "GET",
        "/registries",
        answer=[{"server": "r.example"}],
        result=is_list_of(Registry),
    ),
    "registries.add": Case(
        lambda c: c.registries.add("r.example", "user", "pass"),
        "POST",
        "/registries",
        form=[("server", "r.example"), ("username", "user"), ("password", "pass")],
        answer={"server": "r.example", "username": "user"},
        result=is_(Registry),
    ),
    "registries.remove": Case(
        lambda c: c.registries.remove("r.example"), "DELETE", "/registries/r.example"
    ),
    # -- certificates
    "certificates.list": Case(
        lambda c: c.certificates.list(generated=True),
        "GET",
        "/certificates",
        query=[("generated", "true")],
        answer=[CERT_JSON],
        result=is_list_of(Certificate),
    ),
    "certificates.create": Case(
        lambda c: c.certificates.create("PUB", "KEY", chain="CHAIN"),
        "POST",
        "/certificates",
        form=[("pub", "PUB"), ("key", "KEY"), ("chain", "CHAIN")],
        answer=CERT_JSON,
        result=is_(Certificate),
    ),
    "certificates.generate": Case(
        lambda c: c.certificates.generate(
            ["a.example", "b.example"], issuer="letsencrypt", duration="2160h"
        ),
        "POST",
        "/certificates/generate",
        form=[("domains", "a.example,b.example"), ("issuer", "letsencrypt"), ("duration", "2160h")],
        answer=CERT_JSON,
        result=is_(Certificate),
    ),
    "certificates.delete": Case(
        lambda c: c.certificates.delete("c1"), "DELETE", "/certificates/c1"
    ),
    "certificates.renew": Case(
        lambda c: c.certificates.renew("c1"), "POST", "/certificates/c1/renew"
    ),
    "certificates.apply": Case(
        lambda c: c.certificates.apply("myapp", "web", 443, "c1"),
        "PUT",
        "/apps/myapp/ssl/web/443",
        form=[("id", "c1")],
    ),
    # -- system
    "system.get": Case(
        lambda c: c.system.get(),
        "GET",
        "/system",
        answer={"name": "r", "version": "3.1"},
        result=is_(System),
    ),
    "system.update": Case(
        lambda c: c.system.update(
            count=3, type="t3.large", version="3.1.0", force=True, parameters={"A": "1"}
        ),
        "PUT",
        "/system",
        form=[
            ("count", "3"),
            ("force", "true"),
            ("parameters", "A=1"),
            ("type", "t3.large"),
            ("version", "3.1.0"),
        ],
    ),
    "system.capacity": Case(
        lambda c: c.system.capacity(),
        "GET",
        "/system/capacity",
        answer={"cluster-cpu": 4},
        result=is_(Capacity),
    ),
    "system.metrics": Case(
        lambda c: c.system.metrics(start=T, end=T, period=300),
        "GET",
        "/system/metrics",
        query=[("start", T), ("end", T), ("period", "300")],
        answer=METRICS_JSON,
        result=is_list_of(Metric),
    ),
    "system.processes": Case(
        lambda c: c.system.processes(all=True),
        "GET",
        "/system/processes",
        query=[("all", "true")],
        answer=[PROCESS_JSON],
        result=is_list_of(Process),
    ),
    "system.releases": Case(
        lambda c: c.system.releases(),
        "GET",
        "/system/releases",
        answer=[RELEASE_JSON],
        result=is_list_of(Release),
    ),
    "system.jwt_token": Case(
        lambda c: c.system.jwt_token(),
        "POST",
        "/system/jwt/token",
        answer={"token": "t"},
        result=is_(SystemJwt),
    ),
    "system.jwt_token role duration": Case(
        lambda c: c.system.jwt_token(role="write", duration_in_hour="2"),
        "POST",
        "/system/jwt/token",
        form=[("role", "write"), ("durationInHour", "2")],
        answer={"token": "t"},
        result=is_(SystemJwt),
    ),
    "system.jwt_rotate": Case(lambda c: c.system.jwt_rotate(), "PUT", "/system/jwt/rotate"),
    "system.letsencrypt_config_get": Case(
        lambda c: c.system.letsencrypt_config_get(),
        "GET",
        "/letsencrypt/config",
        answer=LE_JSON,
        result=is_(LetsEncryptConfig),
    ),
    "system.letsencrypt_config_apply": Case(
        lambda c: c.system.letsencrypt_config_apply(LE), "PUT", "/letsencrypt/config"
    ),
    # -- api (the low-level escape hatch)
    "api.get": Case(
        lambda c: c.api.get("/apps"),
        "GET",
        "/apps",
        answer=[APP_JSON],
        result=lambda r: r == [APP_JSON],
    ),
    "api.post data": Case(
        lambda c: c.api.post("/apps", data={"name": "newapp"}),
        "POST",
        "/apps",
        form=[("name", "newapp")],
        answer=APP_JSON,
        result=lambda r: r == APP_JSON,
    ),
    "api.put json": Case(
        lambda c: c.api.put("/letsencrypt/config", json=LE_JSON),
        "PUT",
        "/letsencrypt/config",
        result=lambda r: r == "ok",
    ),
    "api.get params": Case(
        lambda c: c.api.get("/apps/myapp/builds", params={"limit": "2"}, timeout=5),
        "GET",
        "/apps/myapp/builds",
        query=[("limit", "2")],
        answer=[BUILD_JSON],
        result=lambda r: r == [BUILD_JSON],
    ),
    "api.delete data": Case(
        lambda c: c.api.delete("/apps/myapp", data={"x": "1"}),
        "DELETE",
        "/apps/myapp",
        form=[("x", "1")],
        result=lambda r: r == "ok",
    ),
    "api.put": Case(
        lambda c: c.api.put("/apps/myapp", data={"lock": "true"}),
        "PUT",
        "/apps/myapp",
        form=[("lock", "true")],
        result=lambda r: r == "ok",
    ),
    "api.delete": Case(
        lambda c: c.api.delete("/apps/myapp"), "DELETE", "/apps/myapp", result=lambda r: r == "ok"
    ),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_each_sdk_call_sends_its_request_and_returns_its_result(
    rack: Rack, name: str
) -> None:
    case = CASES[name]
    if isinstance(case.answer, str):
        rack.reply(text=case.answer)
    else:
        rack.reply(json=case.answer)

    result = await rack(case.call)

    assert (rack.request.method, rack.path) == (case.method, case.path)
    if case.form is not None:
        assert rack.form == case.form
    assert rack.query == case.query
    for header, value in case.options.items():
        assert rack.options[header] == value
    assert case.result(result), result


async def test_letsencrypt_apply_sends_the_config_as_json(rack: Rack) -> None:
    rack.ok()
    await rack(lambda c: c.system.letsencrypt_config_apply(LE))
    assert rack.request.headers["content-type"] == "application/json"
    body = rack.request.read().decode()
    assert '"dns-zones": ["a.example"]' in body
    assert '"role": "arn:aws:iam::1:role/x"' in body


async def test_import_build_sends_the_tarball_as_the_raw_body(rack: Rack) -> None:
    rack.reply(json=BUILD_JSON)
    await rack(lambda c: c.builds.import_build("myapp", b"\x1f\x8b tarball"))
    assert rack.request.read() == b"\x1f\x8b tarball"


@pytest.mark.parametrize("value", ["hi", b"hi"])
async def test_config_set_takes_a_plain_value_by_keyword(rack: Rack, value: str | bytes) -> None:
    """``value=`` is the plain value (text or bytes), encoded by the client."""
    rack.ok()
    await rack(lambda c: c.apps.config_set("myapp", "n", value=value))
    assert rack.form == [("value", base64.b64encode(b"hi").decode())]


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda c: c.apps.config_set("myapp", "n", "not base64!"), "not valid base64"),
        (lambda c: c.apps.config_set("myapp", "n", "aGk"), "not valid base64"),
        (lambda c: c.apps.config_set("myapp", "n", b"aGk="), "value="),
        (lambda c: c.apps.config_set("myapp", "n", 5), "value="),
        (lambda c: c.apps.config_set("myapp", "n"), "exactly one"),
        (lambda c: c.apps.config_set("myapp", "n", "aGk=", value="hi"), "exactly one"),
    ],
)
async def test_config_set_refuses_what_is_not_base64_text_before_sending(
    rack: Rack, call: Callable[[Any], Any], words: str
) -> None:
    for cls in (convox.ConvoxValidationError, ValueError):
        with pytest.raises(cls, match=words):
            await rack(call)
    assert rack.requests == []


# -- errors: the classes the SDK documents ---------------------------------------------------

ERRORS = [
    (400, "app name is reserved", convox.ConvoxValidationError),
    (401, "invalid authentication", convox.ConvoxAuthError),
    (401, "you are unauthorized to access this", convox.ConvoxForbiddenError),
    (401, "you are unauthorized to access this", convox.ConvoxAuthError),
    (403, "app is currently updating", convox.ConvoxForbiddenError),
    (404, "no such app: myapp", convox.ConvoxNotFoundError),
    (409, "app is locked: myapp", convox.ConvoxConflictError),
    (422, "unprocessable", convox.ConvoxValidationError),
    (500, 'releases "R9" not found', convox.ConvoxNotFoundError),
    (500, "no such build", convox.ConvoxNotFoundError),
    (500, "object does not exist", convox.ConvoxNotFoundError),
    (500, "app already exists: myapp", convox.ConvoxConflictError),
    (500, "app is locked", convox.ConvoxConflictError),
    (500, "can not promote an older release", convox.ConvoxValidationError),
    (500, "required env: FOO", convox.ConvoxValidationError),
    (500, "invalid build cpu", convox.ConvoxServerError),
    (500, "panic", convox.ConvoxServerError),
    (501, "unimplemented", convox.ConvoxNotImplementedError),
    (502, "bad gateway", convox.ConvoxGatewayError),
    (503, "unavailable", convox.ConvoxGatewayError),
    (504, "timeout", convox.ConvoxGatewayError),
]


@pytest.mark.parametrize(("status", "message", "cls"), ERRORS)
async def test_error_answers_land_in_the_sdk_classes(
    rack: Rack, status: int, message: str, cls: type[Exception]
) -> None:
    rack.reply(status, text=message + "\n", headers={"Request-Id": "rid-1"})
    with pytest.raises(cls) as info:
        await rack(lambda c: c.apps.get("myapp"))
    error = info.value
    assert isinstance(error, convox.ConvoxAPIError)
    assert (error.status_code, error.message, error.request_id) == (status, message, "rid-1")


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.apps.create("system"),  # a name the rack reserves
        lambda c: c.apps.create("Bad_Name"),
        lambda c: c.environment.set("myapp", {"BAD KEY": "v"}),
        lambda c: c.environment.set("myapp", {"K": "line\nbreak"}),
        lambda c: c.system.jwt_token(role="root"),
        lambda c: c.processes.run("myapp", "web", cpu=-1),
    ],
)
async def test_local_checks_are_caught_as_the_sdk_catches_the_racks_refusal(
    rack: Rack, call: Callable[[Any], Any]
) -> None:
    for cls in (convox.ConvoxValidationError, ValueError, convox.ConvoxInputError):
        with pytest.raises(cls):
            await rack(call)
    assert rack.requests == []


def test_missing_settings_are_value_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVOX_PASSWORD", raising=False)
    monkeypatch.setenv("CONVOX_HOST", "rack.example.com")
    with pytest.raises(ValueError, match="CONVOX_PASSWORD"):
        convox.ConvoxClient.from_env()


def test_the_sdk_error_names_are_exported() -> None:
    for name in [
        "ConvoxAPIError",
        "ConvoxAuthError",
        "ConvoxConflictError",
        "ConvoxConnectionError",
        "ConvoxError",
        "ConvoxForbiddenError",
        "ConvoxGatewayError",
        "ConvoxNotFoundError",
        "ConvoxNotImplementedError",
        "ConvoxServerError",
        "ConvoxTimeoutError",
        "ConvoxValidationError",
        "RetryConfig",
        "ConvoxClient",
    ]:
        assert getattr(convox, name) is not None


# -- client.stream ---------------------------------------------------------------------------


async def test_stream_returns_the_raw_response_without_raising(rack: Rack) -> None:
    rack.reply(404, content=b"")
    response = await rack(lambda c: c.stream("GET", "/apps/myapp/logs", params={"follow": "true"}))
    try:
        assert response.status_code == 404
        assert rack.query == [("follow", "true")]
        assert rack.request.headers["authorization"].startswith("Basic ")
    finally:
        closed = response.close() if rack.kind == "sync" else response.aclose()
        if closed is not None:
            await closed


async def test_stream_lets_a_body_be_read_in_pieces(rack: Rack) -> None:
    rack.reply(content=b"line one\nline two\n")
    response = await rack(lambda c: c.stream("GET", "/apps/myapp/objects/x"))
    if rack.kind == "sync":
        lines = list(response.iter_lines())
        response.close()
    else:
        lines = [line async for line in response.aiter_lines()]
        await response.aclose()
    assert lines == ["line one", "line two"]


async def test_api_json_is_sent_as_a_json_body(rack: Rack) -> None:
    rack.ok()
    await rack(lambda c: c.api.post("/letsencrypt/config", json={"role": "r", "solvers": []}))
    assert rack.request.headers["content-type"] == "application/json"
    assert rack.request.read() == b'{"role": "r", "solvers": []}'


async def test_api_takes_one_body(rack: Rack) -> None:
    with pytest.raises(ValueError, match="data and json"):
        await rack(lambda c: c.api.post("/apps", data={"name": "a"}, json={"name": "a"}))
    assert rack.requests == []


def test_the_rest_of_the_sdks_public_names() -> None:
    assert convox.__version__ == convox_provider.__version__
    retry = convox.RetryConfig(retry_on_500=True)
    assert retry.effective_retryable == frozenset({429, 500, 502, 503, 504})
    assert convox.RetryConfig().effective_retryable == frozenset({429, 502, 503, 504})
    # the SDK's network errors carry .message
    assert convox.ConvoxConnectionError("refused").message == "refused"
    assert convox.ConvoxTimeoutError("timed out").message == "timed out"
    from convox_provider.client.models import Balancer, BalancerPort

    balancer = Balancer.model_validate(
        {"name": "b", "endpoint": "e", "service": "web", "ports": [{"source": 80, "target": 3000}]}
    )
    assert balancer.ports == [BalancerPort(source=80, target=3000)]


async def test_a_transport_failure_has_the_sdks_message(rack: Rack) -> None:
    import httpx

    rack.mock.add_exception(httpx.ConnectError("connection refused"), is_reusable=True)
    with pytest.raises(convox.ConvoxConnectionError) as info:
        await rack(lambda c: c.apps.get("myapp"))
    assert "connection refused" in info.value.message


def test_errors_can_be_built_the_sdks_way() -> None:
    error = convox.ConvoxNotFoundError(404, "no such app", "rid-2")
    assert (error.status_code, error.message, error.request_id) == (404, "no such app", "rid-2")
    assert convox.ConvoxAPIError(500, "boom").request_id is None
    ours = convox.ConvoxNotFoundError("no such app", status_code=404)
    assert (ours.status_code, ours.message) == (404, "no such app")


@pytest.mark.parametrize("kind", [convox.ConvoxClient, convox.AsyncConvoxClient])
def test_help_shows_the_calls_parameters_without_self(kind: type[Any]) -> None:
    """``inspect.signature``/``help()`` of a bound call show what the caller passes, as the
    SDK's bound methods do: no resource (``self``) parameter."""
    import inspect

    client = kind("https://api.rack.example", "k")
    assert list(inspect.signature(client.apps.get).parameters) == ["name"]
    assert list(inspect.signature(client.environment.set).parameters)[:3] == [
        "app",
        "changes",
        "env",
    ]
    assert list(inspect.signature(client.releases.promote).parameters)[:2] == ["app", "release_id"]
    assert list(inspect.signature(client.api.put).parameters)[:3] == ["path", "params", "data"]
