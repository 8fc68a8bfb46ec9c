"""The example DAGs, run with ``dag.test()`` against the emulated rack in both modes.

Each run is checked three ways: the DagRun and task states Airflow recorded, the XComs read
back from the metadata DB, and the rack's own state (builds, releases, the app's active
release). In deferrable mode ``dag.test()`` runs each trigger inline after round-tripping its
kwargs through serde, so these runs also catch trigger serialization mistakes.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from convox_provider.testing import RackEmulator

from .harness import EXAMPLE_DAGS, MANIFEST, MODES, SeededApp

DEPLOY = "convox_deploy_pipeline"
ROLLBACK = "convox_scheduled_rollback"
DEFERRED = "[DAG TEST] running trigger in line"
#: A traceback's last line or a logged exception: ``SomeError: message``.
EXCEPTION_LINE = re.compile(r"\b\w*(?:Exception|Error): ")

ExampleDag = Callable[[str, str], Any]


def xcoms(dag_run: Any) -> dict[tuple[str, str], Any]:
    """Every XCom the run wrote, read back from the metadata DB: ``{(task_id, key): value}``."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id)
        return {(row.task_id, row.key): XComModel.deserialize_value(row) for row in rows}


def task_states(dag_run: Any) -> dict[str, str]:
    """``{task_id: state}`` of the run, read back from the metadata DB."""
    from airflow.utils.session import create_session

    with create_session() as session:
        return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances(session=session)}


def deferrals(caplog: pytest.LogCaptureFixture) -> int:
    """How often ``dag.test()`` ran a trigger inline (its own log, through stdlib logging)."""
    messages = caplog.messages
    assert any(m.startswith("[DAG TEST] starting task_id=") for m in messages), "no dag.test log"
    return messages.count(DEFERRED)


def exception_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if EXCEPTION_LINE.search(line)]


def settled(rack: RackEmulator, app: str, within: float = 10.0) -> tuple[str, str]:
    """(release, status) of ``app`` once it is no longer rolling out or back."""
    deadline = time.monotonic() + within
    while True:
        state = rack.app(app)
        if state["status"] not in ("updating", "rollback") or time.monotonic() > deadline:
            return state["release"], state["status"]
        time.sleep(0.05)


def find(items: list[dict[str, Any]], item_id: str) -> dict[str, Any]:
    (found,) = [item for item in items if item["id"] == item_id]
    return found


# --- the DAG files themselves -------------------------------------------------------------------


def test_example_dags_folder_imports_cleanly() -> None:
    from airflow_compat import DagBag

    bag = DagBag(dag_folder=str(EXAMPLE_DAGS))

    assert bag.import_errors == {}
    assert {DEPLOY, ROLLBACK} <= set(bag.dag_ids)
    deploy = bag.dags[DEPLOY]
    chain = ["build", "promote", "wait_for_rollout", "report"]
    assert set(deploy.task_ids) == set(chain)
    for upstream, task_id in itertools.pairwise(chain):
        assert deploy.get_task(task_id).upstream_task_ids == {upstream}
    assert bag.dags[ROLLBACK].is_paused_upon_creation is True


def test_parsing_the_example_dags_does_not_import_the_client() -> None:
    """DAG files are parsed all the time: the client (~90 ms) is imported by tasks only."""
    code = (
        "import runpy, sys\n"
        "for path in sys.argv[1:]:\n"
        "    runpy.run_path(path)\n"
        "print(sorted(m for m in sys.modules if m.startswith('convox_provider')))\n"
    )
    files = sorted(str(path) for path in EXAMPLE_DAGS.glob("*.py"))
    assert str(EXAMPLE_DAGS / f"{DEPLOY}.py") in files
    done = subprocess.run(
        [sys.executable, "-c", code, *files],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = done.stdout.strip().splitlines()[-1]
    assert "convox_provider.operators.releases" in loaded  # the files really were run
    assert "convox_provider.client.client" not in loaded


# --- the deploy pipeline --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_deploy_pipeline_builds_promotes_and_waits(
    *,
    mode: str,
    app: SeededApp,
    rack: RackEmulator,
    example_dag: ExampleDag,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    dag = example_dag(DEPLOY, mode)

    run = dag.test(run_conf={"app": app.name})

    output = capfd.readouterr().out
    assert run.state == "success", exception_lines(output)
    assert task_states(run) == dict.fromkeys(
        ["build", "promote", "wait_for_rollout", "report"], "success"
    )
    pushed = xcoms(run)
    build_id = pushed["build", "build_id"]
    release_id = pushed["build", "release_id"]
    assert pushed["build", "return_value"] == build_id
    assert pushed["promote", "return_value"] == release_id
    # The rack: the build ran from the sample app and made the release the app now runs.
    build = find(rack.builds(app.name), build_id)
    assert build["status"] == "complete"
    assert build["release"] == release_id
    # A durable build carries its retry marker (convox_provider/operators/_base.py)
    marker = r" \[airflow-[0-9a-f]{16}\]"
    assert re.fullmatch(re.escape(f"Airflow {DEPLOY} {run.run_id}") + marker, build["description"])
    assert "Step 1/4 : FROM python:3.12-slim" in output  # the build log reached the task log
    assert find(rack.releases(app.name), release_id)["build"] == build_id
    state = rack.app(app.name)
    assert (state["release"], state["status"]) == (release_id, "running")
    assert release_id != app.release
    assert pushed["report", "return_value"] == {
        "app": app.name,
        "build_id": build_id,
        "release_id": release_id,
        "active_release": release_id,
        "status": "running",
    }
    # The mode really changed how the waits ran: the build and the rollout were deferred.
    assert deferrals(caplog) == (2 if mode == "deferrable" else 0)


@pytest.mark.parametrize("mode", MODES)
def test_deploy_pipeline_fails_on_a_failed_build_and_names_it(
    *,
    mode: str,
    app: SeededApp,
    rack: RackEmulator,
    example_dag: ExampleDag,
    capfd: pytest.CaptureFixture[str],
) -> None:
    rack.scripts.fail_next_build("npm ERR! missing script: build", app=app.name)

    run = example_dag(DEPLOY, mode).test(run_conf={"app": app.name})

    output = capfd.readouterr().out
    assert run.state == "failed"
    states = task_states(run)
    assert states["build"] == "failed"
    assert {states[t] for t in ("promote", "wait_for_rollout", "report")} == {"upstream_failed"}
    pushed = xcoms(run)
    build_id = pushed["build", "build_id"]  # pushed before the wait
    assert ("build", "release_id") not in pushed
    assert find(rack.builds(app.name), build_id)["status"] == "failed"
    # Not retryable: AirflowFailException, naming the build and saying why it failed.
    failures = [line for line in exception_lines(output) if "AirflowFailException" in line]
    assert any(
        build_id in line and "npm ERR! missing script: build" in line for line in failures
    ), failures
    assert rack.app(app.name)["release"] == app.release  # nothing was deployed


@pytest.mark.parametrize("mode", MODES)
def test_deploy_pipeline_fails_when_the_rack_rolls_the_release_back(
    *,
    mode: str,
    app: SeededApp,
    rack: RackEmulator,
    example_dag: ExampleDag,
    capfd: pytest.CaptureFixture[str],
) -> None:
    rack.scripts.fail_next_promote(app.name)

    run = example_dag(DEPLOY, mode).test(run_conf={"app": app.name})

    output = capfd.readouterr().out
    assert run.state == "failed"
    states = task_states(run)
    assert (states["build"], states["promote"]) == ("success", "success")
    assert (states["wait_for_rollout"], states["report"]) == ("failed", "upstream_failed")
    release_id = xcoms(run)["build", "release_id"]
    assert rack.app(app.name)["release"] == app.release  # rolled back (or rolling back)
    assert settled(rack, app.name) == (app.release, "running")
    failures = [line for line in exception_lines(output) if "AirflowFailException" in line]
    assert any(
        release_id in line and app.release in line and "rolled back" in line for line in failures
    ), failures


# --- the scheduled rollback -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_scheduled_rollback_returns_to_the_previous_release_as_a_new_one(
    *,
    mode: str,
    app: SeededApp,
    rack: RackEmulator,
    example_dag: ExampleDag,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, current = rack.add_release(app.name, MANIFEST, description="v2")
    assert rack.app(app.name)["release"] == current["id"]

    run = example_dag(ROLLBACK, mode).test(run_conf={"app": app.name})

    output = capfd.readouterr().out
    assert run.state == "success", exception_lines(output)
    assert task_states(run) == {"on_time": "success", "rollback": "success", "report": "success"}
    pushed = xcoms(run)
    new_release = pushed["rollback", "release_id"]
    assert pushed["rollback", "return_value"] == new_release
    assert pushed["rollback", "rolled_back_to"] == app.release
    # A NEW release carrying the old build is what the app runs now.
    assert new_release not in (app.release, current["id"])
    assert find(rack.releases(app.name), new_release)["build"] == app.build
    state = rack.app(app.name)
    assert (state["release"], state["status"]) == (new_release, "running")
    assert pushed["report", "return_value"] == {
        "app": app.name,
        "release_id": new_release,
        "rolled_back_to": app.release,
        "build_id": app.build,
        "active_release": new_release,
        "status": "running",
    }
    assert deferrals(caplog) == (1 if mode == "deferrable" else 0)


def test_scheduled_rollback_to_a_chosen_release(
    app: SeededApp, rack: RackEmulator, example_dag: ExampleDag
) -> None:
    rack.add_release(app.name, MANIFEST, description="v2")
    rack.add_release(app.name, MANIFEST, description="v3")

    run = example_dag(ROLLBACK, "sync").test(run_conf={"app": app.name, "release_id": app.release})

    assert run.state == "success"
    pushed = xcoms(run)
    assert pushed["rollback", "rolled_back_to"] == app.release
    new_release = pushed["rollback", "release_id"]
    assert find(rack.releases(app.name), new_release)["build"] == app.build
    assert rack.app(app.name)["release"] == new_release


@pytest.mark.parametrize(
    ("run_type", "late", "goes_ahead"),
    [
        ("scheduled", timedelta(minutes=5), True),
        ("scheduled", timedelta(hours=10), False),  # the slot Airflow runs when unpaused
        ("manual", timedelta(days=30), True),
    ],
)
def test_scheduled_rollback_skips_a_slot_long_past(
    example_dag: ExampleDag, run_type: str, late: timedelta, goes_ahead: bool
) -> None:
    """Unpausing runs the most recent past slot at once; the rollback waits for the next one."""
    on_time = example_dag(ROLLBACK, "sync").get_task("on_time")
    slot = datetime.now(timezone.utc) - late
    run = SimpleNamespace(run_type=run_type, logical_date=slot, run_after=slot)
    assert on_time.python_callable(dag_run=run) is goes_ahead
