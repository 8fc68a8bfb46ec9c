"""Run checks whenever a Convox app gets a new release, whoever deployed it.

The DAG is scheduled on the app's asset, ``convox://<rack>/<app>``, which an ``AssetWatcher``
feeds: :class:`~convox_provider.triggers.watch.ConvoxReleaseEventTrigger` runs in the triggerer,
looks at the app every ``CONVOX_WATCH_INTERVAL`` seconds and emits one asset event per release
the app settles on, made from Airflow, the CLI, the console or CI alike (a rollout that was
rolled back is not one). The event's ``extra["payload"]`` holds ``release_id``, ``build_id``,
``description``, ``created`` and ``previous_release``. A triggerer restart neither repeats nor
misses a release (the trigger keeps its cursor in the asset state store on Airflow 3.3, in an
Airflow Variable on 3.1 and 3.2: see the trigger's documentation).

1. ``release``: the release of the triggering event (a run started by hand checks the release
   the app runs now).
2. ``settled``: :class:`~convox_provider.sensors.apps.ConvoxAppSensor` waits until the app is
   ``running`` on that release, and fails if a newer release replaced it meanwhile (the next
   event is about that one).
3. ``smoke_test``: :class:`~convox_provider.operators.processes.ConvoxRunProcessOperator` runs
   ``CONVOX_SMOKE_TEST`` in a one-off process of the ``web`` service on that release; a non-zero
   exit code fails the run.

Setup: the connection ``convox_default``, and, read when the file is parsed, ``CONVOX_ASSET_APP``
(default ``demo``) and ``CONVOX_ASSET_RACK``: the rack as the asset names it, ``<org>/<rack>`` for a
console connection or the rack API's host (default ``local``, the bundled emulator's). The URI
is made by :func:`convox_provider.assets.asset_uri`, as for the deploy tasks' outlets, so a DAG
may also be scheduled on the same asset written by hand. ``CONVOX_DEFERRABLE`` and
``CONVOX_POLL_INTERVAL`` as in ``convox_deploy_pipeline``.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

from airflow.sdk import Asset, AssetWatcher, dag, task

try:
    from airflow.sdk import conf
except ImportError:  # Airflow 3.1: task-sdk 1.1 has no conf of its own
    from airflow.configuration import conf

from convox_provider.assets import asset_uri
from convox_provider.operators.processes import ConvoxRunProcessOperator
from convox_provider.sensors.apps import ConvoxAppSensor
from convox_provider.triggers.watch import ConvoxReleaseEventTrigger

CONN_ID = "convox_default"
APP = os.environ.get("CONVOX_ASSET_APP", "demo")
RACK = os.environ.get("CONVOX_ASSET_RACK", "local")
DEFERRABLE = os.environ.get(
    "CONVOX_DEFERRABLE", str(conf.getboolean("operators", "default_deferrable", fallback=False))
).lower() in {"1", "true", "yes", "on"}
POLL_INTERVAL = float(os.environ.get("CONVOX_POLL_INTERVAL", "5"))
WATCH_INTERVAL = float(os.environ.get("CONVOX_WATCH_INTERVAL", "30"))
SMOKE_TEST = os.environ.get("CONVOX_SMOKE_TEST", "python -c 'print(\"ok\")'")

RELEASES = Asset(
    asset_uri(RACK, APP),
    watchers=[
        AssetWatcher(
            name=f"convox_releases_{APP}",
            trigger=ConvoxReleaseEventTrigger(
                app=APP, convox_conn_id=CONN_ID, poll_interval=WATCH_INTERVAL
            ),
        )
    ],
)


@dag(
    dag_id="convox_on_release",
    description="Smoke-test every new release of a Convox app, however it was deployed",
    schedule=[RELEASES],
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["convox", "example"],
)
def convox_on_release() -> None:
    """release -> settled -> smoke_test (see the module docstring)."""

    @task
    def release(**context: Any) -> str:
        """The release id of the triggering asset event; the app's release for a manual run."""
        for event in context["triggering_asset_events"].get(RELEASES, []):
            payload = (event.extra or {}).get("payload") or {}
            if payload.get("release_id"):
                print(
                    f"Triggered by release {payload['release_id']} ({payload.get('description')})"
                )
                return str(payload["release_id"])
        from convox_provider.hooks.convox import ConvoxHook  # noqa: PLC0415 - keep parsing fast

        with ConvoxHook(CONN_ID) as hook:
            active = hook.get_conn().apps.get(APP).release
        print(f"No release event (a manual run): checking release {active}, the active one")
        return active

    release_id = release()
    settled = ConvoxAppSensor(
        task_id="settled",
        convox_conn_id=CONN_ID,
        app=APP,
        release_id=release_id,
        poke_interval=POLL_INTERVAL,
        timeout=35 * 60,
        deferrable=DEFERRABLE,
    )
    smoke_test = ConvoxRunProcessOperator(
        task_id="smoke_test",
        convox_conn_id=CONN_ID,
        app=APP,
        service="web",
        command=SMOKE_TEST,
        release_id=release_id,
        poll_interval=POLL_INTERVAL,
    )
    settled >> smoke_test


on_release = convox_on_release()
