"""Processes dying mid-deploy: the triggerer holding a deferred build, a task's runner mid-build.

Both are killed with SIGKILL (nothing gets to clean up). The deploy must still finish with
exactly one build and one promote: the new triggerer resumes the same trigger with the same
absolute deadline, and the retried task re-attaches to the build its first try started.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from typing import Any

from .cluster import Airflow, wait_until
from .harness import Harness

END_TIME = re.compile(r'"end_time":\s*([0-9.e+]+)')


def test_triggerer_killed_while_build_deferred(
    harness: Harness, airflow: Airflow, figures: dict[str, Any]
) -> None:
    app = harness.new_app("triggerer-kill")
    harness.rack.scripts.next_build(app=app, duration=30)
    run = harness.trigger("sys_deploy_deferred", app)

    def held() -> Any:
        ti = harness.task_instances(run)["build"]
        trigger = ti.get("trigger") or {}
        return ti if ti["state"] == "deferred" and trigger.get("triggerer_id") else None

    before = wait_until(held, timeout=120, what="build deferred and held by a triggerer")
    trigger_id, old_holder = before["trigger"]["id"], before["trigger"]["triggerer_id"]
    kwargs_before = harness.trigger_kwargs(trigger_id)
    (old,) = airflow.triggerers()
    killed = time.monotonic()
    old.kill()
    airflow.start("triggerer-2", "triggerer", "--skip-serve-logs")

    def moved() -> Any:
        ti = harness.task_instances(run)["build"]
        holder = (ti.get("trigger") or {}).get("triggerer_id")
        return ti if holder not in (None, old_holder) else None

    after = wait_until(moved, timeout=90, what="the trigger taken over by the new triggerer")
    figures["triggerer_takeover_seconds"] = round(time.monotonic() - killed, 1)
    assert after["state"] == "deferred"
    assert after["trigger"]["id"] == trigger_id  # the same trigger row, not a new deferral
    kwargs_after = harness.trigger_kwargs(trigger_id)
    assert kwargs_after == kwargs_before
    (deadline,) = END_TIME.findall(kwargs_after)  # absolute, so a restart cannot extend it
    assert float(deadline) > time.time()

    harness.wait(run, timeout=180)
    assert run.state == "success", harness.explain(run)
    assert harness.task_instances(run)["build"]["try_number"] == 1  # resumed, not retried
    assert harness.builds_posted(app) == 1
    assert harness.promotes_posted(app) == 1
    figures["scenario_seconds:triggerer_kill"] = round((run.finished or 0) - run.triggered, 1)


def test_task_runner_killed_mid_build(
    harness: Harness, airflow: Airflow, figures: dict[str, Any]
) -> None:
    app = harness.new_app("runner-kill")
    harness.rack.scripts.next_build(app=app, duration=20)
    run = harness.trigger("sys_migrate_retried", app)

    def building() -> Any:
        ti = harness.task_instances(run)["build"]
        running = [b for b in harness.rack.builds(app) if b["status"] == "running"]
        return ti if ti["state"] == "running" and ti.get("pid") and running else None

    ti = wait_until(building, timeout=120, what="the build task running, its build started")
    pid = ti["pid"]
    assert "airflow" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    os.kill(pid, signal.SIGKILL)

    harness.wait(run, timeout=180)
    tis = harness.task_instances(run)
    assert run.state == "success", harness.explain(run)
    assert tis["build"]["try_number"] == 2
    assert harness.builds_posted(app) == 1, "the retry re-attached instead of building again"
    (build,) = harness.new_builds(app)
    assert harness.xcom(run, "build")["build_id"] == build["id"]
    assert harness.rack.app(app)["release"] == build["release"]
    assert harness.promotes_posted(app) == 1
    retry_log = harness.log_text(run, "build", 2)
    assert build["id"] in retry_log
    assert "started (build pod" not in retry_log
    figures["scenario_seconds:runner_kill"] = round((run.finished or 0) - run.triggered, 1)
