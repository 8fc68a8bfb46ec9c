"""The example DAGs of one-off runs, environment changes and guarded deploys, under ``dag.test()``.

Same harness as ``test_example_dags``: a migrated metadata DB, one emulated rack, each DAG file
loaded once per mode. Each run is checked by the states and XComs Airflow recorded and by the
rack's own state. The secret of the environment rotation is looked for in everything the run
produced: ``dag.test()`` prints task logs unmasked (airflow-probe-notes.md), so the console
output shows exactly what the operators logged.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from convox_provider.testing import RackEmulator

from .harness import EXAMPLE_DAGS, MODES, SeededApp
from .test_example_dags import deferrals, exception_lines, find, task_states, xcoms

MIGRATE = "convox_migrate_then_promote"
ROTATION = "convox_env_rotation"
GUARDED = "convox_guarded_deploy"
MIGRATION = "python manage.py migrate"
SMOKE_TEST = (
    "python -c \"import urllib.request; urllib.request.urlopen('http://web:8000/', timeout=10)\""
)

ExampleDag = Callable[[str, str], Any]


@pytest.fixture(scope="module", autouse=True)
def _retry_at_once() -> Iterator[None]:
    """A failed build task is retried without the DAG's 60 s delay (set before DAGs load)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONVOX_RETRY_DELAY", "0")
        yield


def rendered_fields(dag_run: Any) -> dict[str, Any]:
    """Every task's Rendered Templates as stored in the metadata DB: ``{task_id: fields}``."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(RenderedTaskInstanceFields).filter_by(
            dag_id=dag_run.dag_id, run_id=dag_run.run_id
        )
        return {row.task_id: row.rendered_fields for row in rows}


def raw_xcoms(dag_run: Any) -> list[str]:
    """The run's XCom values as stored in the metadata DB, serialized."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id)
        return [json.dumps(row.value, default=str) for row in rows]


def tries(dag_run: Any) -> dict[str, int]:
    """``{task_id: try_number}`` of the run."""
    from airflow.utils.session import create_session

    with create_session() as session:
        return {ti.task_id: ti.try_number for ti in dag_run.get_task_instances(session=session)}


def one_offs(rack: RackEmulator, app: str) -> list[dict[str, Any]]:
    return [p for p in rack.processes(app) if p["command"].startswith("sleep ")]


def env_of(rack: RackEmulator, app: str, release_id: str) -> dict[str, str]:
    text = find(rack.releases(app), release_id)["env"]
    return dict(line.split("=", 1) for line in text.splitlines())


# --- the DAG files --------------------------------------------------------------------------------


def test_the_dag_files_import_cleanly() -> None:
    from airflow_compat import DagBag

    bag = DagBag(dag_folder=str(EXAMPLE_DAGS))

    assert bag.import_errors == {}
    order = {
        dag_id: [t.task_id for t in bag.dags[dag_id].topological_sort()]
        for dag_id in (MIGRATE, ROTATION, GUARDED)
    }
    assert order[MIGRATE] == ["build", "migrate", "promote"]
    assert order[ROTATION] == ["rotate", "verify"]
    assert order[GUARDED] == [
        "active_release",
        "deploy",
        "smoke_test",
        "rollback",
        "report_rollback",
    ]
    assert bag.dags[GUARDED].get_task("rollback").trigger_rule == "one_failed"
    assert bag.dags[ROTATION].is_paused_upon_creation is True


# --- build, migrate, promote ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_migrations_run_on_the_new_release_before_it_is_promoted(
    *,
    mode: str,
    app: SeededApp,
    rack: RackEmulator,
    example_dag: ExampleDag,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    active_during_migration: list[str] = []

    def migrate(invocation: Any) -> Any:
        from convox_provider.testing import CommandResult

        active_during_migration.append(rack.app(app.name)["release"])
        return CommandResult(output=b"Applying orders.0001_initial... OK\n")

    rack.scripts.on_command(MIGRATION, migrate, times=1)

    run = example_dag(MIGRATE, mode).test(run_conf={"app": app.name})

    output = capfd.readouterr().out
    assert run.state == "success", exception_lines(output)
    assert task_states(run) == dict.fromkeys(["build", "migrate", "promote"], "success")
    pushed = xcoms(run)
    release_id = pushed["build", "release_id"]
    assert pushed["migrate", "return_value"] == 0
    assert pushed["migrate", "exit_code"] == 0
    assert pushed["promote", "return_value"] == release_id
    # The migration ran on the new release while the old one was still active.
    (created,) = rack.requests.find("POST", f"/apps/{app.name}/services/web/processes")
    assert created.header("Release") == release_id
    assert active_during_migration == [app.release]
    assert "Applying orders.0001_initial... OK" in output  # streamed into the task log
    assert one_offs(rack, app.name) == []  # the one-off pod is gone
    state = rack.app(app.name)
    assert (state["release"], state["status"]) == (release_id, "running")
    assert deferrals(caplog) == (2 if mode == "deferrable" else 0)


@pytest.mark.parametrize("mode", MODES)
def test_a_failed_migration_stops_the_release_from_being_promoted(
    *,
    mode: str,
    app: SeededApp,
    rack: RackEmulator,
    example_dag: ExampleDag,
    capfd: pytest.CaptureFixture[str],
) -> None:
    rack.scripts.on_command(
        MIGRATION, output="django.db.utils.OperationalError\n", exit_code=3, times=1
    )

    run = example_dag(MIGRATE, mode).test(run_conf={"app": app.name})

    output = capfd.readouterr().out
    assert run.state == "failed"
    assert task_states(run) == {
        "build": "success",
        "migrate": "failed",
        "promote": "upstream_failed",
    }
    assert tries(run)["migrate"] == 1  # a migration is not retried blindly
    assert xcoms(run)["migrate", "exit_code"] == 3
    assert any("exited with code 3" in line for line in exception_lines(output))
    assert "django.db.utils.OperationalError" in output
    assert one_offs(rack, app.name) == []
    assert rack.app(app.name)["release"] == app.release  # nothing was promoted


@pytest.mark.parametrize("mode", MODES)
def test_a_retried_build_task_reattaches_to_its_build(
    *,
    mode: str,
    app: SeededApp,
    rack: RackEmulator,
    example_dag: ExampleDag,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The first try of ``build`` dies after creating the build (its first status check is
    refused); Airflow retries it, and the retry finds the build in the task state store."""
    rack.faults.respond("GET", f"/apps/{app.name}/builds/*", 403, message="forbidden", times=1)

    run = example_dag(MIGRATE, mode).test(run_conf={"app": app.name})

    output = capfd.readouterr().out
    assert run.state == "success", exception_lines(output)
    assert tries(run)["build"] == 2
    assert rack.requests.count("POST", f"/apps/{app.name}/builds") == 1
    build_id = xcoms(run)["build", "build_id"]
    reattached = (
        rf"Build {build_id} of app {app.name} from a previous try \((\w+)\): ([\w :-]+?) +\["
    )
    found = re.search(reattached, output)
    assert found is not None, output
    assert found.groups() in {("running", "re-attaching"), ("complete", "complete: using it")}
    assert find(rack.builds(app.name), build_id)["status"] == "complete"
    assert rack.app(app.name)["release"] == xcoms(run)["build", "release_id"]


# --- environment rotation ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_env_rotation_rolls_out_the_secret_and_shows_it_nowhere(
    *,
    mode: str,
    app: SeededApp,
    rack: RackEmulator,
    example_dag: ExampleDag,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.sdk._shared.secrets_masker import redact

    secret = f"cred-{secrets.token_hex(12)}"
    monkeypatch.setenv("AIRFLOW_VAR_PAYMENTS_CREDENTIAL", secret)
    rack.set_env(app.name, {"GREETING": "hello"})

    run = example_dag(ROTATION, mode).test(run_conf={"app": app.name})

    output = capfd.readouterr()
    assert run.state == "success", exception_lines(output.out)
    assert task_states(run) == {"rotate": "success", "verify": "success"}
    pushed = xcoms(run)
    release_id = pushed["rotate", "release_id"]
    assert pushed["rotate", "return_value"] == release_id
    assert pushed["verify", "return_value"] == {
        "app": app.name,
        "release_id": release_id,
        "keys": ["GREETING", "PAYMENTS_CREDENTIAL", "PAYMENTS_CREDENTIAL_ROTATED_AT"],
    }
    # The rack has the value, in the release the app now runs.
    assert env_of(rack, app.name, release_id)["PAYMENTS_CREDENTIAL"] == secret
    state = rack.app(app.name)
    assert (state["release"], state["status"]) == (release_id, "running")
    assert deferrals(caplog) == (1 if mode == "deferrable" else 0)
    # ... and nothing Airflow recorded or printed does.
    assert secret not in output.out
    assert secret not in output.err
    assert secret not in caplog.text
    assert secret not in repr(pushed)
    assert not [value for value in raw_xcoms(run) if secret in value]
    fields = rendered_fields(run)
    assert fields["rotate"]["set"] == {
        "PAYMENTS_CREDENTIAL": "***",
        "PAYMENTS_CREDENTIAL_ROTATED_AT": "***",
    }
    assert secret not in json.dumps(fields, default=str)
    # The value was registered with the task's secrets masker (what redacts real task logs).
    assert redact(f"credential={secret}") == "credential=***"


# --- guarded deploy ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_guarded_deploy_keeps_a_release_that_passes_its_smoke_test(
    *,
    mode: str,
    app: SeededApp,
    rack: RackEmulator,
    example_dag: ExampleDag,
    capfd: pytest.CaptureFixture[str],
) -> None:
    rack.scripts.on_command(SMOKE_TEST, output="200 OK\n", times=1)

    run = example_dag(GUARDED, mode).test(run_conf={"app": app.name})

    output = capfd.readouterr().out
    assert run.state == "success", exception_lines(output)
    assert task_states(run) == {
        "active_release": "success",
        "deploy": "success",
        "smoke_test": "success",
        "rollback": "skipped",
        "report_rollback": "skipped",
    }
    release_id = xcoms(run)["deploy", "return_value"]
    (checked,) = rack.requests.find("POST", f"/apps/{app.name}/services/web/processes")
    assert checked.header("Release") == release_id
    assert rack.app(app.name)["release"] == release_id
    assert "200 OK" in output


@pytest.mark.parametrize("mode", MODES)
def test_guarded_deploy_rolls_back_when_the_smoke_test_fails(
    *,
    mode: str,
    app: SeededApp,
    rack: RackEmulator,
    example_dag: ExampleDag,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    rack.scripts.on_command(SMOKE_TEST, output="HTTP Error 500\n", exit_code=1, times=1)

    run = example_dag(GUARDED, mode).test(run_conf={"app": app.name})

    output = capfd.readouterr().out
    assert run.state == "failed"
    assert task_states(run) == {
        "active_release": "success",
        "deploy": "success",
        "smoke_test": "failed",
        "rollback": "success",
        "report_rollback": "failed",
    }
    pushed = xcoms(run)
    deployed = pushed["deploy", "return_value"]
    restored = pushed["rollback", "return_value"]
    assert pushed["active_release", "return_value"] == app.release
    assert pushed["rollback", "rolled_back_to"] == app.release
    assert restored not in (app.release, deployed)
    # The app runs a new release with the build it had before the deploy.
    assert find(rack.releases(app.name), restored)["build"] == app.build
    state = rack.app(app.name)
    assert (state["release"], state["status"]) == (restored, "running")
    failures = exception_lines(output)
    assert any("exited with code 1" in line for line in failures), failures
    assert any(f"now runs release {restored}" in line for line in failures), failures
    assert deferrals(caplog) == (3 if mode == "deferrable" else 0)


def test_guarded_deploy_returns_to_the_release_before_a_failed_rollout(
    app: SeededApp, rack: RackEmulator, example_dag: ExampleDag
) -> None:
    """The rack rolls the deploy's rollout back: the smoke test never runs and the rollback
    rolls out the release from before the deploy again."""
    rack.scripts.fail_next_promote(app.name)

    run = example_dag(GUARDED, "sync").test(run_conf={"app": app.name})

    assert run.state == "failed"
    states = task_states(run)
    assert (states["deploy"], states["smoke_test"]) == ("failed", "upstream_failed")
    assert (states["rollback"], states["report_rollback"]) == ("success", "failed")
    restored = xcoms(run)["rollback", "return_value"]
    assert find(rack.releases(app.name), restored)["build"] == app.build
    assert rack.app(app.name)["release"] == restored
    assert rack.requests.count("POST", f"/apps/{app.name}/services/web/processes") == 0
