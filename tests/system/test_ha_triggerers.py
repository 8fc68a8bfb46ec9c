"""Airflow's HA mode: two triggerers at once, 20 deploys deferred together.

Each deploy (``convox deploy``: build, promote, wait) defers twice. Every trigger must be run
by exactly one triggerer, and the rack must receive exactly one build and one promote per
deploy. The triggerers' RSS (each process with its trigger-runner child) is measured idle and
with all the deploys deferred.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import httpx

from .cluster import Airflow, rss_kib, wait_until
from .harness import TERMINAL, Harness

DEPLOYS = 20


def test_two_triggerers_run_each_trigger_once(
    harness: Harness, airflow: Airflow, figures: dict[str, Any]
) -> None:
    airflow.start("triggerer-ha", "triggerer", "--skip-serve-logs")
    triggerers = airflow.triggerers()
    assert len(triggerers) == 2

    def both_alive() -> bool:
        jobs = harness.api.get("/jobs", job_type="TriggererJob", is_alive=True)["jobs"]
        return len(jobs) == 2

    wait_until(both_alive, timeout=90, interval=1, what="two live triggerers")
    idle = {t.name: rss_kib(t.tree()) for t in triggerers}

    apps = [harness.new_app("many") for _ in range(DEPLOYS)]
    for app in apps:  # long enough for every build to be deferred at the same time
        harness.rack.scripts.next_build(app=app, duration=15)
    harness.watcher.reset_peak()
    started = time.monotonic()
    runs = [harness.trigger("sys_deploy_many", app, logical_date=False) for app in apps]

    peak_rss = dict.fromkeys(idle, 0)
    peak_deferred = 0
    while any(run.state not in TERMINAL for run in runs):
        assert time.monotonic() - started < 420, "the deploys did not finish in 7 minutes"
        airflow.check_alive()
        time.sleep(1)
        try:
            harness.poll(runs)
            deferred = harness.api.get(
                "/dags/sys_deploy_many/dagRuns/~/taskInstances", state="deferred", limit=1
            )["total_entries"]
        except httpx.TimeoutException:  # a busy api-server: sample again
            continue
        if deferred >= peak_deferred:
            peak_deferred = deferred
            for t in triggerers:
                peak_rss[t.name] = max(peak_rss[t.name], rss_kib(t.tree()))

    failed = [harness.explain(run) for run in runs if run.state != "success"]
    assert not failed, "\n".join(failed)
    for app in apps:
        assert (harness.builds_posted(app), harness.promotes_posted(app)) == (1, 1), app
        assert harness.rack.app(app)["status"] == "running"
    holders: dict[int, set[int]] = {}
    for run in runs:
        seen = harness.watcher.holders_of(run)
        assert seen, f"{run.run_id}: never seen deferred on a triggerer"
        holders.update(seen)
    assert {t: len(h) for t, h in holders.items()} == dict.fromkeys(holders, 1)
    share = Counter(next(iter(h)) for h in holders.values())
    figures["ha_deploys"] = DEPLOYS
    figures["ha_seconds"] = round(time.monotonic() - started, 1)
    figures["ha_peak_deferred_at_once"] = peak_deferred
    figures["ha_triggers_per_triggerer_job"] = dict(share)
    figures["ha_triggerer_rss_mib_idle"] = {k: round(v / 1024, 1) for k, v in idle.items()}
    figures["ha_triggerer_rss_mib_peak"] = {k: round(v / 1024, 1) for k, v in peak_rss.items()}
    assert peak_deferred == DEPLOYS
