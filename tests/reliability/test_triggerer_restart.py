"""A triggerer restart in the middle of every deferred wait.

The trigger is serialized as the triggerer stores it (a class path and JSON keyword arguments),
its first run is cancelled after its first request, while the build or rollout is still going,
and a trigger re-created from what was stored runs to its event; the task then resumes with it.
The new trigger keeps the same absolute deadline, and no trigger writes anything.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from convox_provider.testing import RackEmulator
from convox_provider.triggers._base import ConvoxTrigger
from convox_provider.triggers.apps import ConvoxAppDeletedTrigger, ConvoxRestartTrigger
from convox_provider.triggers.builds import ConvoxBuildTrigger

from .matrix import (
    APP,
    SUBJECTS,
    Armory,
    Cell,
    Subject,
    check_no_repeated_writes,
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
    return bool(rack.app(trigger.app)["status"] == "updating")


def recreate(classpath: str, kwargs: dict[str, Any]) -> ConvoxTrigger:
    """The trigger a triggerer builds from what it stored."""
    module, name = classpath.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    trigger = cls(**json.loads(json.dumps(kwargs)))
    assert isinstance(trigger, ConvoxTrigger)
    return trigger


@pytest.mark.parametrize("subject", [s for s in SUBJECTS if s.deferrable], ids=str)
def test_triggerer_restart_mid_wait(
    *,
    subject: Subject,
    convox_rack_factory: RackFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rack = convox_rack_factory(timing=subject.slow_timing)
    connect_retrying(monkeypatch, rack)
    cell = Cell(rack, tmp_path)
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
