"""The DAGs the system tests trigger: the example DAGs themselves, loaded under new ids.

Each example file reads ``CONVOX_DEFERRABLE`` when it is parsed, so one Airflow serves both
modes by loading the same file twice under two ids. Only what the scenarios need is changed:
the id, ``max_active_runs`` (each run deploys its own app, so runs of one DAG may overlap), the
executor (the Celery scenario) and the build's retries (the kill scenarios). The dag-processor
and every task runner parse this file the same way, so the ids and settings always agree.
"""

from __future__ import annotations

import importlib.util
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

from airflow.sdk import DAG

from convox_provider.operators.builds import ConvoxDeployOperator

EXAMPLES = Path(__file__).resolve().parents[3] / "example_dags"
POLL_INTERVAL = float(os.environ.get("CONVOX_POLL_INTERVAL", "5"))


def example(
    name: str,
    dag_id: str,
    *,
    deferrable: bool,
    executor: str | None = None,
    build_retries: int | None = None,
) -> DAG:
    """``example_dags/<name>.py`` parsed with ``CONVOX_DEFERRABLE=<deferrable>``, as ``dag_id``."""
    saved = os.environ.get("CONVOX_DEFERRABLE")
    os.environ["CONVOX_DEFERRABLE"] = str(deferrable).lower()
    try:
        spec = importlib.util.spec_from_file_location(f"convox_system_{dag_id}", EXAMPLES / name)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            del os.environ["CONVOX_DEFERRABLE"]
        else:
            os.environ["CONVOX_DEFERRABLE"] = saved
    (dag,) = [value for value in vars(module).values() if isinstance(value, DAG)]
    dag.dag_id = dag_id
    dag.fileloc = __file__
    dag.max_active_runs = 25
    dag.tags = [*dag.tags, "system-test"]
    for task in dag.tasks:
        if executor is not None:
            task.executor = executor
        if build_retries is not None and task.task_id == "build":
            task.retries = build_retries
            task.retry_delay = timedelta(seconds=1)
    return dag


deploy_sync = example("convox_deploy_pipeline.py", "sys_deploy_sync", deferrable=False)
deploy_deferred = example("convox_deploy_pipeline.py", "sys_deploy_deferred", deferrable=True)
guarded_deferred = example("convox_guarded_deploy.py", "sys_guarded_deferred", deferrable=True)
migrate_deferred = example(
    "convox_migrate_then_promote.py", "sys_migrate_deferred", deferrable=True
)
rollback_deferred = example(
    "convox_scheduled_rollback.py", "sys_rollback_deferred", deferrable=True
)
rotation_deferred = example("convox_env_rotation.py", "sys_rotation_deferred", deferrable=True)
review_deferred = example("convox_review_app.py", "sys_review_deferred", deferrable=True)
# Two racks (connections convox_staging and convox_production, two emulators).
across_deferred = example("convox_promote_across_racks.py", "sys_across_deferred", deferrable=True)

# A task runner killed mid-build: the build waits on the worker and is retried once.
migrate_retried = example(
    "convox_migrate_then_promote.py", "sys_migrate_retried", deferrable=False, build_retries=1
)

# Airflow's distributed executor: the same pipelines, every task on a Celery worker.
celery_deploy_deferred = example(
    "convox_deploy_pipeline.py",
    "sys_celery_deploy_deferred",
    deferrable=True,
    executor="CeleryExecutor",
)
celery_migrate_retried = example(
    "convox_migrate_then_promote.py",
    "sys_celery_migrate_retried",
    deferrable=False,
    executor="CeleryExecutor",
    build_retries=1,
)

# Started by the release watcher of app ``sys-watch`` (test_release_watcher.py): the example
# parsed for that app, looking at it every second.
_WATCHED = {"CONVOX_ASSET_APP": "sys-watch", "CONVOX_WATCH_INTERVAL": "1"}
_saved = {name: os.environ.get(name) for name in _WATCHED}
os.environ.update(_WATCHED)
try:
    on_release_deferred = example(
        "convox_on_release.py", "sys_on_release_deferred", deferrable=True
    )
finally:
    for _name, _value in _saved.items():
        if _value is None:
            os.environ.pop(_name, None)
        else:
            os.environ[_name] = _value

# Many deploys deferred at once (two triggerers): one task each, ``convox deploy``.
with DAG(
    dag_id="sys_deploy_many",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=40,
    tags=["convox", "system-test"],
    params={"app": "demo"},
) as deploy_many:
    ConvoxDeployOperator(
        task_id="deploy",
        app="{{ params.app }}",
        source_dir=str(Path(__file__).resolve().parents[3] / "demo" / "sample-app"),
        description="Airflow {{ run_id }}",
        poll_interval=POLL_INTERVAL,
        deferrable=True,
    )
