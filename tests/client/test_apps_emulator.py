"""App create, delete and restart over real HTTP against the emulator, on both clients."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from convox_provider.client.client import AsyncConvoxClient, ConvoxClient
from convox_provider.client.errors import (
    ConvoxConflictError,
    ConvoxInputError,
    ConvoxNotFoundError,
)
from convox_provider.client.waiting import WaitOptions
from convox_provider.client.workflows.apps import MARKER_CONFIG
from convox_provider.testing.emulator import RackEmulator
from convox_provider.testing.plugin import RackFactory
from convox_provider.testing.timing import Timing

MANIFEST = """\
services:
  web:
    build: .
    port: 3000
    scale:
      count: 2
  worker:
    build: .
"""
WAIT = {"waiting": WaitOptions(poll_interval=0.05, initial_delay=0.05, timeout=30.0)}
TIMING = Timing(rollout=0.2, process_start=0.2, app_delete=0.2)


class Client:
    """One client of either kind; ``await run(lambda c: c.apps.…)`` on both."""

    def __init__(self, rack: RackEmulator, kind: str) -> None:
        cls = ConvoxClient if kind == "sync" else AsyncConvoxClient
        self.client: Any = cls(rack.url, rack.password)

    async def __call__(self, operation: Callable[[Any], Any]) -> Any:
        result = operation(self.client)
        return (await result) if inspect.isawaitable(result) else result

    async def close(self) -> None:
        if isinstance(self.client, ConvoxClient):
            self.client.close()
        else:
            await self.client.aclose()


@pytest.fixture
def rack(convox_rack_factory: RackFactory) -> RackEmulator:
    return convox_rack_factory(timing=TIMING)


@pytest.fixture(params=["sync", "async"])
async def run(rack: RackEmulator, request: pytest.FixtureRequest) -> AsyncIterator[Client]:
    made = Client(rack, str(request.param))
    yield made
    await made.close()


async def test_create_waits_for_running_then_locks(rack: RackEmulator, run: Client) -> None:
    done = await run(
        lambda c: c.apps.create_and_wait(
            "pr-12", marker="m-12", lock=True, parameters={"BuildMem": "1024"}, **WAIT
        )
    )
    assert (done.created, done.pending) == (True, False)
    found = rack.app("pr-12")
    assert (found["status"], found["locked"], found["parameters"]["BuildMem"]) == (
        "running",
        True,
        "1024",
    )
    marker = await run(lambda c: c.apps.config_get("pr-12", MARKER_CONFIG))
    assert marker.value == "m-12"
    again = await run(lambda c: c.apps.create_and_wait("pr-12", marker="m-12", **WAIT))
    assert again.created is True
    assert rack.requests.count("POST", "/apps") == 1
    with pytest.raises(ConvoxConflictError, match="already exists"):
        await run(lambda c: c.apps.create_and_wait("pr-12", marker="other", **WAIT))
    with pytest.raises(ConvoxConflictError, match="app is locked: pr-12"):
        await run(lambda c: c.apps.delete_and_wait("pr-12", **WAIT))
    assert rack.requests.count("DELETE", "/apps/pr-12") == 0


async def test_delete_waits_until_gone(rack: RackEmulator, run: Client) -> None:
    rack.create_app("pr-13")
    assert await run(lambda c: c.apps.delete_and_wait("pr-13", **WAIT)) is True
    with pytest.raises(ConvoxNotFoundError):
        await run(lambda c: c.apps.get("pr-13"))
    assert await run(lambda c: c.apps.delete_and_wait("pr-13", missing_ok=True, **WAIT)) is False
    with pytest.raises(ConvoxNotFoundError, match="missing_ok"):
        await run(lambda c: c.apps.delete_and_wait("pr-13", **WAIT))
    assert rack.requests.count("DELETE", "/apps/pr-13") == 1


async def test_restart_replaces_every_pod(rack: RackEmulator, run: Client) -> None:
    rack.create_app("shop")
    rack.add_release("shop", MANIFEST, env={}, description="seed")
    before = {p["id"] for p in rack.processes("shop")}
    done = await run(lambda c: c.apps.restart("shop", **WAIT))
    assert done.services == ("web", "worker")
    assert set(done.replaced) == before
    after = rack.processes("shop")
    assert len(after) == 3
    assert before.isdisjoint(p["id"] for p in after)
    assert {p["status"] for p in after} == {"running"}
    with pytest.raises(ConvoxInputError, match="no service 'api'"):
        await run(lambda c: c.apps.restart("shop", service="api", **WAIT))
    assert rack.requests.count("POST", "/apps/shop/services/web/restart") == 1


async def test_restart_of_one_service_without_wait_then_waited_for(
    rack: RackEmulator, run: Client
) -> None:
    rack.create_app("shop")
    rack.add_release("shop", MANIFEST, env={}, description="seed")
    workers = {p["id"] for p in rack.processes("shop") if p["name"] == "worker"}
    sent = await run(lambda c: c.apps.restart("shop", service="worker", wait=False))
    assert set(sent.replaced) == workers
    assert {p["id"] for p in rack.processes("shop") if p["name"] == "worker"} >= workers
    await run(lambda c: c.apps.wait_for_restart(sent, **WAIT))
    now = {p["id"] for p in rack.processes("shop") if p["name"] == "worker"}
    assert now
    assert now.isdisjoint(workers)
