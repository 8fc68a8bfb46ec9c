"""Deploy an app and record the deploy as an Airflow asset event: ``convox://<rack>/<app>``.

``rack=`` on the deploy operator declares the app's asset as the task's outlet when the DAG is
parsed. When the deploy succeeds, Airflow records an event of that asset whose extra holds the
``release_id``, ``build_id``, ``description``, ``rollback`` and ``promoted`` of the deploy.
DAGs scheduled on the asset start from it: see ``convox_smoke_on_deploy``, a smoke test that
runs after every deploy of the app.

``rack`` names the rack as the URI does: ``<org>/<rack>`` for a console connection (the
connection's ``rack`` extra), or the rack API host (``api.<rack-domain>``) for a direct one. A
connection that reaches another rack fails the task before anything is sent.

Setup: an Airflow connection ``convox_default`` (see ``convox_deploy_pipeline``). Environment
knobs (read when the DAG file is parsed): ``CONVOX_ASSET_RACK`` (default ``acme/production``),
``CONVOX_ASSET_APP`` (default ``demo``), ``CONVOX_DEFERRABLE``, ``CONVOX_POLL_INTERVAL`` and
``CONVOX_SAMPLE_APP_DIR`` (the directory built, default ``demo/sample-app``).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from airflow.sdk import DAG

from convox_provider.operators.builds import ConvoxDeployOperator

RACK = os.environ.get("CONVOX_ASSET_RACK", "acme/production")
APP = os.environ.get("CONVOX_ASSET_APP", "demo")
SAMPLE_APP_DIR = os.environ.get("CONVOX_SAMPLE_APP_DIR") or str(
    Path(__file__).resolve().parent.parent / "demo" / "sample-app"
)
DEFERRABLE = os.environ.get("CONVOX_DEFERRABLE", "false").lower() in {"1", "true", "yes", "on"}
POLL_INTERVAL = float(os.environ.get("CONVOX_POLL_INTERVAL", "5"))

with DAG(
    dag_id="convox_deploy_asset",
    description="Deploy an app on Convox; the deploy is an event of the app's asset",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["convox", "example", "assets"],
) as deploy_asset:
    ConvoxDeployOperator(
        task_id="deploy",
        app=APP,
        rack=RACK,
        source_dir=SAMPLE_APP_DIR,
        description="{{ dag_run.conf.get('description', 'deployed by Airflow') }}",
        poll_interval=POLL_INTERVAL,
        deferrable=DEFERRABLE,
    )
