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
DAG_IDS = sorted(path.stem for path in EXAMPLE_DAGS.glob("convox_*.py"))


def test_every_example_dag_is_covered() -> None:
    assert len(DAG_IDS) == 11


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
    # test is the first to load them through ``example_dag``.
    monkeypatch.setenv("CONVOX_ASSET_APP", app.name)
    monkeypatch.setenv("CONVOX_ASSET_RACK", f"{rack.host}:{rack.port}")
    conf: dict[str, Any] = {"app": app.name}
    if dag_id == "convox_scheduled_rollback":
        conf["release_id"] = None
    run = example_dag(dag_id, "sync").test(logical_date=None, run_conf=conf)

    output = capfd.readouterr().out
    assert run.logical_date is None
    assert run.state == "success", exception_lines(output)
