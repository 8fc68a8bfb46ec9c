"""Build, run the database migrations on the new release, then promote it.

The pipeline Convox's own CI actions document (build, ``convox run <service> <migrate>
--release <new>``, ``convox releases promote <new>``), as three Airflow tasks:

1. ``build``: :class:`~convox_provider.operators.builds.ConvoxBuildOperator` builds
   ``source_dir`` and pushes ``release_id``, the release the build created. It is retried
   (``retries``): a retry after a worker died re-attaches to the build the first try started
   instead of building again.
2. ``migrate``: :class:`~convox_provider.operators.processes.ConvoxRunProcessOperator` runs
   ``migrate_command`` in a one-off process of ``service`` on that release, before any traffic
   reaches it; its output streams into the task log and a non-zero exit fails the task (and so
   the run: nothing is promoted). It is not retried: a migration is run again only on purpose.
3. ``promote``: :class:`~convox_provider.operators.releases.ConvoxPromoteReleaseOperator`
   promotes exactly the built release and waits for the rollout (on the triggerer when
   deferrable); a rollout the rack rolls back fails the task.

Trigger it with a config: ``{"app": "myapp", "source_dir": "/src/myapp",
"migrate_command": "python manage.py migrate --noinput"}`` (defaults: app ``demo``, the sample app
next to these examples, service ``web``, ``python manage.py migrate``).

Setup: an Airflow connection ``convox_default`` of type ``convox`` (see
``convox_deploy_pipeline``). Environment knobs, read when the DAG file is parsed:

* ``CONVOX_DEFERRABLE``: ``true`` waits for the build and the rollout in the triggerer;
* ``CONVOX_POLL_INTERVAL``: seconds between status checks (default 5);
* ``CONVOX_RETRY_DELAY``: seconds before a failed build task is tried again (default 60);
* ``CONVOX_SAMPLE_APP_DIR``: the default ``source_dir``. Without it the default is
  ``demo/sample-app`` next to this repository's ``example_dags/``, which a copy of this file in
  a DAGs folder does not have: set it, or give ``source_dir`` in the run's config.
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

from convox_provider.operators.builds import ConvoxBuildOperator
from convox_provider.operators.processes import ConvoxRunProcessOperator
from convox_provider.operators.releases import ConvoxPromoteReleaseOperator

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
RETRY_DELAY = timedelta(seconds=float(os.environ.get("CONVOX_RETRY_DELAY", "60")))
BUILD_TIMEOUT = 60 * 60.0
MIGRATE_TIMEOUT = 30 * 60  # whole seconds: the one-off process's lifetime
ROLLOUT_TIMEOUT = 35 * 60.0


@dag(
    dag_id="convox_migrate_then_promote",
    description="Build on Convox, migrate on the new release, then promote it",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["convox", "example"],
    params={
        "app": Param("demo", type="string", description="Convox app to build and release"),
        "source_dir": Param(
            SAMPLE_APP_DIR, type="string", description="Directory with the app's source"
        ),
        "service": Param("web", type="string", description="Service the migration runs in"),
        "migrate_command": Param(
            "python manage.py migrate",
            type="string",
            description="Command that migrates the database (run on the new release)",
        ),
    },
)
def convox_migrate_then_promote() -> None:
    """Build -> migrate on the new release -> promote (see the module docstring)."""
    build = ConvoxBuildOperator(
        task_id="build",
        convox_conn_id=CONN_ID,
        app="{{ params.app }}",
        source_dir="{{ params.source_dir }}",
        description="Airflow {{ dag.dag_id }} {{ run_id }}",
        poll_interval=POLL_INTERVAL,
        timeout=BUILD_TIMEOUT,
        deferrable=DEFERRABLE,
        retries=2,
        retry_delay=RETRY_DELAY,
    )
    release_id = build.output["release_id"]

    migrate = ConvoxRunProcessOperator(
        task_id="migrate",
        convox_conn_id=CONN_ID,
        app="{{ params.app }}",
        service="{{ params.service }}",
        command="{{ params.migrate_command }}",
        release_id=release_id,
        timeout=MIGRATE_TIMEOUT,
        retries=0,
    )

    promote = ConvoxPromoteReleaseOperator(
        task_id="promote",
        convox_conn_id=CONN_ID,
        app="{{ params.app }}",
        release_id=release_id,
        poll_interval=POLL_INTERVAL,
        timeout=ROLLOUT_TIMEOUT,
        deferrable=DEFERRABLE,
    )

    migrate >> promote


migrate_then_promote = convox_migrate_then_promote()
