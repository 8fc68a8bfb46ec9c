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
from convox_provider.triggers.builds import ConvoxBuildTrigger

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
    return bool(rack.app(APP)["status"] == "updating")


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
