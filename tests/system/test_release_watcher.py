"""The release watcher on a real Airflow: deploys made outside Airflow start a DAG, once each,
across a triggerer killed with SIGKILL.

``sys_on_release_deferred`` is ``example_dags/convox_on_release.py`` for app ``sys-watch``,
scheduled on its asset, whose ``AssetWatcher`` runs ``ConvoxReleaseEventTrigger`` (a look every
second) in the triggerer. The watcher starts before the app exists, so the app's first release
is reported. Another client (the CLI, CI) promotes a release: one asset event with that release
in its payload, one DAG run that checks it. Then every triggerer is killed, a
release is promoted while none runs, and a new triggerer starts: that release is reported once,
and the one reported before is not reported again (the cursor survived, in the asset state store
on Airflow 3.3, in a Variable on 3.1).
"""

from __future__ import annotations

import time
from typing import Any

from convox_provider.assets import asset_uri
from convox_provider.client.client import ConvoxClient
from convox_provider.client.waiting import WaitOptions

from .cluster import Airflow, wait_until
from .harness import MANIFEST, TERMINAL, Harness

DAG_ID = "sys_on_release_deferred"
APP = "sys-watch"


def runs_of(harness: Harness) -> list[dict[str, Any]]:
    return list(harness.api.get(f"/dags/{DAG_ID}/dagRuns", limit=100)["dag_runs"])


def asset_events(harness: Harness) -> list[dict[str, Any]]:
    (asset,) = harness.api.get("/assets", uri_pattern=APP)["assets"]
    assert asset["uri"] == asset_uri("local", APP)
    page = harness.api.get("/assets/events", asset_id=asset["id"], limit=100)
    return sorted(page["asset_events"], key=lambda event: event["timestamp"])


def released(harness: Harness) -> list[str]:
    """The release of each asset event of the app, oldest first."""
    return [event["extra"]["payload"]["release_id"] for event in asset_events(harness)]


def promote_new(harness: Harness) -> str:
    """A deploy made outside Airflow: a new release, promoted, its rollout waited for."""
    rack = harness.rack
    new = str(rack.add_release(APP, MANIFEST, promote=False, description="from CI")[1]["id"])
    with ConvoxClient(rack.url, rack.password) as client:
        client.releases.promote(
            APP, new, waiting=WaitOptions(poll_interval=0.2, initial_delay=0.5, timeout=60)
        )
    return new


def test_deploys_outside_airflow_start_the_dag_once_each_across_a_triggerer_kill(
    harness: Harness, airflow: Airflow, figures: dict[str, Any]
) -> None:
    rack = harness.rack

    def finished(count: int) -> Any:
        runs = runs_of(harness)
        done = [r for r in runs if r["state"] in TERMINAL]
        return runs if len(runs) == count and len(done) == count else None

    def checked(run: dict[str, Any]) -> str:
        xcom = harness.api.get(
            f"/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances/release"
            "/xcomEntries/return_value"
        )
        return str(xcom["value"]).strip('"')

    # The watcher is declared before the app exists (an asset's watcher starts once the
    # dag-processor has seen its DAG unpaused: on Airflow 3.1 at its next parse of the file, a
    # minute or more on a busy machine). Two looks answered 404: it began before the app's first
    # release (the first look) and saved that cursor (the second look comes after the save).
    wait_until(
        lambda: rack.requests.count("GET", f"/apps/{APP}", status=404) >= 2,
        timeout=300,
        interval=0.5,
        what="the watcher looking for the app before it exists",
    )
    rack.create_app(APP)
    seed = rack.add_release(APP, MANIFEST, description="seed")[1]["id"]
    wait_until(lambda: released(harness) == [seed], timeout=150, what="the app's first release")
    (event,) = asset_events(harness)
    assert event["extra"]["payload"]["previous_release"] is None
    (run,) = wait_until(lambda: finished(1), timeout=120, what="the run the first release started")
    assert run["state"] == "success", run
    assert checked(run) == seed

    started = time.monotonic()
    first = promote_new(harness)
    wait_until(lambda: released(harness) == [seed, first], timeout=150, what="the next release")
    figures["watcher_event_seconds"] = round(time.monotonic() - started, 1)
    event = asset_events(harness)[-1]
    assert event["extra"]["payload"]["previous_release"] == seed
    assert event["extra"]["payload"]["description"] == "from CI"
    runs = wait_until(lambda: finished(2), timeout=120, what="the run the event started")
    assert [r["state"] for r in runs] == ["success", "success"], runs
    assert sorted(checked(r) for r in runs) == sorted([seed, first])

    for triggerer in airflow.triggerers():  # no triggerer runs now
        triggerer.kill()
    while_down = promote_new(harness)
    airflow.start("triggerer-watch", "triggerer", "--skip-serve-logs")
    wait_until(
        lambda: released(harness) == [seed, first, while_down],
        timeout=150,
        interval=1,
        what="the release made while no triggerer ran",
    )
    runs = wait_until(lambda: finished(3), timeout=120, what="the third run")
    assert [r["state"] for r in runs] == ["success"] * 3

    polls = rack.requests.count("GET", f"/apps/{APP}")
    wait_until(
        lambda: rack.requests.count("GET", f"/apps/{APP}") >= polls + 5,
        timeout=60,
        what="a few more looks at the app",
    )
    assert released(harness) == [seed, first, while_down]  # nothing reported twice
    assert len(runs_of(harness)) == 3
    assert harness.promotes_posted(APP) == 2  # the two deploys; the watcher only reads
    assert rack.requests.count("POST", f"/apps/{APP}/releases") == 0
