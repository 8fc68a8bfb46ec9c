"""Rotate a secret in a Convox app's environment and roll it out.

For credentials that change on a schedule (an API token rotated by a secrets manager, a
database password): the new value lives in Airflow (a Variable, or a connection's password or
extra), and this DAG writes it into the app's environment and promotes the change.

1. ``rotate``: :class:`~convox_provider.operators.environment.ConvoxEnvSetOperator` sets
   ``PAYMENTS_CREDENTIAL`` from the Airflow Variable ``payments_credential`` (and
   ``PAYMENTS_CREDENTIAL_ROTATED_AT`` to the run's timestamp) in one new release, as
   ``convox env set`` does: starting from the newest release, merging a concurrent writer's
   change instead of overwriting it; then it promotes the release and waits for the rollout
   (``promote=True``). A retried task whose change is already in place creates and promotes
   nothing.
2. ``verify``: reads the active release back and checks that it carries the value, returning
   only the environment's keys.

The value is masked wherever Airflow shows it: never logged, never pushed to XCom, ``***`` in
the task's Rendered Templates. To take it from a connection instead, use
``"{{ conn.payments_api.password }}"`` or ``"{{ conn.payments_api.extra_dejson.token }}"``.

Setup: an Airflow connection ``convox_default`` of type ``convox`` (see
``convox_deploy_pipeline``) and a Variable ``payments_credential`` (for example
``AIRFLOW_VAR_PAYMENTS_CREDENTIAL``). Environment knobs, read when the DAG file is parsed:

* ``CONVOX_ROTATION_SCHEDULE``: a cron expression (default ``0 3 * * 1``, Mondays 03:00 UTC);
* ``CONVOX_DEFERRABLE``: ``true`` waits for the rollout in the triggerer;
* ``CONVOX_POLL_INTERVAL``: seconds between status checks (default 5).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

from airflow.sdk import Param, dag, task

try:
    from airflow.sdk import conf
except ImportError:  # Airflow 3.1: task-sdk 1.1 has no conf of its own
    from airflow.configuration import conf

from convox_provider.operators.environment import ConvoxEnvSetOperator

CONN_ID = "convox_default"
SCHEDULE = os.environ.get("CONVOX_ROTATION_SCHEDULE", "0 3 * * 1")
DEFERRABLE = os.environ.get(
    "CONVOX_DEFERRABLE", str(conf.getboolean("operators", "default_deferrable", fallback=False))
).lower() in {"1", "true", "yes", "on"}
POLL_INTERVAL = float(os.environ.get("CONVOX_POLL_INTERVAL", "5"))
ROLLOUT_TIMEOUT = 35 * 60.0


#: When the run happened: its logical date, or, for a run without one, when it was due to run.
ROTATED_AT = "{{ (dag_run.logical_date or dag_run.run_after).isoformat() }}"


@dag(
    dag_id="convox_env_rotation",
    description="Write a rotated secret into a Convox app's environment and promote it",
    schedule=SCHEDULE,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=True,
    doc_md=__doc__,
    tags=["convox", "example"],
    params={"app": Param("demo", type="string", description="Convox app whose secret rotates")},
)
def convox_env_rotation() -> None:
    """Rotate -> verify (see the module docstring)."""
    rotate = ConvoxEnvSetOperator(
        task_id="rotate",
        convox_conn_id=CONN_ID,
        app="{{ params.app }}",
        set={
            "PAYMENTS_CREDENTIAL": "{{ var.value.payments_credential }}",
            # Not {{ ts }}: a run triggered with no logical date (REST API, UI) has none.
            "PAYMENTS_CREDENTIAL_ROTATED_AT": ROTATED_AT,
        },
        promote=True,
        poll_interval=POLL_INTERVAL,
        timeout=ROLLOUT_TIMEOUT,
        deferrable=DEFERRABLE,
    )

    @task
    def verify(app: str, release_id: str) -> dict[str, Any]:
        """Check that the app runs the release and that it carries the value (keys only out)."""
        from convox_provider.hooks.convox import ConvoxHook  # noqa: PLC0415 - keep parsing fast

        with ConvoxHook(CONN_ID) as hook:
            client = hook.get_conn()
            state = client.apps.get(app)
            environment = client.releases.get(app, release_id).environment
        if state.release != release_id or not environment.get("PAYMENTS_CREDENTIAL"):
            raise ValueError(f"app {app} does not run release {release_id} with the credential")
        return {"app": app, "release_id": release_id, "keys": sorted(environment)}

    verify(app="{{ params.app }}", release_id=rotate.output)


env_rotation = convox_env_rotation()
