"""Deploy, run a smoke test against the new release, and roll back if it fails.

1. ``active_release``: the release the app runs before the deploy, the one to return to.
2. ``deploy``: :class:`~convox_provider.operators.builds.ConvoxDeployOperator` builds
   ``source_dir``, promotes the new release and waits for the rollout (``convox deploy``).
3. ``smoke_test``: :class:`~convox_provider.operators.processes.ConvoxRunProcessOperator` runs
   ``check_command`` in a one-off process of ``service`` on the new release; a non-zero exit
   fails it.
4. ``rollback`` (trigger rule ``one_failed``):
   :class:`~convox_provider.operators.releases.ConvoxRollbackOperator` returns the app to the
   release of step 1 as ``convox releases rollback`` does (a NEW release from its build and
   environment, promoted). It runs when the smoke test failed, and also when the deploy itself
   failed (the smoke test is then ``upstream_failed``): if the rack had already rolled that
   rollout back, this only rolls out the same build and environment again. It never rolls back
   over a newer deploy: when the app meanwhile runs a release newer than the deploy's (someone
   else promoted since), it is skipped (``undoing``).
   When another deploy replaces this one while it rolls out, ``deploy`` is skipped as
   superseded, and so is everything after it: nothing is rolled back.
5. ``report_rollback``: runs only after a rollback and fails, so the DAG run shows that the
   deploy did not stick. When the smoke test passes, steps 4 and 5 are skipped.

Trigger it with a config: ``{"app": "myapp", "source_dir": "/src/myapp", "check_command":
"python -m smoke_test"}``.

Setup: an Airflow connection ``convox_default`` of type ``convox`` (see
``convox_deploy_pipeline``). Environment knobs, read when the DAG file is parsed:
``CONVOX_DEFERRABLE``, ``CONVOX_POLL_INTERVAL`` (default 5), ``CONVOX_SAMPLE_APP_DIR`` (the
default ``source_dir``; without it, ``demo/sample-app`` next to this repository's
``example_dags/``, which a copy of this file in a DAGs folder does not have).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from airflow.sdk import Param, TriggerRule, dag, task

try:
    from airflow.sdk import conf
except ImportError:  # Airflow 3.1: task-sdk 1.1 has no conf of its own
    from airflow.configuration import conf

from convox_provider.operators.builds import ConvoxDeployOperator
from convox_provider.operators.processes import ConvoxRunProcessOperator
from convox_provider.operators.releases import ConvoxRollbackOperator

CONN_ID = "convox_default"
# The sample app next to the repository's example_dags/. Copied into a DAGs folder, this file
# no longer finds it: set CONVOX_SAMPLE_APP_DIR, or give source_dir in the run's config (a
# missing directory fails the build task with "build source '…' does not exist").
SAMPLE_APP_DIR = os.environ.get("CONVOX_SAMPLE_APP_DIR") or str(
    Path(__file__).resolve().parent.parent / "demo" / "sample-app"
)
DEFERRABLE = os.environ.get(
    "CONVOX_DEFERRABLE", str(conf.getboolean("operators", "default_deferrable", fallback=False))
).lower() in {"1", "true", "yes", "on"}
POLL_INTERVAL = float(os.environ.get("CONVOX_POLL_INTERVAL", "5"))
ROLLOUT_TIMEOUT = 35 * 60.0
CHECK_COMMAND = (
    "python -c \"import urllib.request; urllib.request.urlopen('http://web:8000/', timeout=10)\""
)


@dag(
    dag_id="convox_guarded_deploy",
    description="Deploy to Convox, smoke-test the new release, roll back when the test fails",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["convox", "example"],
    params={
        "app": Param("demo", type="string", description="Convox app to deploy"),
        "source_dir": Param(
            SAMPLE_APP_DIR, type="string", description="Directory with the app's source"
        ),
        "service": Param("web", type="string", description="Service the smoke test runs in"),
        "check_command": Param(
            CHECK_COMMAND, type="string", description="Smoke test: exits 0 when the app is fine"
        ),
    },
)
def convox_guarded_deploy() -> None:
    """Deploy -> smoke test -> rollback when it fails (see the module docstring)."""

    @task
    def active_release(app: str) -> str:
        """The release the app runs before the deploy."""
        from convox_provider.hooks.convox import ConvoxHook  # noqa: PLC0415 - keep parsing fast

        with ConvoxHook(CONN_ID) as hook:
            return hook.get_conn().apps.get(app).release

    previous = active_release(app="{{ params.app }}")

    deploy = ConvoxDeployOperator(
        task_id="deploy",
        convox_conn_id=CONN_ID,
        app="{{ params.app }}",
        source_dir="{{ params.source_dir }}",
        description="Airflow {{ dag.dag_id }} {{ run_id }}",
        poll_interval=POLL_INTERVAL,
        promote_timeout=ROLLOUT_TIMEOUT,
        deferrable=DEFERRABLE,
    )

    smoke_test = ConvoxRunProcessOperator(
        task_id="smoke_test",
        convox_conn_id=CONN_ID,
        app="{{ params.app }}",
        service="{{ params.service }}",
        command="{{ params.check_command }}",
        release_id=deploy.output,
        timeout=10 * 60,
    )

    rollback = ConvoxRollbackOperator(
        task_id="rollback",
        convox_conn_id=CONN_ID,
        app="{{ params.app }}",
        release_id=previous,
        undoing="{{ ti.xcom_pull(task_ids='deploy', key='release_id') or '' }}",
        poll_interval=POLL_INTERVAL,
        timeout=ROLLOUT_TIMEOUT,
        deferrable=DEFERRABLE,
        trigger_rule=TriggerRule.ONE_FAILED,
    )

    @task
    def report_rollback(app: str, deployed: str, previous: str, restored: str) -> None:
        """Fail the run: the deploy was rolled back."""
        try:
            from airflow.sdk.exceptions import AirflowFailException  # noqa: PLC0415
        except ImportError:  # Airflow 3.1: the exceptions live in core
            from airflow.exceptions import AirflowFailException  # noqa: PLC0415

        raise AirflowFailException(
            f"The deploy of app {app} (release {deployed or 'none'}) was rolled back: the app "
            f"now runs release {restored}, made from release {previous}"
        )

    previous >> deploy >> smoke_test >> rollback
    rollback >> report_rollback(
        app="{{ params.app }}",
        deployed="{{ ti.xcom_pull(task_ids='deploy', key='release_id') or '' }}",
        previous=previous,
        restored=rollback.output,
    )


guarded_deploy = convox_guarded_deploy()
