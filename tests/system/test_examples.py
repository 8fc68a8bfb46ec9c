"""Every example DAG on a real Airflow, triggered through the REST API as a user would.

The deploy pipeline runs with its waits on the worker and deferred; every other example
deferred. Each is triggered with a logical date and with ``logical_date: null`` (Airflow 3's
default for runs triggered from the UI or the API). Each run is checked on the API (run and task
states, ``deferred`` seen while it ran, XCom, rendered fields, task logs) and on the rack (one
build at most and one promote: nothing was sent twice).
"""

from __future__ import annotations

import statistics
from typing import Any

import pytest

from .conftest import EXAMPLES
from .harness import Harness, Run

OK = "success"
EXPECTED: dict[str, dict[str, Any]] = {
    "sys_deploy_sync": {
        "tasks": dict.fromkeys(("build", "promote", "wait_for_rollout", "report"), OK),
        "builds": 1,
        "deferred": set(),
    },
    "sys_deploy_deferred": {
        "tasks": dict.fromkeys(("build", "promote", "wait_for_rollout", "report"), OK),
        "builds": 1,
        "deferred": {"build"},
    },
    "sys_guarded_deferred": {
        "tasks": {
            "active_release": OK,
            "deploy": OK,
            "smoke_test": OK,
            "rollback": "skipped",
            "report_rollback": "skipped",
        },
        "builds": 1,
        "deferred": {"deploy"},
    },
    "sys_migrate_deferred": {
        "tasks": dict.fromkeys(("build", "migrate", "promote"), OK),
        "builds": 1,
        "deferred": {"build", "promote"},
    },
    "sys_rollback_deferred": {
        "tasks": dict.fromkeys(("on_time", "rollback", "report"), OK),
        "builds": 0,
        "deferred": {"rollback"},
    },
    "sys_rotation_deferred": {
        "tasks": dict.fromkeys(("rotate", "verify"), OK),
        "builds": 0,
        "deferred": {"rotate"},
    },
    "sys_review_deferred": {
        "tasks": dict.fromkeys(("create_app", "set_env", "deploy", "smoke_test", "delete_app"), OK),
        "builds": 1,
        "deferred": {"create_app", "deploy", "delete_app"},
    },
    "sys_across_deferred": {
        "tasks": dict.fromkeys(("build", "smoke_test", "copy_to_production", "promote"), OK),
        "builds": 1,
        "deferred": {"build", "promote"},
    },
}
ACROSS = "sys_across_deferred"


def cases() -> list[Any]:
    found = []
    for dag_id in EXAMPLES:
        for dated in (True, False):
            label = f"{dag_id}-{'logical_date' if dated else 'logical_date_null'}"
            found.append(pytest.param(dag_id, dated, id=label))
    return found


def check_dag_specifics(harness: Harness, run: Run) -> None:
    rack, app, secret = harness.rack, run.app, harness.secret
    tis = harness.task_instances(run)
    if run.dag_id == "sys_review_deferred":
        # The DAG created the app, and its teardown deleted it: nothing is left on the rack.
        assert app not in [a["name"] for a in rack.state.app_list()]
        assert harness.xcom(run, "smoke_test")["exit_code"] == 0
        assert rack.requests.count("POST", "/apps") >= 1
        assert rack.requests.count("DELETE", f"/apps/{app}") == 1
        return
    active = rack.app(app)
    if run.dag_id.startswith("sys_deploy"):
        xcom = harness.xcom(run, "build")
        (build,) = harness.new_builds(app)
        assert build["id"] == xcom["build_id"]
        assert build["status"] == "complete"
        assert active["release"] == xcom["release_id"] == build["release"]
        assert active["status"] == "running"
        # The template was rendered from the build's XCom: exactly that release was promoted.
        assert tis["promote"]["rendered_fields"]["release_id"] == xcom["release_id"]
        report = harness.xcom(run, "report")["return_value"]
        assert report == {
            "app": app,
            "build_id": xcom["build_id"],
            "release_id": xcom["release_id"],
            "active_release": xcom["release_id"],
            "status": "running",
        }
        log = harness.log_text(run, "build", 1)
        assert f"Build {xcom['build_id']} of app {app} started" in log
        # the build's own output: the builder's push of the image it built
        assert f":web.{xcom['build_id']}" in log
        assert "Running: docker push " in log
    elif run.dag_id == "sys_guarded_deferred":
        release = harness.xcom(run, "deploy")["release_id"]
        assert active["release"] == release
        assert harness.xcom(run, "active_release")["return_value"] == harness.seeds[app][0]
        assert harness.xcom(run, "smoke_test")["exit_code"] == 0
        assert tis["smoke_test"]["rendered_fields"]["release_id"] == release
    elif run.dag_id == "sys_migrate_deferred":
        xcom = harness.xcom(run, "build")
        assert active["release"] == xcom["release_id"]
        assert tis["migrate"]["rendered_fields"]["release_id"] == xcom["release_id"]
        assert "python: emulated command" in harness.log_text(run, "migrate", 1)
        (execution,) = [e for e in rack.execs if e.app == app]
        assert (execution.command, execution.exit_code) == ("python manage.py migrate", 0)
    elif run.dag_id == "sys_rollback_deferred":
        xcom = harness.xcom(run, "rollback")
        first, second = harness.seeds[app]
        assert xcom["rolled_back_to"] == first
        assert active["release"] == xcom["release_id"] not in (first, second)
        assert harness.xcom(run, "report")["return_value"]["active_release"] == xcom["release_id"]
    elif run.dag_id == ACROSS:
        built = harness.xcom(run, "build")
        copied = harness.xcom(run, "copy_to_production")
        assert rack.app(app)["release"] == harness.seeds[app][0]  # staging: nothing promoted
        assert [b["id"] for b in harness.new_builds(app)] == [built["build_id"]]
        production = harness.production
        (imported,) = production.builds(app)
        (release,) = production.releases(app)
        assert (copied["build_id"], copied["release_id"]) == (imported["id"], release["id"])
        assert production.app(app)["release"] == release["id"]
        assert production.requests.count("POST", f"/apps/{app}/builds/import") == 1
        assert tis["copy_to_production"]["rendered_fields"]["build_id"] == built["build_id"]
        assert "Not verified: that the images were pushed" in harness.log_text(
            run, "copy_to_production", 1
        )
    elif run.dag_id == "sys_rotation_deferred":
        release = harness.xcom(run, "rotate")["return_value"]
        assert active["release"] == release
        (new,) = [r for r in rack.releases(app) if r["id"] == release]
        assert f"PAYMENTS_CREDENTIAL={secret}" in new["env"].splitlines()
        verify = harness.xcom(run, "verify")["return_value"]
        assert "PAYMENTS_CREDENTIAL" in verify["keys"]


@pytest.mark.parametrize(("dag_id", "dated"), cases())
def test_example_dag(
    harness: Harness,
    example_runs: dict[tuple[str, bool], Run],
    figures: dict[str, Any],
    dag_id: str,
    dated: bool,
) -> None:
    run = example_runs[dag_id, dated]
    harness.wait(*example_runs.values(), timeout=480)
    expected = EXPECTED[dag_id]
    states = harness.task_states(run)
    assert (run.state, states) == ("success", expected["tasks"]), harness.explain(run)
    deferred = harness.watcher.deferred(run)
    assert expected["deferred"] <= set(deferred), f"seen deferred: {sorted(deferred)}"
    if not expected["deferred"]:
        assert not deferred
    assert harness.builds_posted(run.app) == expected["builds"]
    # The build-once-deploy-many example promotes on production only.
    promoted = harness.production if dag_id == ACROSS else harness.rack
    assert harness.promotes_posted(run.app, promoted) == 1
    check_dag_specifics(harness, run)
    figures.setdefault("example_run_seconds", {})[f"{dag_id}/{'dated' if dated else 'null'}"] = (
        round((run.finished or 0) - run.triggered, 1)
    )
    for task_id in deferred:
        latencies = figures.setdefault("resume_latency_seconds", [])
        latencies.extend(harness.resume_latencies(run, task_id))
        figures["resume_latency_median_max"] = (
            statistics.median(latencies) if latencies else None,
            max(latencies, default=None),
        )
