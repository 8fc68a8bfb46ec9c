"""Bad arguments are refused before anything is sent: no name can change the route."""

from __future__ import annotations

import pytest

from convox_provider.client.client import AsyncConvoxClient
from convox_provider.client.errors import ConvoxInputError

BAD_NAMES = {
    "slash": "a/b",
    "dot-dot": "..",
    "dot": ".",
    "empty": "",
    "blank": "   ",
    "space": "my app",
    "tab": "a\tb",
    "newline": "a\nb",
    "nul": "a\x00b",
    "escape": "a\x1bb",
    "query": "a?b=1",
    "fragment": "a#b",
    "percent": "a%2Fb",
    "backslash": "a\\b",
}


def _sink(chunk: bytes) -> None:
    raise AssertionError("nothing may be received")


# Each takes the bad value in one path position.
NAMED_ROUTES = {
    "apps.get": lambda c, v: c.apps.get(v),
    "apps.update": lambda c, v: c.apps.update(v, lock=True),
    "apps.delete": lambda c, v: c.apps.delete(v),
    "apps.cancel": lambda c, v: c.apps.cancel(v),
    "apps.config_list": lambda c, v: c.apps.config_list(v),
    "apps.config_get name": lambda c, v: c.apps.config_get("myapp", v),
    "apps.config_set name": lambda c, v: c.apps.config_set("myapp", v, value="x"),
    "objects.store app": lambda c, v: c.objects.store(v, "k", b"x"),
    "objects.fetch app": lambda c, v: c.objects.fetch(v, "k"),
    "objects.list app": lambda c, v: c.objects.list(v),
    "builds.create app": lambda c, v: c.builds.create(v, "object://a/k"),
    "builds.list app": lambda c, v: c.builds.list(v),
    "builds.get app": lambda c, v: c.builds.get(v, "B1"),
    "builds.get id": lambda c, v: c.builds.get("myapp", v),
    "builds.update id": lambda c, v: c.builds.update("myapp", v, status="complete"),
    "builds.export id": lambda c, v: c.builds.export("myapp", v, _sink),
    "builds.import_build app": lambda c, v: c.builds.import_build(v, b"x"),
    "builds.import_image id": lambda c, v: c.builds.import_image("myapp", v, "img"),
    "releases.create app": lambda c, v: c.releases.create(v, build="B1"),
    "releases.list app": lambda c, v: c.releases.list(v),
    "releases.get id": lambda c, v: c.releases.get("myapp", v),
    "releases.promote id": lambda c, v: c.releases.submit_promote("myapp", v),
    "environment.get app": lambda c, v: c.environment.get(v),
    "environment.get release": lambda c, v: c.environment.get("myapp", release=v),
    "services.list app": lambda c, v: c.services.list(v),
    "services.update name": lambda c, v: c.services.update("myapp", v, count=1),
    "services.restart name": lambda c, v: c.services.restart("myapp", v),
    "processes.list app": lambda c, v: c.processes.list(v),
    "processes.get pid": lambda c, v: c.processes.get("myapp", v),
    "processes.stop pid": lambda c, v: c.processes.stop("myapp", v),
    "processes.delete pid": lambda c, v: c.processes.delete("myapp", v),
    "processes.run service": lambda c, v: c.processes.run_detached("myapp", v, command="x"),
    "resources.get name": lambda c, v: c.resources.get("myapp", v),
    "resources.system_get": lambda c, v: c.resources.system_get(v),
    "resources.system_delete": lambda c, v: c.resources.system_delete(v),
    "instances.terminate": lambda c, v: c.instances.terminate(v),
    "certificates.delete": lambda c, v: c.certificates.delete(v),
}


@pytest.mark.parametrize("value", list(BAD_NAMES.values()), ids=list(BAD_NAMES))
@pytest.mark.parametrize("route", list(NAMED_ROUTES))
async def test_bad_names_never_reach_the_rack(rack, route: str, value: str) -> None:
    with pytest.raises(ConvoxInputError):
        await rack(lambda c: NAMED_ROUTES[route](c, value))
    assert rack.requests == []


BAD_KEYS = ["../etc/passwd", "a/../b", "a/..", "a//b", "a/./b", "", "/", "a b", "a\nb", "a?x"]
KEYED_ROUTES = {
    "store": lambda c, k: c.objects.store("myapp", k, b"x"),
    "fetch": lambda c, k: c.objects.fetch("myapp", k),
    "fetch_to": lambda c, k: c.objects.fetch_to("myapp", k, _sink),
    "delete": lambda c, k: c.objects.delete("myapp", k),
}


@pytest.mark.parametrize("key", BAD_KEYS)
@pytest.mark.parametrize("route", list(KEYED_ROUTES))
async def test_bad_object_keys_never_reach_the_rack(rack, route: str, key: str) -> None:
    with pytest.raises(ConvoxInputError, match="object key"):
        await rack(lambda c: KEYED_ROUTES[route](c, key))
    assert rack.requests == []


REFUSED = {
    "app name with capitals": (lambda c: c.apps.create("MyApp"), "app name"),
    "reserved app name": (lambda c: c.apps.create("system"), "reserved"),
    "config value of another type": (
        lambda c: c.apps.config_set("a", "n", value=5),
        "str or bytes",
    ),
    "map parameter value not str": (
        lambda c: c.apps.update("a", parameters={"BuildCpu": 512}),
        "BuildCpu",
    ),
    "object prefix with dot-dot": (lambda c: c.objects.list("a", prefix="tmp/../x"), "prefix"),
    "build without source": (lambda c: c.builds.create("a"), "external=True"),
    "build from an https url": (
        lambda c: c.builds.create("a", "https://example.com/src.tgz"),
        "unknown source type",
    ),
    "build arg with a space": (
        lambda c: c.builds.create("a", "object://a/k", build_args={"A": "x y"}),
        "build arg 'A'",
    ),
    "build limit not an int": (lambda c: c.builds.list("a", limit="10"), "limit"),
    "image import without image": (lambda c: c.builds.import_image("a", "B1", ""), "image"),
    "release env with a line break": (
        lambda c: c.releases.create("a", env={"A": "1\nB=2"}),
        "line break",
    ),
    "release env key with '='": (lambda c: c.releases.create("a", env={"A=B": "1"}), "'='"),
    "promote force not a bool": (
        lambda c: c.releases.submit_promote("a", "R1", force=None),
        "force",
    ),
    "count together with a range": (
        lambda c: c.services.update("a", "web", count=2, max=4),
        "either count or min/max",
    ),
    "negative count": (lambda c: c.services.update("a", "web", count=-1), "negative"),
    "count not an int": (lambda c: c.services.update("a", "web", count="2"), "expected an int"),
    "negative promote timeout": (
        lambda c: c.releases.submit_promote("a", "R1", timeout=-5),
        "negative",
    ),
    "run memory not an int": (lambda c: c.processes.run_detached("a", "web", memory=1.5), "memory"),
    "run command with a line break": (
        lambda c: c.processes.run_detached("a", "web", command="echo a\necho b"),
        "Command",
    ),
    "run command not ASCII": (
        lambda c: c.processes.run_detached("a", "web", command="echo h\u00e9"),
        "Command",
    ),
    "run command with a control character": (
        lambda c: c.processes.run_detached("a", "web", command="echo \x07"),
        "Command",
    ),
    "run node label key with '='": (
        lambda c: c.processes.run_detached("a", "web", node_labels={"a=b": "c"}),
        "node label",
    ),
    "run node label value with ','": (
        lambda c: c.processes.run_detached("a", "web", node_labels={"a": "b,c"}),
        "node_labels",
    ),
    "run argv with a non-str": (
        lambda c: c.processes.run_detached("a", "web", command=["ls", 1]),
        "str",
    ),
    "registry server with '//'": (
        lambda c: c.registries.remove("https://index.docker.io/v1/"),
        "cannot be routed",
    ),
    "registry server with dot-dot": (lambda c: c.registries.remove("r.io/../x"), "registry"),
    "registry server with a space": (lambda c: c.registries.remove("r.io/a b"), "registry"),
    "certificate without domains": (lambda c: c.certificates.generate([]), "domains"),
    "certificate duration without unit": (
        lambda c: c.certificates.generate(["a.org"], duration="90"),
        "unit",
    ),
    "jwt role": (lambda c: c.system.jwt_token(role="root", duration_in_hour=1), "role"),
    "jwt duration too long": (
        lambda c: c.system.jwt_token(role="read", duration_in_hour=8761),
        "8760",
    ),
    "jwt duration zero": (lambda c: c.system.jwt_token(role="read", duration_in_hour=0), "1 to"),
    "fetch_to without a callable sink": (
        lambda c: c.objects.fetch_to("a", "k", b"not callable"),
        "sink",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
async def test_invalid_arguments_are_refused_before_sending(rack, case: str) -> None:
    call, message = REFUSED[case]
    with pytest.raises(ConvoxInputError, match=message):
        await rack(call)
    assert rack.requests == []


async def test_async_client_refuses_at_call_time_before_awaiting(httpx_mock) -> None:
    # Validation runs when the operation is called, not when its coroutine is awaited.
    async with AsyncConvoxClient("https://api.rack.example", "key") as client:
        with pytest.raises(ConvoxInputError):
            client.apps.get("../x")
        with pytest.raises(ConvoxInputError):
            client.environment.get("myapp", release="R/1")
    assert httpx_mock.get_requests() == []
