"""Builds whose pod is gone, over real HTTP and WebSocket against the rack emulator.

On a rack only the build pod finishes its build (docs/rack-api.md §4.3): a build whose pod was
deleted (a task marked failed deletes it) reads ``running`` forever, and its log socket may stay
open and silent. A wait must still find that out by polling, and a retried task must not
re-attach to such a build.
"""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import Any

import pytest

from convox_provider.client import websocket
from convox_provider.client.client import AsyncConvoxClient, ConvoxClient
from convox_provider.client.errors import ConvoxBuildFailedError
from convox_provider.client.workflows import builds as build_workflows
from convox_provider.client.workflows.events import PreviousBuildChecked
from convox_provider.testing.emulator import RackEmulator
from convox_provider.testing.timing import Timing

MANIFEST = "services:\n  web:\n    build: .\n    port: 3000\n"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    (tmp_path / "convox.yml").write_text(MANIFEST)
    (tmp_path / "Dockerfile").write_text("FROM alpine\n")
    return tmp_path


@pytest.fixture(params=["sync", "async"])
def client(request: pytest.FixtureRequest, convox_rack_factory: Any) -> Any:
    rack: RackEmulator = convox_rack_factory(timing=Timing(build=30.0, process_start=0.05))
    rack.create_app("demo")
    kind = AsyncConvoxClient if request.param == "async" else ConvoxClient
    made = kind(host=rack.url, api_key=rack.password, allow_insecure_http=True)
    made.rack = rack
    return made


async def run(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result


async def test_a_followed_build_whose_pod_was_deleted_fails_by_the_poll(
    client: Any, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Short enough for a test: hand a silent log back after 0.3 s; ticks every 0.1 s.
    monkeypatch.setattr(build_workflows, "LOG_PAUSE_IDLE", 0.3)
    monkeypatch.setattr(websocket, "PING_INTERVAL", 0.1)
    monkeypatch.setattr(build_workflows, "_POD_CHECK_INTERVAL", 0.2)
    build = await run(client.builds.build_from_directory("demo", source, wait=False))
    await run(client.processes.delete("demo", build.process))
    started = time.monotonic()
    with pytest.raises(ConvoxBuildFailedError, match=f"build pod {build.process} is gone"):
        await run(
            client.builds.wait_for_build(
                "demo", build.id, follow_logs=True, poll_interval=0.05, lost_pod_grace=0.5
            )
        )
    assert time.monotonic() - started < 20  # the build itself would take 30 s, its wait 1 h
    assert client.rack.requests.count("GET", f"/apps/demo/builds/{build.id}/logs") >= 2


async def test_resumable_tells_a_build_that_can_finish_from_one_that_cannot(
    client: Any, source: Path
) -> None:
    events: list[Any] = []
    alive = await run(client.builds.build_from_directory("demo", source, wait=False))
    dead = await run(client.builds.build_from_directory("demo", source, wait=False))
    await run(client.processes.delete("demo", dead.process))

    found = await run(client.builds.resumable("demo", build_id=alive.id, on_event=events.append))
    assert found is not None
    assert found.id == alive.id
    assert (
        await run(client.builds.resumable("demo", build_id=dead.id, on_event=events.append)) is None
    )
    assert await run(client.builds.resumable("demo", marker="[airflow-none]")) is None
    assert [(e.build_id, e.usable) for e in events] == [(alive.id, True), (dead.id, False)]
    assert isinstance(events[1], PreviousBuildChecked)
    assert f"its build pod {dead.process} is gone" in events[1].verdict
    assert client.rack.requests.count("POST", "/apps/demo/builds") == 2  # it only reads
