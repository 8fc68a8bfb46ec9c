"""Deploy to staging, have a person approve the change, then copy it to production and promote.

Two racks, two Airflow connections: ``convox_staging`` and ``convox_production``.

1. ``deploy_staging``: :class:`~convox_provider.operators.builds.ConvoxDeployOperator` builds
   ``source_dir`` on the staging rack, promotes the new release there and waits for it.
2. ``approve``: :class:`~convox_provider.operators.approval.ConvoxApprovalOperator` reads what
   promoting that build on production would change (the staging release against production's
   active release: build ids, descriptions, git shas, ages, the environment KEYS added, removed
   and changed, which on production are those of its newest release, and a manifest diff) and
   asks for an approval with it in view, in the UI's Required Actions page. "Reject" skips the
   rest of the run. When production already runs a copy of that build, nothing is asked and
   the rest of the run is skipped.
3. ``copy_to_production``: :class:`~convox_provider.operators.builds.ConvoxCopyBuildOperator`
   streams the staging build into the production app (export into import, no temporary file).
4. ``promote_production``: :class:`~convox_provider.operators.releases.ConvoxPromoteReleaseOperator`
   promotes the copy's release on production and waits for the rollout.

Trigger it with a config: ``{"app": "myapp", "source_dir": "/src/myapp"}``; the app must exist
on both racks. On Airflow 3.3 the approval waits in the ``awaiting_input`` state; on 3.1 and
3.2 it defers, so a triggerer must be running.

Environment knobs, read when the DAG file is parsed: ``CONVOX_DEFERRABLE``,
``CONVOX_POLL_INTERVAL`` (default 5), ``CONVOX_SAMPLE_APP_DIR`` (see ``convox_deploy_pipeline``).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

from airflow.sdk import Param, dag

try:
    from airflow.sdk import conf
except ImportError:  # Airflow 3.1: task-sdk 1.1 has no conf of its own
    from airflow.configuration import conf

from convox_provider.operators.approval import ConvoxApprovalOperator
from convox_provider.operators.builds import ConvoxCopyBuildOperator, ConvoxDeployOperator
from convox_provider.operators.releases import ConvoxPromoteReleaseOperator

STAGING = "convox_staging"
PRODUCTION = "convox_production"
SAMPLE_APP_DIR = os.environ.get("CONVOX_SAMPLE_APP_DIR") or str(
    Path(__file__).resolve().parent.parent / "demo" / "sample-app"
)
DEFERRABLE = os.environ.get(
    "CONVOX_DEFERRABLE", str(conf.getboolean("operators", "default_deferrable", fallback=False))
).lower() in {"1", "true", "yes", "on"}
POLL_INTERVAL = float(os.environ.get("CONVOX_POLL_INTERVAL", "5"))
ROLLOUT_TIMEOUT = 35 * 60.0
STAGING_BUILD = "{{ ti.xcom_pull(task_ids='deploy_staging', key='build_id') }}"
PRODUCTION_RELEASE = "{{ ti.xcom_pull(task_ids='copy_to_production', key='release_id') }}"


@dag(
    dag_id="convox_approved_release",
    description="Deploy to staging, approve the change, copy to production and promote it",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["convox", "example"],
    params={
        "app": Param("demo", type="string", description="Convox app, on both racks"),
        "source_dir": Param(
            SAMPLE_APP_DIR, type="string", description="Directory with the app's source"
        ),
    },
)
def convox_approved_release() -> None:
    """Deploy to staging -> approve -> copy to production -> promote (see the module doc)."""
    deploy_staging = ConvoxDeployOperator(
        task_id="deploy_staging",
        convox_conn_id=STAGING,
        app="{{ params.app }}",
        source_dir="{{ params.source_dir }}",
        description="Airflow {{ dag.dag_id }} {{ run_id }}",
        poll_interval=POLL_INTERVAL,
        promote_timeout=ROLLOUT_TIMEOUT,
        deferrable=DEFERRABLE,
    )

    approve = ConvoxApprovalOperator(
        task_id="approve",
        convox_conn_id=PRODUCTION,
        source_conn_id=STAGING,
        app="{{ params.app }}",
        release_id=deploy_staging.output,
        subject="Promote {{ params.app }} from staging to production?",
        body="Deployed to staging by run `{{ run_id }}`.",
        response_timeout=timedelta(days=1),
    )

    copy_to_production = ConvoxCopyBuildOperator(
        task_id="copy_to_production",
        source_conn_id=STAGING,
        source_app="{{ params.app }}",
        build_id=STAGING_BUILD,
        target_conn_id=PRODUCTION,
        poll_interval=POLL_INTERVAL,
    )

    promote_production = ConvoxPromoteReleaseOperator(
        task_id="promote_production",
        convox_conn_id=PRODUCTION,
        app="{{ params.app }}",
        release_id=PRODUCTION_RELEASE,
        poll_interval=POLL_INTERVAL,
        timeout=ROLLOUT_TIMEOUT,
        deferrable=DEFERRABLE,
    )

    deploy_staging >> approve >> copy_to_production >> promote_production


approved_release = convox_approved_release()
