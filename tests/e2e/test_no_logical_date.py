"""Every example DAG also works for a run with no logical date.

Airflow 3's REST API and UI may trigger a run with ``logical_date: null``; its templates then
have no ``ts`` or ``ds`` (a DAG using them fails), so each example runs here once that way.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest

from convox_provider.testing import RackEmulator

from .harness import EXAMPLE_DAGS, MANIFEST, SeededApp
from .test_example_dags import exception_lines

ExampleDag = Callable[[str, str], Any]
SMOKE_TEST = (
    "python -c \"import urllib.request; urllib.request.urlopen('http://web:8000/', timeout=10)\""
)
ALL_DAG_IDS = sorted(path.stem for path in EXAMPLE_DAGS.glob("convox_*.py"))
#: The DAGs that need two racks: their own tests run them once with no logical date
#: (test_example_dags_across.py, test_approved_release.py).
ON_TWO_RACKS = ("convox_approved_release", "convox_promote_across_racks")
DAG_IDS = [dag_id for dag_id in ALL_DAG_IDS if dag_id not in ON_TWO_RACKS]


def test_every_example_dag_is_covered() -> None:
    assert len(ALL_DAG_IDS) == 11
    assert set(ON_TWO_RACKS) <= set(ALL_DAG_IDS)


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_a_run_without_a_logical_date_succeeds(
    *,
    dag_id: str,
    app: SeededApp,
    rack: RackEmulator,
    example_dag: ExampleDag,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_PAYMENTS_CREDENTIAL", f"cred-{secrets.token_hex(8)}")
    rack.scripts.on_command(SMOKE_TEST, output="200 OK\n", times=1)
    rack.add_release(app.name, MANIFEST, description="second")  # something to roll back from

    # The DAG objects are shared by the e2e tests: a param another test's run_conf set (the
    # rollback's release_id) is given its default again.
    # The asset DAGs name their app and rack when parsed (assets are declared then): this
    # test is the first to load the deploy ones through ``example_dag``. The release watcher's
    # (convox_on_release) is parsed with its defaults, as test_example_on_release.py expects,
    # and its app is seeded here.
    if dag_id != "convox_on_release":
        monkeypatch.setenv("CONVOX_ASSET_APP", app.name)
        monkeypatch.setenv("CONVOX_ASSET_RACK", f"{rack.host}:{rack.port}")
    dag = example_dag(dag_id, "sync")
    parsed = {task.app for task in dag.tasks if "{{" not in str(getattr(task, "app", "{{"))}
    for missing in sorted(parsed - {a["name"] for a in rack.state.app_list()}):
        rack.create_app(missing)
        rack.add_release(missing, MANIFEST, description="first")
    conf: dict[str, Any] = {"app": app.name}
    if dag_id == "convox_scheduled_rollback":
        conf["release_id"] = None
    run = dag.test(logical_date=None, run_conf=conf)

    output = capfd.readouterr().out
    assert run.logical_date is None
    assert run.state == "success", exception_lines(output)
