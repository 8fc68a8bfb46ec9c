"""Roll a Convox app back to its previous release on a schedule (or on demand).

For environments that must return to a known release regularly: a preview or demo app reset
every night, or a time-boxed release (a campaign, a feature flag day) undone when its window
closes. Trigger it by hand with a config for an on-demand rollback after a bad deploy.

1. ``rollback``: :class:`~convox_provider.operators.releases.ConvoxRollbackOperator` does what
   ``convox releases rollback`` does: it creates a NEW release from the old release's build and
   environment and promotes it (the rack refuses to promote an older release directly), then
   waits for the rollout. XCom: ``release_id`` (the new release, also the return value) and
   ``rolled_back_to`` (the old release whose build and environment it copied).
2. ``report``: reads the app back through :class:`~convox_provider.hooks.convox.ConvoxHook` and
   returns a summary.

0. ``on_time``: a scheduled run that starts more than ``CONVOX_ROLLBACK_LATE_MINUTES`` (default
   60) after its slot is skipped. Unpausing a DAG makes Airflow run its most recent past slot at
   once (``catchup=False`` only drops the older ones), so without this, unpausing the DAG at
   noon would roll back at noon for the 02:00 slot. Runs triggered by hand always go ahead.

Params: ``app`` (default ``demo``) and ``release_id``, the release to return to; left empty it
is the release before the active one. The DAG is created paused, so deploying the file never
rolls anything back by surprise; unpause it once ``app`` and the schedule are what you want:
nothing is rolled back until the next slot (or a slot that passed less than the limit ago).

Setup: an Airflow connection ``convox_default`` of type ``convox`` (see
``convox_deploy_pipeline``). Environment knobs, read when the DAG file is parsed:

* ``CONVOX_ROLLBACK_SCHEDULE``: a cron expression (default ``0 2 * * *``, 02:00 UTC daily);
* ``CONVOX_DEFERRABLE``: ``true`` waits for the rollout in the triggerer (default: Airflow's
  ``[operators] default_deferrable``);
* ``CONVOX_POLL_INTERVAL``: seconds between status checks (default 5);
* ``CONVOX_ROLLBACK_LATE_MINUTES``: how late a scheduled run may start and still roll back
  (default 60).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import Param, dag, task

try:
    from airflow.sdk import conf
except ImportError:  # Airflow 3.1: task-sdk 1.1 has no conf of its own
    from airflow.configuration import conf

from convox_provider.operators.releases import ConvoxRollbackOperator

CONN_ID = "convox_default"
SCHEDULE = os.environ.get("CONVOX_ROLLBACK_SCHEDULE", "0 2 * * *")
DEFERRABLE = os.environ.get(
    "CONVOX_DEFERRABLE", str(conf.getboolean("operators", "default_deferrable", fallback=False))
).lower() in {"1", "true", "yes", "on"}
POLL_INTERVAL = float(os.environ.get("CONVOX_POLL_INTERVAL", "5"))
ROLLOUT_TIMEOUT = 35 * 60.0  # what `convox releases rollback` allows a rollout
LATE_LIMIT = timedelta(minutes=float(os.environ.get("CONVOX_ROLLBACK_LATE_MINUTES", "60")))


@dag(
    dag_id="convox_scheduled_rollback",
    description="Roll a Convox app back to its previous release",
    schedule=SCHEDULE,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=True,
    # ``{{ params.release_id }}`` must render as None (not "None") when the param is empty.
    render_template_as_native_obj=True,
    doc_md=__doc__,
    tags=["convox", "example"],
    params={
        "app": Param("demo", type="string", description="Convox app to roll back"),
        "release_id": Param(
            None,
            type=["null", "string"],
            description="Release to return to; empty: the one before the active release",
        ),
    },
)
def convox_scheduled_rollback() -> None:
    """On time? -> rollback -> report (see the module docstring)."""

    @task.short_circuit
    def on_time(**context: Any) -> bool:
        """False (skip the rollback) for a scheduled run long after its slot: the slot Airflow
        runs at once when the DAG is unpaused."""
        run = context["dag_run"]
        if run.run_type != "scheduled":
            return True
        slot = run.logical_date or run.run_after
        late = datetime.now(timezone.utc) - slot
        if late > LATE_LIMIT:
            print(
                f"The {slot.isoformat()} slot started {late} late (limit {LATE_LIMIT}), most"
                " likely because the DAG was just unpaused: not rolling back now"
            )
            return False
        return True

    rollback = ConvoxRollbackOperator(
        task_id="rollback",
        convox_conn_id=CONN_ID,
        app="{{ params.app }}",
        release_id="{{ params.release_id }}",
        poll_interval=POLL_INTERVAL,
        timeout=ROLLOUT_TIMEOUT,
        deferrable=DEFERRABLE,
    )

    @task
    def report(app: str, release_id: str, rolled_back_to: str) -> dict[str, Any]:
        """Read the app back from the rack and summarise the rollback."""
        from convox_provider.hooks.convox import ConvoxHook  # noqa: PLC0415 - keep parsing fast

        with ConvoxHook(CONN_ID) as hook:
            client = hook.get_conn()
            state = client.apps.get(app)
            build = client.releases.get(app, release_id).build
        print(
            f"Rolled {app} back to {rolled_back_to}: new release {release_id} (build {build});"
            f" app is {state.status} on {state.release}"
        )
        return {
            "app": app,
            "release_id": release_id,
            "rolled_back_to": rolled_back_to,
            "build_id": build,
            "active_release": state.release,
            "status": state.status,
        }

    summary = report(
        app="{{ params.app }}",
        release_id="{{ ti.xcom_pull(task_ids='rollback', key='release_id') }}",
        rolled_back_to="{{ ti.xcom_pull(task_ids='rollback', key='rolled_back_to') }}",
    )
    on_time() >> rollback >> summary


scheduled_rollback = convox_scheduled_rollback()
