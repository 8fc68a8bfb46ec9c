"""Build once, deploy many: build on staging, test there, then ship the same build to production.

Convox's "build once, deploy many": the images production runs are the ones staging tested,
not a second build of the same commit. Four tasks, two racks:

1. ``build``: :class:`~convox_provider.operators.builds.ConvoxBuildOperator` builds
   ``source_dir`` on the staging rack and pushes ``build_id`` and ``release_id``. It is retried
   (``retries``): a retry re-attaches to the build the first try started.
2. ``smoke_test``: :class:`~convox_provider.operators.processes.ConvoxRunProcessOperator` runs
   ``check_command`` in a one-off process of ``service`` on the new staging release (not
   promoted: staging keeps serving what it served); a non-zero exit fails the run and nothing
   reaches production.
3. ``copy_to_production``: :class:`~convox_provider.operators.builds.ConvoxCopyBuildOperator`
   streams the build's export from staging into an import on production
   (``convox builds export | convox builds import``, with no temporary file) and pushes the
   production ``build_id`` and ``release_id``. A retry finds the build its earlier try
   imported (a marker in its description) instead of importing it twice. The production app
   must exist.
4. ``promote``: :class:`~convox_provider.operators.releases.ConvoxPromoteReleaseOperator`
   promotes exactly the copied release on production and waits for the rollout (on the
   triggerer when deferrable).

Trigger it with a config: ``{"app": "myapp", "production_app": "myapp", "source_dir":
"/src/myapp", "check_command": "python -m smoke_test"}`` (defaults: app ``demo`` on both racks,
the sample app next to these examples, service ``web``).

Setup: two Airflow connections of type ``convox`` (see ``convox_deploy_pipeline``),
``convox_staging`` and ``convox_production``. Environment knobs, read when the DAG file is
parsed: ``CONVOX_DEFERRABLE``, ``CONVOX_POLL_INTERVAL`` (default 5), ``CONVOX_RETRY_DELAY``
(default 60) and ``CONVOX_SAMPLE_APP_DIR`` (the default ``source_dir``; without it,
``demo/sample-app`` next to this repository's ``example_dags/``, which a copy of this file in a
DAGs folder does not have).
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

from convox_provider.operators.builds import ConvoxBuildOperator, ConvoxCopyBuildOperator
from convox_provider.operators.processes import ConvoxRunProcessOperator
from convox_provider.operators.releases import ConvoxPromoteReleaseOperator

STAGING = "convox_staging"
PRODUCTION = "convox_production"
# The sample app next to the repository's example_dags/. Copied into a DAGs folder, this file
# no longer finds it: set CONVOX_SAMPLE_APP_DIR, or give source_dir in the run's config.
SAMPLE_APP_DIR = os.environ.get("CONVOX_SAMPLE_APP_DIR") or str(
    Path(__file__).resolve().parent.parent / "demo" / "sample-app"
)
DEFERRABLE = os.environ.get(
    "CONVOX_DEFERRABLE", str(conf.getboolean("operators", "default_deferrable", fallback=False))
).lower() in {"1", "true", "yes", "on"}
POLL_INTERVAL = float(os.environ.get("CONVOX_POLL_INTERVAL", "5"))
RETRY_DELAY = timedelta(seconds=float(os.environ.get("CONVOX_RETRY_DELAY", "60")))
BUILD_TIMEOUT = 60 * 60.0
COPY_TIMEOUT = 60 * 60.0
ROLLOUT_TIMEOUT = 35 * 60.0
CHECK_COMMAND = (
    "python -c \"import urllib.request; urllib.request.urlopen('http://web:8000/', timeout=10)\""
)


@dag(
    dag_id="convox_promote_across_racks",
    description="Build on staging, smoke-test it, copy the same build to production, promote",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["convox", "example"],
    params={
        "app": Param("demo", type="string", description="Convox app to build on staging"),
        "production_app": Param(
            "", type="string", description="The app on production (empty: the same name)"
        ),
        "source_dir": Param(
            SAMPLE_APP_DIR, type="string", description="Directory with the app's source"
        ),
        "service": Param("web", type="string", description="Service the smoke test runs in"),
        "check_command": Param(
            CHECK_COMMAND, type="string", description="Smoke test: exits 0 when the app is fine"
        ),
    },
)
def convox_promote_across_racks() -> None:
    """Build on staging -> smoke test -> copy to production -> promote (module docstring)."""
    build = ConvoxBuildOperator(
        task_id="build",
        convox_conn_id=STAGING,
        app="{{ params.app }}",
        source_dir="{{ params.source_dir }}",
        description="Airflow {{ dag.dag_id }} {{ run_id }}",
        poll_interval=POLL_INTERVAL,
        timeout=BUILD_TIMEOUT,
        deferrable=DEFERRABLE,
        retries=2,
        retry_delay=RETRY_DELAY,
    )

    smoke_test = ConvoxRunProcessOperator(
        task_id="smoke_test",
        convox_conn_id=STAGING,
        app="{{ params.app }}",
        service="{{ params.service }}",
        command="{{ params.check_command }}",
        release_id=build.output["release_id"],
        timeout=10 * 60,
        retries=0,
    )

    copy = ConvoxCopyBuildOperator(
        task_id="copy_to_production",
        source_conn_id=STAGING,
        source_app="{{ params.app }}",
        build_id=build.output["build_id"],
        target_conn_id=PRODUCTION,
        target_app="{{ params.production_app or params.app }}",
        copy_timeout=COPY_TIMEOUT,
        retries=2,
        retry_delay=RETRY_DELAY,
    )

    promote = ConvoxPromoteReleaseOperator(
        task_id="promote",
        convox_conn_id=PRODUCTION,
        app="{{ params.production_app or params.app }}",
        release_id=copy.output["release_id"],
        poll_interval=POLL_INTERVAL,
        timeout=ROLLOUT_TIMEOUT,
        deferrable=DEFERRABLE,
    )

    smoke_test >> copy >> promote


promote_across_racks = convox_promote_across_racks()
