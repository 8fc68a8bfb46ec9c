"""Route behaviour beyond the request shape: raw bodies and streams, the inverted ``no-cache``,
environment reads, per-call timeouts, what is retried, and secrets kept out of sight."""

from __future__ import annotations

from typing import Any

import pytest

from convox_provider.client.errors import (
    ConvoxGatewayError,
    ConvoxInputError,
    ConvoxServerError,
)
from convox_provider.client.models import Build, Object

BUILD = {"id": "BNEWBUILDX", "app": "myapp", "status": "complete", "release": "RNEWRELEAS"}
# Long calls wait long for every phase but connecting, still bounded by the client's timeout.
TRANSFER = {"connect": 30.0, "read": 3600.0, "write": 3600.0, "pool": 3600.0}
FOREVER = {"connect": 30.0, "read": None, "write": None, "pool": None}
DEFAULT = {"connect": 30.0, "read": 30.0, "write": 30.0, "pool": 30.0}


# -- objects ---------------------------------------------------------------------------------


async def test_store_sends_raw_bytes_and_returns_the_object_url(rack) -> None:
    rack.reply(json={"Url": "object://myapp/tmp/src.tgz"})

    stored = await rack(lambda c: c.objects.store("myapp", "tmp/src.tgz", b"\x1f\x8bdata"))

    assert stored == Object(url="object://myapp/tmp/src.tgz")
    request = rack.request
    assert (request.method, rack.path) == ("POST", "/apps/myapp/objects/tmp/src.tgz")
    assert request.headers["content-type"] == "application/octet-stream"
    assert request.content == b"\x1f\x8bdata"
    assert rack.options == {}
    assert request.extensions["timeout"] == TRANSFER


@pytest.mark.parametrize(("public", "header"), [(True, "true"), (False, "false")])
async def test_store_public_header(rack, public: bool, header: str) -> None:
    rack.reply(json={"Url": "https://bucket.s3.amazonaws.com/myapp/k"})

    stored = await rack(lambda c: c.objects.store("myapp", "k", b"x", public=public))

    assert rack.options == {"public": header}
    assert stored.url.startswith("https://")


async def test_store_without_key_lets_the_rack_choose_one(rack) -> None:
    rack.reply(json={"Url": "object://myapp/tmp/8d3c0e.tgz"})

    stored = await rack(lambda c: c.objects.store("myapp", None, b"x"))

    assert rack.path == "/apps/myapp/objects/"
    assert stored.url == "object://myapp/tmp/8d3c0e.tgz"


async def test_store_streams_chunks_without_joining_them(rack) -> None:
    rack.reply(json={"Url": "object://myapp/big.tgz"})

    await rack(lambda c: c.objects.store("myapp", "big.tgz", rack.chunks([b"ab", b"cd", b"e"])))

    request = rack.request
    assert request.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in request.headers
    assert request.content == b"abcde"
    assert request.headers["content-type"] == "application/octet-stream"


async def test_store_refuses_a_body_the_client_cannot_send(rack) -> None:
    async def agen() -> Any:
        yield b"x"

    wrong = agen() if rack.kind == "sync" else iter([b"x"])
    with pytest.raises(ConvoxInputError, match=f"the {rack.kind} client takes bytes"):
        await rack(lambda c: c.objects.store("myapp", "k", wrong))
    with pytest.raises(ConvoxInputError, match="got str"):
        await rack(lambda c: c.objects.store("myapp", "k", "text"))
    assert rack.requests == []
    if rack.kind == "sync":
        await wrong.aclose()


async def test_store_timeout_per_call(rack) -> None:
    rack.reply(json={"Url": "object://myapp/k"})
    rack.reply(json={"Url": "object://myapp/k"})

    await rack(lambda c: c.objects.store("myapp", "k", b"x", timeout=None))
    await rack(lambda c: c.objects.store("myapp", "k", b"x", timeout=12.5))

    first, second = rack.requests
    assert first.extensions["timeout"] == FOREVER
    assert second.extensions["timeout"] == dict.fromkeys(TRANSFER, 12.5)


async def test_fetch_to_streams_into_the_sink(rack) -> None:
    body = bytes(range(256)) * 1000
    rack.reply(content=body)
    received: list[bytes] = []

    size = await rack(lambda c: c.objects.fetch_to("myapp", "build/B1/logs", received.append))

    assert size == len(body)
    assert b"".join(received) == body
    assert (rack.request.method, rack.path) == ("GET", "/apps/myapp/objects/build/B1/logs")
    assert rack.request.extensions["timeout"] == TRANSFER


async def test_fetch_keeps_the_default_timeout(rack) -> None:
    rack.reply(content=b"small")

    assert await rack(lambda c: c.objects.fetch("myapp", "k")) == b"small"
    assert rack.request.extensions["timeout"] == DEFAULT


async def test_sink_receives_nothing_from_an_error_answer(rack) -> None:
    rack.reply(404, json={"error": "object not found: k"})
    received: list[bytes] = []

    with pytest.raises(Exception, match="object not found: k"):
        await rack(lambda c: c.objects.fetch_to("myapp", "k", received.append))
    assert received == []


# -- builds ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("no_cache", "wire"),
    [(True, [("no-cache", "false")]), (False, [("no-cache", "true")]), (None, [])],
)
async def test_no_cache_is_sent_inverted(rack, no_cache: bool | None, wire: list[Any]) -> None:
    # The rack reads ``no-cache`` as "use the cache" (convox-api.md §4.3).
    rack.reply(json=BUILD)

    await rack(lambda c: c.builds.create("myapp", "object://myapp/s.tgz", no_cache=no_cache))

    assert rack.form == [("url", "object://myapp/s.tgz"), *wire]


async def test_export_streams_the_archive_into_the_sink(rack) -> None:
    archive = b"\x1f\x8b" + b"\x00" * 70_000
    rack.reply(content=archive, headers={"content-type": "application/octet-stream"})
    received = bytearray()

    size = await rack(lambda c: c.builds.export("myapp", "BHTQWERTYU", received.extend))

    assert (rack.request.method, rack.path) == ("GET", "/apps/myapp/builds/BHTQWERTYU.tgz")
    assert size == len(archive)
    assert bytes(received) == archive
    assert rack.request.extensions["timeout"] == TRANSFER


async def test_import_sends_the_archive_raw_with_a_long_timeout(rack) -> None:
    rack.reply(json=BUILD)

    build = await rack(lambda c: c.builds.import_build("myapp", b"\x1f\x8barchive"))

    assert isinstance(build, Build)
    assert build.release == "RNEWRELEAS"
    request = rack.request
    assert (request.method, rack.path) == ("POST", "/apps/myapp/builds/import")
    assert request.headers["content-type"] == "application/octet-stream"
    assert request.content == b"\x1f\x8barchive"
    assert request.extensions["timeout"] == TRANSFER


async def test_import_streams_chunks(rack) -> None:
    rack.reply(json=BUILD)

    await rack(lambda c: c.builds.import_build("myapp", rack.chunks([b"1", b"2"]), timeout=None))

    assert rack.request.content == b"12"
    assert rack.request.headers["transfer-encoding"] == "chunked"
    assert rack.request.extensions["timeout"] == FOREVER


async def test_import_image_accepts_the_202_empty_answer(rack) -> None:
    rack.reply(202, content=b"")

    assert await rack(lambda c: c.builds.import_image("myapp", "B1", "nginx:1.27")) is None


# -- environment -----------------------------------------------------------------------------

NEWEST = {
    "id": "RNEWESTAAA",
    "app": "myapp",
    "build": "B2",
    "env": "A=1\nB=x=y\n #C=3\r\nNOEQUALS\nA=2",
    "created": "2026-01-15T14:31:05Z",
}


async def test_environment_reads_the_newest_release(rack) -> None:
    rack.reply(json=[NEWEST])
    rack.reply(json=NEWEST)

    env = await rack(lambda c: c.environment.get("myapp"))

    # Parsed with the rack's rules: first '=' splits, key trimmed, '#' kept, last duplicate wins.
    assert env == {"A": "2", "B": "x=y", "#C": "3"}
    listing, reading = rack.requests
    assert (listing.method, rack.path_of(listing)) == ("GET", "/apps/myapp/releases")
    assert rack.query_of(listing) == [("limit", "1")]
    assert (reading.method, rack.path_of(reading)) == ("GET", "/apps/myapp/releases/RNEWESTAAA")


async def test_environment_of_an_app_without_releases_is_empty(rack) -> None:
    rack.reply(json=[])

    assert await rack(lambda c: c.environment.get("myapp")) == {}
    assert len(rack.requests) == 1


async def test_environment_of_an_explicit_release(rack) -> None:
    rack.reply(json={**NEWEST, "id": "ROLDAAAAAA", "env": "X=old"})

    assert await rack(lambda c: c.environment.get("myapp", release="ROLDAAAAAA")) == {"X": "old"}
    assert rack.path == "/apps/myapp/releases/ROLDAAAAAA"


# -- what is retried -------------------------------------------------------------------------

RETRIED = {
    "apps.get": lambda c: c.apps.get("myapp"),
    "objects.fetch": lambda c: c.objects.fetch("myapp", "k"),
    "apps.config_set": lambda c: c.apps.config_set("myapp", "n", "v"),
    "builds.update": lambda c: c.builds.update("myapp", "B1", status="complete"),
    "services.update": lambda c: c.services.update("myapp", "web", count=2),
    "registries.add": lambda c: c.registries.add("ghcr.io", "u", "p"),
    "resources.system_types": lambda c: c.resources.system_types(),
    "objects.store bytes under a key": lambda c: c.objects.store("myapp", "k", b"x"),
}
NOT_RETRIED = {
    "apps.create": lambda c: c.apps.create("myapp"),
    "apps.update": lambda c: c.apps.update("myapp", lock=True),
    "apps.delete": lambda c: c.apps.delete("myapp"),
    "objects.store without key": lambda c: c.objects.store("myapp", None, b"x"),
    "builds.create": lambda c: c.builds.create("myapp", "object://myapp/k"),
    "builds.import_build": lambda c: c.builds.import_build("myapp", b"x"),
    "releases.create": lambda c: c.releases.create("myapp", env={"A": "1"}),
    "releases.submit_promote": lambda c: c.releases.submit_promote("myapp", "R1"),
    "services.restart": lambda c: c.services.restart("myapp", "web"),
    "processes.run_detached": lambda c: c.processes.run_detached("myapp", "web", command="migrate"),
    "processes.stop": lambda c: c.processes.stop("myapp", "run-1"),
    "system.jwt_token": lambda c: c.system.jwt_token(role="read", duration_in_hour=1),
}


@pytest.mark.parametrize("name", list(RETRIED))
async def test_idempotent_calls_are_retried_after_a_gateway_error(retrying_rack, name) -> None:
    rack = retrying_rack
    rack.reply(503, text="upstream unavailable\n")
    answers = {"resources.system_types": [], "objects.store bytes under a key": {"Url": "x"}}
    rack.reply(json=answers.get(name, {}))

    await rack(RETRIED[name])

    assert len(rack.requests) == 2


@pytest.mark.parametrize("name", list(NOT_RETRIED))
async def test_other_writes_are_never_sent_twice(retrying_rack, name) -> None:
    rack = retrying_rack
    rack.reply(504, text="gateway timeout\n")

    with pytest.raises(ConvoxGatewayError):
        await rack(NOT_RETRIED[name])
    assert len(rack.requests) == 1


async def test_a_streamed_store_is_not_retried(retrying_rack) -> None:
    rack = retrying_rack
    rack.reply(503, text="busy\n")

    with pytest.raises(ConvoxGatewayError):
        await rack(lambda c: c.objects.store("myapp", "k", rack.chunks([b"a"])))
    assert len(rack.requests) == 1


# -- secrets ---------------------------------------------------------------------------------

SECRET = "s3cr3t-VALUE-9f2"


def _describe(client: Any, group: str, name: str, *args: Any, **kwargs: Any) -> Any:
    resource = getattr(client, group)
    return getattr(type(resource), name).describe(resource, *args, **kwargs)


@pytest.mark.parametrize(
    ("group", "name", "args", "kwargs"),
    [
        ("processes", "run_detached", ("myapp", "web"), {"environment": {"TOKEN": SECRET}}),
        (
            "processes",
            "run_detached",
            ("myapp", "web"),
            {"command": f"psql postgres://u:{SECRET}@db"},
        ),
        ("releases", "create", ("myapp",), {"env": {"TOKEN": SECRET}}),
        ("releases", "create", ("myapp",), {"env": f"TOKEN={SECRET}"}),
        ("registries", "add", ("ghcr.io", "bot", SECRET), {}),
        ("certificates", "create", ("PUB", SECRET), {}),
        ("apps", "config_set", ("myapp", "n", SECRET), {}),
        ("builds", "import_image", ("myapp", "B1", "img"), {"src_creds_pass": SECRET}),
        ("resources", "system_create", ("webhook",), {"parameters": {"Url": SECRET}}),
    ],
)
def test_secret_values_stay_out_of_the_call_repr(sync_client, group, name, args, kwargs) -> None:
    call = _describe(sync_client, group, name, *args, **kwargs)

    assert SECRET not in repr(call)
    assert "Hidden([" in repr(call)


async def test_run_environment_reaches_the_header_but_never_an_error(rack) -> None:
    rack.reply(500, json={"error": "could not start pod"}, headers={"request-id": "0123456789ab"})

    with pytest.raises(ConvoxServerError) as caught:
        await rack(
            lambda c: c.processes.run_detached("myapp", "web", environment={"TOKEN": SECRET})
        )

    assert rack.options["environment"] == f"TOKEN={SECRET}"
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)


async def test_bad_environment_errors_name_keys_not_values(rack) -> None:
    with pytest.raises(ConvoxInputError) as caught:
        await rack(
            lambda c: c.processes.run_detached("myapp", "web", environment={"A": SECRET, "B": 3})
        )
    assert SECRET not in str(caught.value)

    with pytest.raises(ConvoxInputError) as caught:
        await rack(lambda c: c.releases.create("myapp", env={"A": SECRET + "\nB=1"}))
    assert SECRET not in str(caught.value)
    assert "'A'" in str(caught.value)
    assert rack.requests == []
