"""Airflow's distributed executor: the same pipelines on two Celery workers (Redis broker).

The scheduler runs the LocalExecutor and the CeleryExecutor side by side; these DAGs put every
task on Celery (``executor="CeleryExecutor"``). Two workers serve the ``default`` queue. The
deploy pipeline runs deferred; then the worker running a build is killed (SIGKILL of the worker
and its pool) mid-build: Airflow fails the silent task after its heartbeat timeout, the retry
runs on the other worker and re-attaches to the build.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from .cluster import Airflow, Service, wait_until
from .harness import Harness


@pytest.fixture(scope="module")
def celery_workers(airflow: Airflow) -> Iterator[list[Service]]:
    workers = [
        airflow.start(
            f"celery-worker-{n}",
            *("celery", "worker", "--concurrency", "3", "--skip-serve-logs"),
            *("--celery-hostname", f"worker{n}@%h", "--without-mingle", "--without-gossip"),
        )
        for n in (1, 2)
    ]

    def ready(worker: Service) -> bool:
        airflow.check_alive()
        return " ready." in worker.log.read_text(errors="replace")

    try:
        for worker in workers:
            wait_until(
                lambda w=worker: ready(w),
                timeout=120,
                interval=0.5,
                what=f"{worker.name} ready",
            )
        yield workers
    finally:
        for worker in workers:
            if worker.alive():
                worker.stop()


def test_deploy_pipeline_deferred_on_celery(
    harness: Harness, celery_workers: list[Service], figures: dict[str, Any]
) -> None:
    app = harness.new_app("celery-deploy")
    run = harness.trigger("sys_celery_deploy_deferred", app)
    harness.wait(run, timeout=240)
    tis = harness.task_instances(run)
    assert run.state == "success", harness.explain(run)
    assert {ti["executor"] for ti in tis.values()} == {"CeleryExecutor"}
    assert "build" in harness.watcher.deferred(run)
    assert (harness.builds_posted(app), harness.promotes_posted(app)) == (1, 1)
    xcom = harness.xcom(run, "build")
    assert harness.rack.app(app)["release"] == xcom["release_id"]
    assert harness.xcom(run, "report")["return_value"]["active_release"] == xcom["release_id"]
    build_log = harness.log_text(run, "build", 1)
    assert "Running: docker push " in build_log  # the build's own output
    assert f":web.{xcom['build_id']}" in build_log
    worker_logs = "".join(w.log.read_text(errors="replace") for w in celery_workers)
    assert run.run_id in worker_logs  # the tasks really ran on the Celery workers
    figures["scenario_seconds:celery_deploy_deferred"] = round(
        (run.finished or 0) - run.triggered, 1
    )


def test_celery_worker_killed_mid_build(
    harness: Harness, airflow: Airflow, celery_workers: list[Service], figures: dict[str, Any]
) -> None:
    app = harness.new_app("celery-kill")
    harness.rack.scripts.next_build(app=app, duration=25)
    run = harness.trigger("sys_celery_migrate_retried", app)

    def building() -> Any:
        ti = harness.task_instances(run)["build"]
        running = [b for b in harness.rack.builds(app) if b["status"] == "running"]
        return ti if ti["state"] == "running" and ti.get("pid") and running else None

    ti = wait_until(building, timeout=120, what="the build task running on a worker")
    (victim,) = [w for w in celery_workers if ti["pid"] in w.tree()]
    (survivor,) = [w for w in celery_workers if w is not victim]
    victim.kill()

    harness.wait(run, timeout=240)
    tis = harness.task_instances(run)
    assert run.state == "success", harness.explain(run)
    assert tis["build"]["try_number"] == 2
    assert survivor.alive()
    assert harness.builds_posted(app) == 1, "the retry re-attached instead of building again"
    (build,) = harness.new_builds(app)
    assert harness.xcom(run, "build")["build_id"] == build["id"]
    assert harness.rack.app(app)["release"] == build["release"]
    assert harness.promotes_posted(app) == 1
    with contextlib.suppress(OSError):
        assert run.run_id in survivor.log.read_text(errors="replace")
    figures["scenario_seconds:celery_worker_kill"] = round((run.finished or 0) - run.triggered, 1)
