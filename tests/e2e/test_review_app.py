"""The review-app example DAG under ``dag.test()``: an app per pull request, created, configured,
deployed, smoke-tested and deleted, the delete a teardown that runs when the deploy fails.

Same harness as ``test_example_dags``: a migrated metadata DB, one emulated rack, the DAG file
loaded once per mode.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from convox_provider.testing import RackEmulator

from .harness import EXAMPLE_DAGS, MODES
from .test_example_dags import deferrals, exception_lines, task_states, xcoms

REVIEW = "convox_review_app"
SMOKE_TEST = (
    "python -c \"import urllib.request; urllib.request.urlopen('http://web:8000/', timeout=10)\""
)
_pull_requests = itertools.count(901)

ExampleDag = Callable[[str, str], Any]
# The DAG objects are shared by the e2e tests, and a run's conf stays in the DAG's params: each
# run here gives ``app`` (empty: the name comes from ``pr``).


def _apps(rack: RackEmulator) -> list[str]:
    return [app["name"] for app in rack.state.app_list()]


def test_the_delete_is_a_teardown_of_the_create() -> None:
    from airflow_compat import DagBag

    bag = DagBag(dag_folder=str(EXAMPLE_DAGS))
    assert bag.import_errors == {}
    dag = bag.dags[REVIEW]
    order = [t.task_id for t in dag.topological_sort()]
    assert order == ["create_app", "set_env", "deploy", "smoke_test", "delete_app"]
    delete = dag.get_task("delete_app")
    assert delete.is_teardown
    assert delete.trigger_rule == "all_done_setup_success"
    assert dag.get_task("create_app").is_setup


@pytest.mark.parametrize("mode", MODES)
def test_a_review_app_is_created_deployed_tested_and_deleted(
    *,
    mode: str,
    rack: RackEmulator,
    example_dag: ExampleDag,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    pr = next(_pull_requests)
    app = f"review-{pr}"
    rack.scripts.on_command(SMOKE_TEST, output="200 OK\n", times=1)

    run = example_dag(REVIEW, mode).test(run_conf={"pr": pr, "app": "", "git_sha": "0a1b2c3"})

    output = capfd.readouterr().out
    assert run.state == "success", exception_lines(output)
    assert set(task_states(run).values()) == {"success"}
    assert app not in _apps(rack)  # deleted, and gone
    # created once: its marker (written right after the create) was written once
    assert rack.requests.count("PUT", f"/apps/{app}/configs/airflow-created-by") == 1
    release_id = xcoms(run)["deploy", "return_value"]
    (checked,) = rack.requests.find("POST", f"/apps/{app}/services/web/processes")
    assert checked.header("Release") == release_id
    assert rack.requests.count("POST", f"/apps/{app}/releases") == 1  # the review settings
    assert rack.requests.count("DELETE", f"/apps/{app}") == 1
    assert "200 OK" in output
    # deferred: the create, the build, the rollout and the delete each wait on the triggerer
    assert deferrals(caplog) == (4 if mode == "deferrable" else 0)


@pytest.mark.parametrize("mode", MODES)
def test_the_app_is_deleted_when_the_deploy_fails(
    *,
    mode: str,
    rack: RackEmulator,
    example_dag: ExampleDag,
    capfd: pytest.CaptureFixture[str],
) -> None:
    pr = next(_pull_requests)
    app = f"review-{pr}"
    rack.scripts.next_build(app=app, fail="step 3/4 : RUN make test: exit status 2")

    run = example_dag(REVIEW, mode).test(run_conf={"pr": pr, "app": ""})

    output = capfd.readouterr().out
    assert run.state == "failed"
    assert task_states(run) == {
        "create_app": "success",
        "set_env": "success",
        "deploy": "failed",
        "smoke_test": "upstream_failed",
        "delete_app": "success",
    }
    assert app not in _apps(rack)  # nothing left behind
    assert rack.requests.count("DELETE", f"/apps/{app}") == 1
    assert any("make test" in line for line in exception_lines(output)), exception_lines(output)
