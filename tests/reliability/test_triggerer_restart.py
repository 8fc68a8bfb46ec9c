"""A triggerer restart in the middle of every deferred wait.

The trigger is serialized as the triggerer stores it (a class path and JSON keyword arguments),
its first run is cancelled after its first request, while the build or rollout is still going,
and a trigger re-created from what was stored runs to its event; the task then resumes with it.
The new trigger keeps the same absolute deadline, and no trigger writes anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from convox_support import MANIFEST, seed

from convox_provider.client.client import ConvoxClient
from convox_provider.testing import RackEmulator, Timing
from convox_provider.triggers._base import ConvoxTrigger
from convox_provider.triggers.apps import ConvoxAppDeletedTrigger, ConvoxRestartTrigger
from convox_provider.triggers.builds import ConvoxBuildTrigger
from convox_provider.triggers.processes import ConvoxProcessTrigger
from convox_provider.triggers.watch import CURSOR_KEY, ConvoxReleaseEventTrigger

from .matrix import (
    APP,
    SUBJECTS,
    Armory,
    Cell,
    Subject,
    add_source_rack,
    check_no_repeated_writes,
    check_source_untouched,
    connect_retrying,
    drive,
    run_part_way,
    run_to_event,
    writes_of,
)

RackFactory = Callable[..., RackEmulator]


def in_progress(rack: RackEmulator, trigger: ConvoxTrigger) -> bool:
    """Whether what ``trigger`` waits for is still going on the rack."""
    if isinstance(trigger, ConvoxBuildTrigger):
        return bool(rack.state.build_get(APP, trigger.build_id)["status"] == "running")
    if isinstance(trigger, ConvoxRestartTrigger):
        return bool(set(trigger.replaced) & {p["id"] for p in rack.processes(trigger.app)})
    if isinstance(trigger, ConvoxAppDeletedTrigger):
        return bool(rack.app(trigger.app)["status"] == "deleting")
    if isinstance(trigger, ConvoxProcessTrigger):
        return bool(rack.state.process_get(APP, trigger.process_id)["status"] == "running")
    return bool(rack.app(trigger.app)["status"] == "updating")


def recreate(classpath: str, kwargs: dict[str, Any]) -> ConvoxTrigger:
    """The trigger a triggerer builds from what it stored."""
    module, name = classpath.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    trigger = cls(**json.loads(json.dumps(kwargs)))
    assert isinstance(trigger, ConvoxTrigger)
    return trigger


RESTART_TIMINGS = {"create-app": Timing(rollout=2.0)}
"""Where the task's own steps before deferring (create, then mark the app) can outlast the
matrix's 0.2 s rollout on a loaded machine (seen on 3.1 in CI: 1 s), so that the app would be
running before the trigger is cut: a rollout that outlasts them."""


@pytest.mark.parametrize("subject", [s for s in SUBJECTS if s.deferrable], ids=str)
def test_triggerer_restart_mid_wait(
    *,
    subject: Subject,
    convox_rack_factory: RackFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rack = convox_rack_factory(timing=RESTART_TIMINGS.get(subject.name, subject.slow_timing))
    connect_retrying(monkeypatch, rack)
    cell = Cell(rack, tmp_path)
    add_source_rack(cell, subject, convox_rack_factory, monkeypatch)
    subject.seed(cell, True)
    rack.requests.clear()
    armory = Armory(rack)
    restarted: list[str] = []

    def restart(first: ConvoxTrigger) -> dict[str, Any]:
        classpath, kwargs = first.serialize()
        writes = len(writes_of(list(rack.requests)))
        run_part_way(first, rack)
        assert in_progress(rack, first)  # cut in the middle of the wait
        second = recreate(classpath, kwargs)
        assert second.serialize() == (classpath, kwargs)
        assert second.end_time == first.end_time  # the same absolute deadline
        event = run_to_event(second)
        assert event["status"] == "success", event
        assert len(writes_of(list(rack.requests))) == writes  # triggers only read
        restarted.append(type(first).__name__)
        return event

    result = drive(subject.make(cell, True), cell, run_trigger=restart)

    subject.check(cell, result)
    expected = ["ConvoxBuildTrigger", "ConvoxReleaseTrigger"] if subject.name == "deploy" else None
    assert restarted == (expected or [type(cell.deferrals[0].trigger).__name__])
    check_no_repeated_writes(subject, armory)
    check_source_untouched(cell)


def test_an_approval_leaves_no_convox_state_in_a_trigger(
    convox_rack_factory: RackFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The approval's change is read before anyone is asked and stored in Airflow's request row
    (its body); what waits is Airflow's own: nothing on 3.3 (``awaiting_input``), and on 3.1
    a ``HITLTrigger`` whose stored kwargs (task instance id, options, timeout) hold nothing of
    Convox, so a triggerer restart re-creates it as it was and the rack is never read again."""
    from airflow.providers.standard.operators import hitl
    from airflow_compat import AIRFLOW_RELEASE, TaskAwaitingInput, TaskDeferred

    (subject,) = [s for s in SUBJECTS if s.name == "approval"]
    rack = convox_rack_factory()
    connect_retrying(monkeypatch, rack)
    cell = Cell(rack, tmp_path)
    subject.seed(cell, False)
    rows: list[dict[str, Any]] = []
    monkeypatch.setattr(hitl, "upsert_hitl_detail", lambda **row: rows.append(row))
    task: Any = subject.make(cell, False)
    context = {"ti": cell.ti, "task_instance": cell.ti}
    cell.ti.id = "0192e4b2-8d38-7c39-a1c4-0d7c3b2f9e11"  # type: ignore[attr-defined]
    with pytest.raises((TaskAwaitingInput, TaskDeferred)) as waiting:
        super(type(task), task).execute(context)
    assert cell.seeded["target"] in rows[0]["body"]
    rack.requests.clear()
    if AIRFLOW_RELEASE >= (3, 3):
        assert isinstance(waiting.value, TaskAwaitingInput)
        return
    assert isinstance(waiting.value, TaskDeferred)
    classpath, kwargs = waiting.value.trigger.serialize()
    assert classpath.startswith("airflow.providers.standard.triggers.hitl.")
    stored = json.dumps(kwargs, default=str)
    assert cell.seeded["target"] not in stored
    assert APP not in stored
    module, name = classpath.rsplit(".", 1)
    again = getattr(importlib.import_module(module), name)(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    assert len(rack.requests) == 0


# --- the release watcher: restarted between and during deploys -----------------------------------


class AssetStore:
    """An asset state store as Airflow 3.3 keeps it (values stored as JSON)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = json.loads(json.dumps(value))


def test_release_watcher_restarts_neither_repeat_nor_miss_a_release(
    convox_rack_factory: RackFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six triggerer restarts, each cutting the watcher in the middle of a poll: deploys made
    while it runs and while it is down are each reported once, in order; a transient outage
    (5xx bursts on its poll) changes nothing, and the watcher writes nothing to the rack."""
    rack = convox_rack_factory(timing=Timing(rollout=0.05))
    connect_retrying(monkeypatch, rack)
    seed(rack)
    store = AssetStore()
    classpath, kwargs = ConvoxReleaseEventTrigger(app=APP, poll_interval=0.02).serialize()
    deployed: list[str] = []
    reported: list[str] = []

    def deploy() -> None:
        new = rack.add_release(APP, MANIFEST, promote=False)[1]["id"]
        with ConvoxClient(rack.url, rack.password) as client:
            client.releases.promote(APP, new, poll_interval=0.02, initial_delay=0)
        deployed.append(str(new))

    async def until(condition: Callable[[], bool]) -> None:
        for _ in range(1000):
            if condition():
                return
            await asyncio.sleep(0.005)
        raise AssertionError("not reached in time")

    async def one_life(deploy_now: bool) -> None:
        """One triggerer's life: the trigger re-created from what was stored, then cut."""
        trigger = recreate_watcher(classpath, kwargs)
        trigger.asset_state_store = store

        async def collect() -> None:
            async for event in trigger.run():
                reported.append(event.payload["release_id"])

        task = asyncio.ensure_future(collect())
        await until(lambda: bool(store.values))  # watching (the starting point is recorded)
        # what was deployed while it was down is reported first (a deploy right after it, before
        # its first poll, would be seen as the only one: the rack keeps no history of what ran)
        await until(lambda: len(reported) == len(deployed))
        if deploy_now:
            await asyncio.to_thread(deploy)
            await until(lambda: len(reported) == len(deployed))
        before = len(rack.requests)
        await until(lambda: len(rack.requests) > before)  # cut in the middle of polling
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def scenario() -> None:
        for life in range(6):
            await one_life(deploy_now=life % 2 == 1)
            if life % 3 == 0:
                deploy()  # while no triggerer runs
            if life == 3:
                rack.faults.respond("GET", f"/apps/{APP}", 503, times=8)
        await one_life(deploy_now=False)
        await asyncio.sleep(0.2)

    asyncio.run(scenario())
    assert len(deployed) == 5
    assert reported == deployed
    assert store.values == {CURSOR_KEY: {"release_id": deployed[-1]}}
    promotes = [r for r in writes_of(list(rack.requests)) if r.path.endswith("/promote")]
    assert len(writes_of(list(rack.requests))) == len(promotes) == len(deployed)  # only deploys


def recreate_watcher(classpath: str, kwargs: dict[str, Any]) -> ConvoxReleaseEventTrigger:
    module, name = classpath.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    trigger = cls(**json.loads(json.dumps(kwargs)))
    assert isinstance(trigger, ConvoxReleaseEventTrigger)
    return trigger
