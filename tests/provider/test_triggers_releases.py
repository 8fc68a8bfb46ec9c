"""ConvoxReleaseTrigger against the rack emulator: rollouts that settle, roll back or stall."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from convox_support import APP, FAST, MANIFEST, connect, run_trigger, seed

from convox_provider.client.client import ConvoxClient
from convox_provider.testing import RackEmulator, Timing
from convox_provider.triggers.releases import ConvoxReleaseTrigger

Rollout = Callable[..., tuple[RackEmulator, str, str]]


@pytest.fixture
def rollout(
    convox_rack_factory: Callable[..., RackEmulator], monkeypatch: pytest.MonkeyPatch
) -> Rollout:
    """A rack whose rollouts take ``seconds``, app ``demo`` on release R1, R2 being promoted."""

    def start(seconds: float = 0.0, *, fail: bool = False) -> tuple[RackEmulator, str, str]:
        rack = convox_rack_factory(timing=Timing(rollout=seconds))
        connect(monkeypatch, rack)
        (first,) = seed(rack)
        second = rack.add_release(APP, MANIFEST, promote=False)[1]["id"]
        if fail:
            rack.scripts.fail_next_promote(APP)
        with ConvoxClient(rack.url, "password") as client:
            client.releases.submit_promote(APP, second)
        return rack, first, second

    return start


def trigger(release_id: str, *, seconds: float = 10.0, **options: Any) -> ConvoxReleaseTrigger:
    return ConvoxReleaseTrigger(
        convox_conn_id="convox_default",
        app=APP,
        release_id=release_id,
        end_time=time.time() + seconds,
        poll_interval=FAST,
        **options,
    )


def test_serialize_round_trip_keeps_the_absolute_deadline() -> None:
    original = ConvoxReleaseTrigger(
        "convox_rack", "demo", "RABC", 1_900_000_000.25, initial_delay=5, max_errors=2
    )
    classpath, kwargs = original.serialize()
    assert classpath == "convox_provider.triggers.releases.ConvoxReleaseTrigger"
    assert kwargs == {
        "convox_conn_id": "convox_rack",
        "app": "demo",
        "release_id": "RABC",
        "end_time": 1_900_000_000.25,
        "poll_interval": 5.0,
        "initial_delay": 5.0,
        "max_errors": 2,
    }
    restored = ConvoxReleaseTrigger(**json.loads(json.dumps(kwargs)))
    assert restored.end_time == original.end_time
    assert restored.serialize() == (classpath, kwargs)


def test_a_triggerer_holds_an_event_that_comes_right_after_the_deferral(rollout: Rollout) -> None:
    """apache/airflow#71580: a task resumed before the scheduler saw its worker exit on defer()
    is failed; an event is therefore held until ``resume_hold`` after the deferral."""
    _, _, second = rollout(0.0)

    def timed(deferred_ago: float, *, in_triggerer: bool) -> float:
        held = trigger(second, deferred_at=time.time() - deferred_ago)
        held.resume_hold = 0.8
        if in_triggerer:  # a triggerer gives each trigger its task instance; dag.test() does not
            held.task_instance = SimpleNamespace(task_id="deploy")  # type: ignore[assignment]
        started = time.monotonic()
        assert [e["status"] for e in run_trigger(held)] == ["success"]
        return time.monotonic() - started

    assert timed(0.0, in_triggerer=True) >= 0.75  # held until 0.8 s after the deferral
    assert timed(0.5, in_triggerer=True) < 0.75  # only what is left of it
    assert timed(0.0, in_triggerer=False) < 0.75  # dag.test(): no scheduler, no race
    restored = ConvoxReleaseTrigger(**trigger(second, deferred_at=1_900_000_000.5).serialize()[1])
    assert restored.deferred_at == 1_900_000_000.5


def test_rollout_that_settles_is_a_success(rollout: Rollout) -> None:
    rack, _, second = rollout(0.2)
    assert rack.app(APP)["status"] == "updating"
    events = run_trigger(trigger(second))
    assert events == [{"status": "success", "app": APP, "release_id": second}]
    assert rack.app(APP)["release"] == second


def test_rollback_seen_during_the_rollout(rollout: Rollout) -> None:
    _, first, second = rollout(0.2, fail=True)
    (event,) = run_trigger(trigger(second))
    assert event["status"] == "rollback"
    assert event["release_id"] == second
    assert event["active_release"] == first
    assert "rolled back" in event["message"]


def test_rollback_finished_between_polls(rollout: Rollout) -> None:
    rack, first, second = rollout(0.0, fail=True)
    assert (rack.app(APP)["status"], rack.app(APP)["release"]) == ("running", first)
    (event,) = run_trigger(trigger(second))
    assert event["status"] == "rollback"
    assert (event["release_id"], event["active_release"]) == (second, first)


def test_rollout_outlasting_the_deadline_is_a_timeout(rollout: Rollout) -> None:
    _, _, second = rollout(60)
    started = time.monotonic()
    (event,) = run_trigger(trigger(second, seconds=0.3))
    assert event["status"] == "timeout"
    assert time.monotonic() - started < 3


def test_the_old_release_within_initial_delay_is_the_lag_not_a_rollback(
    convox_rack_factory: Callable[..., RackEmulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    rack = convox_rack_factory(timing=Timing())
    connect(monkeypatch, rack)
    (first,) = seed(rack)
    second = rack.add_release(APP, MANIFEST, promote=False)[1]["id"]

    def promote() -> None:
        with ConvoxClient(rack.url, "password") as client:
            client.releases.submit_promote(APP, second)

    async def promoted_late() -> list[dict[str, Any]]:
        # the wait starts while the app still reads its old release, as right after a promote
        # whose status has not caught up yet (§5.1)
        waiting = asyncio.create_task(_events(trigger(second, initial_delay=2.0)))
        await asyncio.sleep(0.5)
        await asyncio.to_thread(promote)
        return await waiting

    assert asyncio.run(promoted_late()) == [{"status": "success", "app": APP, "release_id": second}]
    (promoted,) = rack.requests.find("POST", f"/apps/{APP}/releases/{second}/promote")
    polls = rack.requests.find("GET", f"/apps/{APP}")
    assert any(poll.time < promoted.time for poll in polls)  # it read the old release first
    assert rack.app(APP)["release"] == second != first


async def _events(waiting: ConvoxReleaseTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in waiting.run()]


def test_max_errors_consecutive_errors_end_the_wait(rollout: Rollout) -> None:
    rack, _, second = rollout(60)
    rack.faults.respond("GET", f"/apps/{APP}", 502, times=None)
    (event,) = run_trigger(trigger(second, max_errors=2))
    assert event["status"] == "error"
    assert "502" in event["message"]
    assert rack.requests.count("GET", f"/apps/{APP}", status=502) == 2


def test_on_kill_cancels_our_rollout(rollout: Rollout) -> None:
    rack, first, second = rollout(60)
    asyncio.run(trigger(second).on_kill())
    assert rack.requests.count("POST", f"/apps/{APP}/cancel") == 1
    assert rack.app(APP)["status"] == "rollback"
    assert rack.app(APP)["release"] == first


def test_on_kill_leaves_a_settled_app_alone(rollout: Rollout) -> None:
    rack, _, second = rollout(0.0)
    asyncio.run(trigger(second).on_kill())
    assert rack.requests.count("POST", f"/apps/{APP}/cancel") == 0


def test_on_kill_leaves_someone_elses_rollout_alone(rollout: Rollout) -> None:
    rack, first, _ = rollout(60)
    asyncio.run(trigger(first).on_kill())
    assert rack.requests.count("POST", f"/apps/{APP}/cancel") == 0
    assert rack.app(APP)["status"] == "updating"
