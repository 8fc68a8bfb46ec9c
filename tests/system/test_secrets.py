"""The env-rotation DAG's secret appears nowhere Airflow shows or writes things.

The value reaches Airflow as the Variable ``payments_credential`` (``AIRFLOW_VAR_*`` in every
process's environment, so no API lists it) and the rack as ``PAYMENTS_CREDENTIAL``. It must
not be in any task log (as served by the API and as written to disk), XCom, rendered field,
API answer about the runs, or the log of any Airflow process.
"""

from __future__ import annotations

import json

from .cluster import Airflow
from .harness import Harness, Run

DAG = "sys_rotation_deferred"


def api_answers(harness: Harness, runs: list[Run]) -> dict[str, str]:
    api, found = harness.api, {}

    def keep(path: str, **params: object) -> None:
        found[path] = json.dumps(api.get(path, **params))

    keep(f"/dags/{DAG}/details")
    keep("/eventLogs", dag_id=DAG, limit=1000)
    keep("/dags/~/dagRuns/~/taskInstances", dag_id_pattern=DAG, limit=200)
    for run in runs:
        keep(run.path)
        keep(f"{run.path}/taskInstances")
        for task_id, ti in harness.task_instances(run).items():
            base = f"{run.path}/taskInstances/{task_id}"
            keep(base)
            keep(f"{base}/tries")
            keep(f"{base}/xcomEntries")
            for key in harness.xcom(run, task_id):
                keep(f"{base}/xcomEntries/{key}", deserialize=True)
                keep(f"{base}/xcomEntries/{key}")
            for attempt in range(1, (ti["try_number"] or 0) + 1):
                found[f"{base}/logs/{attempt}"] = json.dumps(harness.log(run, task_id, attempt))
    return found


def test_rotated_secret_is_never_shown(
    harness: Harness, airflow: Airflow, example_runs: dict[tuple[str, bool], Run]
) -> None:
    runs = [example_runs[DAG, True], example_runs[DAG, False]]
    harness.wait(*runs, timeout=300)
    secret = harness.secret
    dated = runs[0]
    assert dated.state == "success"
    # The value really went through Airflow to the rack...
    releases = harness.rack.releases(dated.app)
    assert any(f"PAYMENTS_CREDENTIAL={secret}" in r["env"].splitlines() for r in releases)
    # ... and the task's Rendered Templates show it masked.
    rendered = harness.task_instances(dated)["rotate"]["rendered_fields"]["set"]
    assert rendered["PAYMENTS_CREDENTIAL"] == "***"

    places = api_answers(harness, runs)
    for path in airflow.process_logs():
        places[str(path)] = path.read_text(errors="replace")
    task_logs = sorted(p for p in (airflow.home / "logs").rglob("*") if p.is_file())
    assert any(f"dag_id={DAG}" in str(p) for p in task_logs)
    for path in task_logs:
        places[str(path)] = path.read_text(errors="replace")
    leaks = [place for place, text in places.items() if secret in text]
    assert leaks == []
    assert len(places) > 20
