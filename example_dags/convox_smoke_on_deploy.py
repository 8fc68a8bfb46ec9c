"""A smoke test that runs after every deploy of an app: a DAG scheduled on the app's asset.

The asset is ``convox://<rack>/<app>``, written here with
:func:`~convox_provider.assets.convox_app_asset` (``Asset("convox://acme/production/demo")``
names the same asset). Every task that deploys the app with ``rack=`` set (deploy, promote,
rollback, env set, scale, copy) emits an event of it, and the event's extra says what was
deployed; this DAG checks that the app runs that release, and is ``running``.

Environment knobs (read when the DAG file is parsed): ``CONVOX_ASSET_RACK`` (default
``acme/production``) and ``CONVOX_ASSET_APP`` (default ``demo``), as in ``convox_deploy_asset``.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

from airflow.sdk import dag, task

from convox_provider.assets import convox_app_asset

RACK = os.environ.get("CONVOX_ASSET_RACK", "acme/production")
APP = os.environ.get("CONVOX_ASSET_APP", "demo")
DEPLOYED = convox_app_asset(RACK, APP)


@dag(
    dag_id="convox_smoke_on_deploy",
    description="Smoke-test an app after each of its Convox deploys (asset-scheduled)",
    schedule=[DEPLOYED],
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    doc_md=__doc__,
    tags=["convox", "example", "assets"],
)
def convox_smoke_on_deploy() -> None:
    @task
    def smoke(triggering_asset_events: Any = None) -> dict[str, Any]:
        """Check the app runs the deployed release (the newest event's; else the active one)."""
        from convox_provider.hooks.convox import ConvoxHook  # noqa: PLC0415 - keep parsing fast

        deployed: dict[str, Any] = {}
        for events in (triggering_asset_events or {}).values():
            for event in events:
                deployed = dict(event.extra or {})
        with ConvoxHook() as hook:
            app = hook.get_conn().apps.get(APP)
        expected = deployed.get("release_id") or app.release
        if app.release != expected or app.status != "running":
            raise RuntimeError(
                f"app {APP} is {app.status} on release {app.release}, expected running on "
                f"{expected}"
            )
        return {"app": APP, "release_id": app.release, "deploy": deployed}

    smoke()


smoke_on_deploy = convox_smoke_on_deploy()
