"""Build an app from a directory, promote the new release and wait until it runs.

The canonical Convox pipeline, what ``convox build`` followed by ``convox releases promote``
does, as four Airflow tasks:

1. ``build``: :class:`~convox_provider.operators.builds.ConvoxBuildOperator` packs
   ``source_dir`` into a tarball (honouring ``.dockerignore``), uploads it, starts the build and
   copies the build log into the task log. It pushes ``build_id`` to XCom as soon as the build
   exists and ``release_id`` (the release the build created) once the build is complete.
2. ``promote``: :class:`~convox_provider.operators.releases.ConvoxPromoteReleaseOperator`
   starts the rollout of exactly that release (taken from the build's XCom, never "the newest",
   so a concurrent build cannot slip in) and returns without waiting.
3. ``wait_for_rollout``: :class:`~convox_provider.sensors.releases.ConvoxReleaseSensor` succeeds
   once the app is ``running`` on the release and fails if the rack rolled the release back.
   (To do 2 and 3 in one task, give the promote ``wait_for_completion=True`` instead.)
4. ``report``: reads the app back through :class:`~convox_provider.hooks.convox.ConvoxHook`
   and returns a summary (XCom ``return_value``) for whatever comes next, e.g. a notification.

Trigger it with a config to choose what to deploy: ``{"app": "myapp", "source_dir": "/src/myapp"}``
(defaults: app ``demo`` and the sample app shipped next to these examples, ``demo/sample-app``).

Setup: an Airflow connection ``convox_default`` of type ``convox`` (host ``console.convox.com``
with the ``rack`` extra ``<org>/<rack>`` and a deploy key as password, or a rack API URL with the
rack password), for example ``AIRFLOW_CONN_CONVOX_DEFAULT='{"conn_type": "convox",
"host": "console.convox.com", "password": "<deploy key>", "extra": {"rack": "acme/production"}}'``.
The app must exist on the rack and ``source_dir`` must be readable by the worker.

Environment knobs (read when the DAG file is parsed):

* ``CONVOX_DEFERRABLE``: ``true`` waits in the triggerer instead of holding a worker slot while
  the build and the rollout run (default: Airflow's ``[operators] default_deferrable``);
* ``CONVOX_POLL_INTERVAL``: seconds between status checks (default 5);
* ``CONVOX_SAMPLE_APP_DIR``: the default ``source_dir``. Without it the default is
  ``demo/sample-app`` next to this repository's ``example_dags/``, which a copy of this file in
  a DAGs folder does not have: set it, or give ``source_dir`` in the run's config.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from airflow.sdk import Param, dag, task

try:
    from airflow.sdk import conf
except ImportError:  # Airflow 3.1: task-sdk 1.1 has no conf of its own
    from airflow.configuration import conf

from convox_provider.operators.builds import ConvoxBuildOperator
from convox_provider.operators.releases import ConvoxPromoteReleaseOperator
from convox_provider.sensors.releases import ConvoxReleaseSensor

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
BUILD_TIMEOUT = 60 * 60.0
ROLLOUT_TIMEOUT = 35 * 60.0  # what `convox releases promote` allows a rollout
#: The release the build created: promote exactly that one, never "the newest".
RELEASE_ID = "{{ ti.xcom_pull(task_ids='build', key='release_id') }}"


@dag(
    dag_id="convox_deploy_pipeline",
    description="Build a directory on Convox, promote the new release, wait for the rollout",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["convox", "example"],
    params={
        "app": Param("demo", type="string", description="Convox app to build and deploy"),
        "source_dir": Param(
            SAMPLE_APP_DIR,
            type="string",
            description="Directory with the app's source and convox.yml, on the worker",
        ),
    },
)
def convox_deploy_pipeline() -> None:
    """Build -> promote -> wait for the rollout -> report (see the module docstring)."""
    build = ConvoxBuildOperator(
        task_id="build",
        convox_conn_id=CONN_ID,
        app="{{ params.app }}",
        source_dir="{{ params.source_dir }}",
        description="Airflow {{ dag.dag_id }} {{ run_id }}",
        poll_interval=POLL_INTERVAL,
        timeout=BUILD_TIMEOUT,
        deferrable=DEFERRABLE,
    )

    # Returns once the rack accepted the promote; the sensor below waits for the rollout. (A
    # rollout already in progress is waited out first, up to `timeout`, as the CLI does.)
    promote = ConvoxPromoteReleaseOperator(
        task_id="promote",
        convox_conn_id=CONN_ID,
        app="{{ params.app }}",
        release_id=RELEASE_ID,
        wait_for_completion=False,
        poll_interval=POLL_INTERVAL,
        timeout=ROLLOUT_TIMEOUT,
    )

    wait_for_rollout = ConvoxReleaseSensor(
        task_id="wait_for_rollout",
        convox_conn_id=CONN_ID,
        app="{{ params.app }}",
        release_id=RELEASE_ID,
        poke_interval=POLL_INTERVAL,
        timeout=ROLLOUT_TIMEOUT,
        deferrable=DEFERRABLE,
    )

    @task
    def report(app: str, build_id: str, release_id: str) -> dict[str, Any]:
        """Read the app back from the rack and summarise the deploy."""
        from convox_provider.hooks.convox import ConvoxHook  # noqa: PLC0415 - keep parsing fast

        with ConvoxHook(CONN_ID) as hook:
            state = hook.get_conn().apps.get(app)
        print(f"Deployed {app}: build {build_id} -> release {release_id}; app is {state.status}")
        return {
            "app": app,
            "build_id": build_id,
            "release_id": release_id,
            "active_release": state.release,
            "status": state.status,
        }

    summary = report(
        app="{{ params.app }}",
        build_id="{{ ti.xcom_pull(task_ids='build', key='build_id') }}",
        release_id=RELEASE_ID,
    )
    build >> promote >> wait_for_rollout >> summary


deploy_pipeline = convox_deploy_pipeline()
