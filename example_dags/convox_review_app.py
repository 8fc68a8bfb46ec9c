"""A review app per pull request: create it, configure it, deploy, smoke-test, delete it.

1. ``create_app``: :class:`~convox_provider.operators.apps.ConvoxCreateAppOperator` creates
   app ``review-<pr>`` (or the run's ``app``) and waits until it runs (``convox apps
   create``). An app left over from an earlier run of the same pull request is used as it is
   (``exists_ok``); a retry never creates it twice.
2. ``set_env``: :class:`~convox_provider.operators.environment.ConvoxEnvSetOperator` writes the
   review settings into a release (not promoted: there is nothing to run yet). The deploy's
   build release inherits it.
3. ``deploy``: :class:`~convox_provider.operators.builds.ConvoxDeployOperator` builds the pull
   request's checkout and promotes it (``convox deploy``).
4. ``smoke_test``: :class:`~convox_provider.operators.processes.ConvoxRunProcessOperator` runs
   ``check_command`` in a one-off process of ``service`` on the new release.
5. ``delete_app``: :class:`~convox_provider.operators.apps.ConvoxDeleteAppOperator` deletes the
   app and waits until it is gone, as a **teardown** of ``create_app``: it runs whatever
   happened in between (a failed build, deploy or smoke test), so no review app is left behind;
   the run still fails when a step failed. ``missing_ok``: an app already gone is fine.

Trigger it once per pull request with a config: ``{"pr": 123, "source_dir": "/checkouts/123",
"git_sha": "0a1b2c3"}``.

Setup: an Airflow connection ``convox_default`` of type ``convox`` (see
``convox_deploy_pipeline``). Environment knobs, read when the DAG file is parsed:
``CONVOX_DEFERRABLE``, ``CONVOX_POLL_INTERVAL`` (default 5), ``CONVOX_SAMPLE_APP_DIR`` (the
default ``source_dir``; without it, ``demo/sample-app`` next to this repository's
``example_dags/``).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from airflow.sdk import Param, dag

try:
    from airflow.sdk import conf
except ImportError:  # Airflow 3.1: task-sdk 1.1 has no conf of its own
    from airflow.configuration import conf

from convox_provider.operators.apps import ConvoxCreateAppOperator, ConvoxDeleteAppOperator
from convox_provider.operators.builds import ConvoxDeployOperator
from convox_provider.operators.environment import ConvoxEnvSetOperator
from convox_provider.operators.processes import ConvoxRunProcessOperator

CONN_ID = "convox_default"
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
APP = "{{ params.app or 'review-' ~ params.pr }}"


@dag(
    dag_id="convox_review_app",
    description="A Convox review app per pull request: create, deploy, smoke-test, delete",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    doc_md=__doc__,
    tags=["convox", "example"],
    params={
        "pr": Param(1, type="integer", minimum=1, description="Pull request number"),
        "app": Param("", type="string", description="The app's name (default: review-<pr>)"),
        "source_dir": Param(
            SAMPLE_APP_DIR, type="string", description="Checkout of the pull request"
        ),
        "git_sha": Param("", type="string", description="Commit of the checkout"),
        "service": Param("web", type="string", description="Service the smoke test runs in"),
        "check_command": Param(
            CHECK_COMMAND, type="string", description="Smoke test: exits 0 when the app is fine"
        ),
    },
)
def convox_review_app() -> None:
    """Create -> set env -> deploy -> smoke test, then delete (see the module docstring)."""
    create_app = ConvoxCreateAppOperator(
        task_id="create_app",
        convox_conn_id=CONN_ID,
        app=APP,
        exists_ok=True,
        poll_interval=POLL_INTERVAL,
        timeout=10 * 60,
        deferrable=DEFERRABLE,
    )

    set_env = ConvoxEnvSetOperator(
        task_id="set_env",
        convox_conn_id=CONN_ID,
        app=APP,
        set={
            "REVIEW_APP": "true",
            "PULL_REQUEST": "{{ params.pr }}",
            "GIT_SHA": "{{ params.git_sha }}",
        },
        poll_interval=POLL_INTERVAL,
    )

    deploy = ConvoxDeployOperator(
        task_id="deploy",
        convox_conn_id=CONN_ID,
        app=APP,
        source_dir="{{ params.source_dir }}",
        description="Review app of pull request {{ params.pr }} ({{ run_id }})",
        poll_interval=POLL_INTERVAL,
        promote_timeout=ROLLOUT_TIMEOUT,
        deferrable=DEFERRABLE,
    )

    smoke_test = ConvoxRunProcessOperator(
        task_id="smoke_test",
        convox_conn_id=CONN_ID,
        app=APP,
        service="{{ params.service }}",
        command="{{ params.check_command }}",
        release_id=deploy.output,
        timeout=10 * 60,
    )

    delete_app = ConvoxDeleteAppOperator(
        task_id="delete_app",
        convox_conn_id=CONN_ID,
        app=APP,
        missing_ok=True,
        poll_interval=POLL_INTERVAL,
        timeout=10 * 60,
        deferrable=DEFERRABLE,
    )

    create_app >> set_env >> deploy >> smoke_test >> delete_app.as_teardown(setups=create_app)


review_app = convox_review_app()
