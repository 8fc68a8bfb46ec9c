"""ConvoxBuildTrigger against the rack emulator: one event per wait, whatever happens."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from airflow.triggers.base import TriggerEvent
from convox_support import (
    APP,
    FAST,
    connect,
    run_trigger,
    sample_app,
    slow_builds,
    wait_until,
)

from convox_provider.client.client import ConvoxClient
from convox_provider.hooks.convox import shared_async_clients
from convox_provider.testing import RackEmulator
from convox_provider.triggers.builds import TRIGGER_LOG_LINES, ConvoxBuildTrigger


def start_build(client: ConvoxClient, tmp_path: Path) -> str:
    """Create a build of the sample app (it finishes on the emulator's own schedule)."""
    return client.builds.build_from_directory(APP, sample_app(tmp_path), wait=False).id


def trigger(build_id: str, *, seconds: float = 10.0, **options: Any) -> ConvoxBuildTrigger:
    return ConvoxBuildTrigger(
        convox_conn_id="convox_default",
        app=APP,
        build_id=build_id,
        end_time=time.time() + seconds,
        poll_interval=FAST,
        **options,
    )


# --- serialisation ----------------------------------------------------------------------------


def test_serialize_round_trip_keeps_the_absolute_deadline() -> None:
    original = ConvoxBuildTrigger("convox_rack", "demo", "BABC", 1_900_000_000.5, poll_interval=2)
    classpath, kwargs = original.serialize()
    assert classpath == "convox_provider.triggers.builds.ConvoxBuildTrigger"
    assert kwargs == {
        "convox_conn_id": "convox_rack",
        "app": "demo",
        "build_id": "BABC",
        "end_time": 1_900_000_000.5,
        "poll_interval": 2.0,
        "max_errors": 5,
        "follow_logs": True,
    }
    assert json.loads(json.dumps(kwargs)) == kwargs  # JSON-native: no clients, no models
    restored = ConvoxBuildTrigger(**json.loads(json.dumps(kwargs)))
    assert restored.end_time == original.end_time
    assert restored.serialize() == (classpath, kwargs)


def test_kwargs_persisted_without_the_newer_ones_still_load() -> None:
    restored = ConvoxBuildTrigger(
        convox_conn_id="c", app="demo", build_id="BABC", end_time=1_900_000_000
    )
    assert restored.serialize()[1]["follow_logs"] is True
    assert restored.max_errors == 5
    assert restored.poll_interval == 5.0


# --- outcomes ---------------------------------------------------------------------------------


def test_success_carries_the_release_and_logs_the_build_output(
    rack: RackEmulator, client: ConvoxClient, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    slow_builds(rack, 0.2)
    build_id = start_build(client, tmp_path)
    events = run_trigger(trigger(build_id))
    (build,) = [b for b in rack.builds(APP) if b["id"] == build_id]
    assert build["status"] == "complete"
    assert events == [
        {"status": "success", "app": APP, "build_id": build_id, "release_id": build["release"]}
    ]
    out = capfd.readouterr().out
    assert "Step 1/" in out
    assert f"Running: docker push {rack.state.registry(APP)}:web.{build_id}" in out


def test_failed_build_event_has_the_log_tail(
    rack: RackEmulator, client: ConvoxClient, tmp_path: Path
) -> None:
    rack.scripts.next_build(fail="compilation exploded", duration=0.1)
    build_id = start_build(client, tmp_path)
    (event,) = run_trigger(trigger(build_id))
    assert event["status"] == "failed"
    assert event["build_id"] == build_id
    assert "compilation exploded" in event["message"]
    assert "Building: ." in event["logs_tail"]
    assert event["logs_tail"].splitlines()[-1] == "ERROR: compilation exploded"


def test_failed_build_without_following_logs_still_reports_the_tail(
    rack: RackEmulator, client: ConvoxClient, tmp_path: Path
) -> None:
    rack.scripts.next_build(fail="no space left", duration=0.1)
    build_id = start_build(client, tmp_path)
    (event,) = run_trigger(trigger(build_id, follow_logs=False))
    assert event["status"] == "failed"
    assert "ERROR: no space left" in event["logs_tail"]


def test_without_following_logs_only_polls(
    rack: RackEmulator, client: ConvoxClient, tmp_path: Path
) -> None:
    slow_builds(rack, 0.1)
    build_id = start_build(client, tmp_path)
    rack.requests.clear()
    (event,) = run_trigger(trigger(build_id, follow_logs=False))
    assert event["status"] == "success"
    assert not [r for r in rack.requests if r.websocket]
    assert rack.requests.count("GET", f"/apps/{APP}/builds/{build_id}") >= 1


def test_output_logged_by_a_trigger_is_bounded(
    rack: RackEmulator, client: ConvoxClient, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    lines = [f"step {n:05d}" for n in range(TRIGGER_LOG_LINES + 250)]
    rack.scripts.next_build(logs=lines, duration=0.1)
    build_id = start_build(client, tmp_path)
    (event,) = run_trigger(trigger(build_id))
    assert event["status"] == "success"
    out = capfd.readouterr().out
    assert f"step {TRIGGER_LOG_LINES - 1:05d}" in out
    assert f"step {TRIGGER_LOG_LINES:05d}" not in out
    assert "250 more line(s) of output not logged" in out


def test_deadline_already_passed_is_a_timeout_without_any_request(rack: RackEmulator) -> None:
    rack.requests.clear()
    (event,) = run_trigger(trigger("BNOTLOOKED", seconds=-1))
    assert event["status"] == "timeout"
    assert "build BNOTLOOKED of app demo" in event["message"]
    assert len(rack.requests) == 0


@pytest.mark.parametrize("follow_logs", [True, False])
def test_deadline_passing_during_the_wait_is_a_timeout(
    rack: RackEmulator, client: ConvoxClient, tmp_path: Path, follow_logs: bool
) -> None:
    slow_builds(rack, 60)
    build_id = start_build(client, tmp_path)
    started = time.monotonic()
    (event,) = run_trigger(trigger(build_id, seconds=0.3, follow_logs=follow_logs))
    assert event["status"] == "timeout"
    assert build_id in event["message"]
    assert time.monotonic() - started < 5


def test_a_burst_of_502_is_tolerated(
    rack: RackEmulator, client: ConvoxClient, tmp_path: Path
) -> None:
    slow_builds(rack, 0.2)
    build_id = start_build(client, tmp_path)
    path = f"/apps/{APP}/builds/{build_id}"
    rack.faults.respond("GET", path, 502, times=4)
    (event,) = run_trigger(trigger(build_id, max_errors=5, follow_logs=False))
    assert event["status"] == "success"
    assert rack.requests.count("GET", path, status=502) == 4


def test_a_502_answering_the_build_log_stream_is_tolerated(
    rack: RackEmulator, client: ConvoxClient, tmp_path: Path
) -> None:
    slow_builds(rack, 0.1)
    build_id = start_build(client, tmp_path)
    rack.faults.respond("GET", f"/apps/{APP}/builds/{build_id}/logs", 502, times=1)
    (event,) = run_trigger(trigger(build_id))
    assert event["status"] == "success"
    assert rack.requests.count("GET", f"/apps/{APP}/builds/{build_id}/logs", status=502) == 1


def test_max_errors_consecutive_errors_end_the_wait_with_an_error_event(
    rack: RackEmulator, client: ConvoxClient, tmp_path: Path
) -> None:
    slow_builds(rack, 60)
    build_id = start_build(client, tmp_path)
    path = f"/apps/{APP}/builds/{build_id}"
    rack.faults.respond("GET", path, 503, times=None)
    (event,) = run_trigger(trigger(build_id, max_errors=3, follow_logs=False))
    assert event["status"] == "error"
    assert "503" in event["message"]
    assert rack.requests.count("GET", path, status=503) == 3


def test_unauthorised_is_an_error_event_at_once(
    rack: RackEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect(monkeypatch, rack, password="wrong-password-123")
    rack.requests.clear()
    (event,) = run_trigger(trigger("BXXXXXXXXX", follow_logs=False))
    assert event["status"] == "error"
    assert "401" in event["message"]
    assert len(rack.requests) == 1


def test_unknown_build_is_an_error_event(rack: RackEmulator) -> None:
    (event,) = run_trigger(trigger("BMISSING01", follow_logs=False))
    assert event["status"] == "error"
    assert "ConvoxNotFoundError" in event["message"]


def test_missing_connection_is_an_error_event_not_an_exception() -> None:
    bad = ConvoxBuildTrigger("no_such_conn", APP, "BABC", time.time() + 5)
    (event,) = run_trigger(bad)
    assert event["status"] == "error"
    assert "no_such_conn" in event["message"]


async def test_run_uses_and_releases_the_shared_client(
    rack: RackEmulator, client: ConvoxClient, tmp_path: Path
) -> None:
    slow_builds(rack, 0.1, count=2)
    first, second = start_build(client, tmp_path), start_build(client, tmp_path)

    async def one(build_id: str) -> list[TriggerEvent]:
        return [event async for event in trigger(build_id, follow_logs=False).run()]

    waits = asyncio.gather(one(first), one(second))
    await asyncio.sleep(0.05)
    assert shared_async_clients() == 1  # both waits on one client, one connection pool
    results = await waits
    assert [events[0].payload["status"] for events in results] == ["success", "success"]
    assert shared_async_clients() == 0


# --- on_kill ----------------------------------------------------------------------------------


def test_on_kill_deletes_the_pod_of_a_running_build(
    rack: RackEmulator, client: ConvoxClient, tmp_path: Path
) -> None:
    slow_builds(rack, 60)
    build_id = start_build(client, tmp_path)
    pod = client.builds.get(APP, build_id).process
    asyncio.run(trigger(build_id).on_kill())
    assert rack.requests.count("DELETE", f"/apps/{APP}/processes/{pod}") == 1
    wait_until(lambda: pod not in {p["id"] for p in rack.processes(APP)})


def test_on_kill_leaves_an_ended_build_alone(
    rack: RackEmulator, client: ConvoxClient, tmp_path: Path
) -> None:
    build_id = start_build(client, tmp_path)
    wait_until(lambda: client.builds.get(APP, build_id).status == "complete")
    asyncio.run(trigger(build_id).on_kill())
    assert rack.requests.count("DELETE", f"/apps/{APP}/processes/*") == 0


def test_on_kill_swallows_errors(rack: RackEmulator) -> None:
    rack.faults.respond("GET", "/apps/demo/builds/*", 500, times=None)
    asyncio.run(trigger("BABCDEFGHI").on_kill())  # logged, not raised
    assert rack.requests.count("DELETE", "/apps/demo/processes/*") == 0
