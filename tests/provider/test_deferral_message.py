"""The deferral's log line says that a triggerer must run, and until when the task waits."""

from __future__ import annotations

import time
from typing import Any
from unittest import mock

import pytest
from airflow_compat import TaskDeferred
from convox_support import APP, MANIFEST, context

from convox_provider.operators.releases import ConvoxPromoteReleaseOperator
from convox_provider.testing import RackEmulator


def test_the_deferral_log_line_says_a_triggerer_must_run(rack: RackEmulator) -> None:
    release = rack.add_release(APP, MANIFEST, promote=False)[1]["id"]
    op = ConvoxPromoteReleaseOperator(
        task_id="promote", app=APP, release_id=release, deferrable=True, timeout=60
    )
    logged: list[str] = []

    def info(message: str, *args: Any) -> None:
        logged.append(message % args)

    with mock.patch.object(type(op), "log", mock.PropertyMock()) as log:
        log.return_value.info.side_effect = info
        before = time.time()
        with pytest.raises(TaskDeferred) as deferred:
            op.execute(context())
    # the trigger knows when the task deferred (its event is held a little after it)
    trigger = deferred.value.trigger
    assert before <= trigger.deferred_at <= time.time()
    assert trigger.serialize()[1]["deferred_at"] == trigger.deferred_at
    (line,) = [text for text in logged if text.startswith("Deferring")]
    assert "A triggerer must be running (`airflow triggerer`)" in line
    assert "stays deferred until 20" in line
