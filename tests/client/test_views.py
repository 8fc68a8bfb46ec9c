"""Client views (``with_headers``/``with_actor``): every request of a view carries its headers,
over real HTTP and WebSocket against the emulator, on both clients; the pool stays shared."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from convox_provider.client.client import AsyncConvoxClient, ConvoxClient
from convox_provider.client.errors import ConvoxConfigError, ConvoxNotFoundError
from convox_provider.client.retry import RetryConfig
from convox_provider.testing.emulator import RackEmulator

MANIFEST = "services:\n  web:\n    build: .\n    port: 3000\n"
ACTOR = "airflow:deploy/manual__2026-01-01T00:00:00+00:00/promote"
FAST = {"poll_interval": 0.01}
ROLLOUT = {"poll_interval": 0.01, "initial_delay": 0.0}


async def run(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result


async def close(client: ConvoxClient | AsyncConvoxClient) -> None:
    if isinstance(client, ConvoxClient):
        client.close()
    else:
        await client.aclose()


@pytest.fixture(params=["sync", "async"])
async def client(
    request: pytest.FixtureRequest, convox_rack: RackEmulator
) -> AsyncIterator[ConvoxClient | AsyncConvoxClient]:
    convox_rack.create_app("demo")
    cls = ConvoxClient if request.param == "sync" else AsyncConvoxClient
    made = cls(convox_rack.url, convox_rack.password, retry=RetryConfig(max_retries=2))
    yield made
    await close(made)


def actors(rack: RackEmulator) -> list[str | None]:
    return [record.header("Convox-Actor") for record in list(rack.requests)]


async def test_every_request_of_a_deploy_carries_the_actor(
    client: ConvoxClient | AsyncConvoxClient, convox_rack: RackEmulator, tmp_path: Path
) -> None:
    (tmp_path / "convox.yml").write_text(MANIFEST)
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    view = client.with_actor(ACTOR)
    build = await run(view.builds.build_from_directory("demo", tmp_path, **FAST))
    await run(view.releases.promote("demo", build.release, **ROLLOUT))
    records = list(convox_rack.requests)
    assert any(r.websocket for r in records)  # the build log stream
    assert any(r.method == "POST" for r in records)
    assert actors(convox_rack) == [ACTOR] * len(records)


async def test_the_client_itself_sends_no_actor_and_shares_its_pool_with_the_view(
    client: ConvoxClient | AsyncConvoxClient, convox_rack: RackEmulator
) -> None:
    view = client.with_headers({"Convox-Actor": ACTOR})
    assert view._driver._inner is client._driver  # type: ignore[attr-defined]
    await run(client.apps.get("demo"))
    await run(view.apps.get("demo"))
    assert actors(convox_rack) == [None, ACTOR]
    await close(view)  # a view does not own the pool: the client still works
    await run(client.apps.get("demo"))
    assert len(list(convox_rack.requests)) == 3


async def test_a_retried_read_carries_the_actor_on_every_attempt(
    client: ConvoxClient | AsyncConvoxClient, convox_rack: RackEmulator
) -> None:
    convox_rack.faults.respond("GET", "/apps/demo", 503, times=2)
    await run(client.with_actor(ACTOR).apps.get("demo"))
    assert [r.status for r in list(convox_rack.requests)] == [503, 503, 200]
    assert actors(convox_rack) == [ACTOR] * 3


async def test_an_error_of_a_view_is_the_clients_error(
    client: ConvoxClient | AsyncConvoxClient,
) -> None:
    with pytest.raises(ConvoxNotFoundError):
        await run(client.with_actor(ACTOR).apps.get("missing"))


async def test_a_copy_from_a_view_names_the_actor_on_both_racks(
    convox_rack_factory: Any,
) -> None:
    source, target = convox_rack_factory(), convox_rack_factory()
    source.create_app("demo")
    target.create_app("demo")
    build, _ = source.add_release("demo", MANIFEST)
    with (
        ConvoxClient(source.url, source.password) as here,
        ConvoxClient(target.url, target.password) as there,
    ):
        here.with_actor(ACTOR).builds.copy("demo", str(build["id"]), to=there.with_actor(ACTOR))
    for rack in (source, target):
        assert list(rack.requests)
        assert set(actors(rack)) == {ACTOR}


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Authorization": "Basic x"}, "cannot set the Authorization header"),
        ({"rack": "acme/other"}, "cannot set the rack header"),
        ({"Bad Name": "x"}, "is not an HTTP header name"),
        ({"Convox-Actor": "naïve"}, "must be printable ASCII"),
        ({"Convox-Actor": "a\r\nInjected: 1"}, "must be printable ASCII"),
    ],
)
def test_headers_a_view_cannot_send_are_refused_at_once(
    headers: dict[str, str], expected: str
) -> None:
    with (
        ConvoxClient("https://api.rack.example", "key") as client,
        pytest.raises(ConvoxConfigError, match=expected),
    ):
        client.with_headers(headers)


async def test_a_view_of_a_view_sends_both_headers(
    client: ConvoxClient | AsyncConvoxClient, convox_rack: RackEmulator
) -> None:
    await run(client.with_actor(ACTOR).with_headers({"X-Trace": "t-1"}).apps.get("demo"))
    (record,) = list(convox_rack.requests)
    assert (record.header("Convox-Actor"), record.header("X-Trace")) == (ACTOR, "t-1")
