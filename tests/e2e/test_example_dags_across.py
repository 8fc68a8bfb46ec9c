"""The build-once-deploy-many example DAG under ``dag.test()``, against two emulated racks.

The session's rack (``rack``) is staging; this module starts a second one, production, and
points ``convox_staging`` and ``convox_production`` at them. Each run is checked by the states
and XComs Airflow recorded and by both racks' state: one build on staging (nothing promoted
there), one imported build and its release active on production, nothing else.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from convox_provider.testing import RackEmulator
from convox_provider.testing.airflow import connection_uri

from .harness import MODES, TIMING
from .test_example_dags import deferrals, exception_lines, task_states, xcoms
from .test_example_dags_part2 import tries

ACROSS = "convox_promote_across_racks"
TASKS = ["build", "smoke_test", "copy_to_production", "promote"]
SMOKE_TEST = (
    "python -c \"import urllib.request; urllib.request.urlopen('http://web:8000/', timeout=10)\""
)

ExampleDag = Callable[[str, str], Any]
_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def production() -> Iterator[RackEmulator]:
    """The production rack: a second emulator, for this module."""
    with RackEmulator(password=secrets.token_hex(16), timing=TIMING) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _connections(
    rack: RackEmulator, production: RackEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CONVOX_STAGING", connection_uri(rack))
    monkeypatch.setenv("AIRFLOW_CONN_CONVOX_PRODUCTION", connection_uri(production))
    monkeypatch.setenv("CONVOX_RETRY_DELAY", "0")


@pytest.fixture
def apps(rack: RackEmulator, production: RackEmulator) -> tuple[str, str]:
    """A new app name, on staging (running the sample app) and on production (no release)."""
    name = f"across-{next(_numbers)}"
    rack.create_app(name)
    production.create_app(name)
    return name, rack.app(name)["release"]


def test_the_dag_file_chains_the_four_tasks() -> None:
    from airflow_compat import DagBag

    from .harness import EXAMPLE_DAGS

    bag = DagBag(dag_folder=str(EXAMPLE_DAGS / f"{ACROSS}.py"))
    assert bag.import_errors == {}
    dag = bag.dags[ACROSS]
    assert [t.task_id for t in dag.topological_sort()] == TASKS
    connections = {t.task_id: getattr(t, "convox_conn_id", None) for t in dag.tasks}
    assert connections["build"] == connections["smoke_test"] == "convox_staging"
    assert connections["promote"] == "convox_production"
    copy = dag.get_task("copy_to_production")
    assert (copy.source_conn_id, copy.target_conn_id) == ("convox_staging", "convox_production")


@pytest.mark.parametrize("mode", MODES)
def test_the_tested_build_is_copied_and_promoted_on_production(
    *,
    mode: str,
    apps: tuple[str, str],
    rack: RackEmulator,
    production: RackEmulator,
    example_dag: ExampleDag,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, staging_release = apps

    # The sync run has no logical date, as a run triggered through the REST API or the UI may
    # (test_no_logical_date.py runs the one-rack DAGs that way).
    undated: dict[str, Any] = {"logical_date": None} if mode == "sync" else {}
    run = example_dag(ACROSS, mode).test(run_conf={"app": app}, **undated)

    output = capfd.readouterr().out
    assert run.state == "success", exception_lines(output)
    assert (run.logical_date is None) == (mode == "sync")
    assert task_states(run) == dict.fromkeys(TASKS, "success")
    pushed = xcoms(run)
    # staging: one build, its release tested, nothing promoted
    (built,) = rack.builds(app)
    assert (pushed["build", "build_id"], pushed["build", "release_id"]) == (
        built["id"],
        built["release"],
    )
    assert rack.app(app)["release"] == staging_release
    (smoke,) = [e for e in rack.execs if e.app == app]
    assert (smoke.command, smoke.exit_code) == (SMOKE_TEST, 0)
    assert pushed["smoke_test", "exit_code"] == 0
    # production: exactly one imported build, its release active, nothing else
    (imported,) = production.builds(app)
    (release,) = production.releases(app)
    assert imported["manifest"] == built["manifest"]
    assert "[convox-copy:" in imported["description"]
    assert release["id"] == imported["release"]
    copied = (pushed["copy_to_production", "build_id"], pushed["copy_to_production", "release_id"])
    assert copied == (imported["id"], release["id"])
    assert pushed["promote", "return_value"] == release["id"]
    state = production.app(app)
    assert (state["release"], state["status"]) == (release["id"], "running")
    assert production.requests.count("POST", f"/apps/{app}/builds/import") == 1
    assert production.requests.count("POST", f"/apps/{app}/builds") == 0
    assert production.requests.count("POST", f"/apps/{app}/releases/*/promote") == 1
    assert rack.requests.count("POST", f"/apps/{app}/releases/*/promote") == 0
    assert "Not verified: that the images were pushed" in output
    assert deferrals(caplog) == (2 if mode == "deferrable" else 0)


@pytest.mark.parametrize("mode", MODES)
def test_a_failed_smoke_test_keeps_the_build_off_production(
    *,
    mode: str,
    apps: tuple[str, str],
    rack: RackEmulator,
    production: RackEmulator,
    example_dag: ExampleDag,
    capfd: pytest.CaptureFixture[str],
) -> None:
    app, _ = apps
    rack.scripts.on_command(SMOKE_TEST, output="connection refused\n", exit_code=1, times=1)

    run = example_dag(ACROSS, mode).test(run_conf={"app": app})

    output = capfd.readouterr().out
    assert run.state == "failed"
    assert task_states(run) == {
        "build": "success",
        "smoke_test": "failed",
        "copy_to_production": "upstream_failed",
        "promote": "upstream_failed",
    }
    assert "connection refused" in output
    assert production.builds(app) == []
    assert production.releases(app) == []
    assert production.requests.count("POST", f"/apps/{app}/builds/import") == 0


@pytest.mark.parametrize("mode", MODES)
def test_a_copy_retried_after_a_lost_answer_imports_once(
    *,
    mode: str,
    apps: tuple[str, str],
    production: RackEmulator,
    example_dag: ExampleDag,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The import happens but its answer is lost: the retry finds the marked build."""
    app, _ = apps
    production.faults.respond(
        "POST", f"/apps/{app}/builds/import", 502, after_handler=True, times=1
    )

    run = example_dag(ACROSS, mode).test(run_conf={"app": app})

    output = capfd.readouterr().out
    assert run.state == "success", exception_lines(output)
    assert tries(run)["copy_to_production"] == 2
    (imported,) = production.builds(app)
    assert production.app(app)["release"] == imported["release"]
    assert xcoms(run)["copy_to_production", "build_id"] == imported["id"]
