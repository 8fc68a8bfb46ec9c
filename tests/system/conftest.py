"""System tests: one real Airflow for the whole session, the rack emulator in this process.

Run them with ``make system`` (it sets ``CONVOX_SYSTEM_TESTS=1``); the ordinary suite skips
this folder. The session starts PostgreSQL and Redis from Debian's packages, migrates the
metadata DB and starts the api-server, scheduler (LocalExecutor and CeleryExecutor), dag-processor
and a triggerer, each as its own process; scenarios add triggerers and Celery workers. All of it
is torn down by PID at the end, whatever happened. Figures the scenarios measure are printed at
the end of the run (and written to ``$CONVOX_SYSTEM_FIGURES`` when set).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

if os.environ.get("CONVOX_SYSTEM_TESTS") != "1":
    collect_ignore_glob = ["*"]

from convox_provider.testing import RackEmulator

from .cluster import Airflow, Postgres, Redis
from .harness import POLL_INTERVAL, TIMING, Harness, Run

FIGURES: dict[str, Any] = {}


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="convox-system-"))
    root.chmod(0o755)  # the postgres user must reach its data directory
    try:
        yield root
    finally:
        if os.environ.get("CONVOX_SYSTEM_KEEP") != "1":
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def rack() -> Iterator[RackEmulator]:
    emulator = RackEmulator(password=secrets.token_hex(16), timing=TIMING).start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="session")
def secret_value() -> str:
    """The credential the env-rotation DAG writes (Variable ``payments_credential``)."""
    return "rotated-" + secrets.token_hex(12)


@pytest.fixture(scope="session")
def airflow(workdir: Path, rack: RackEmulator, secret_value: str) -> Iterator[Airflow]:
    started = time.monotonic()
    postgres = Postgres(workdir)
    redis: Redis | None = None
    cluster: Airflow | None = None
    try:
        redis = Redis(workdir)
        connection = {"conn_type": "convox", "host": rack.url, "password": rack.password}
        cluster = Airflow(
            workdir,
            db_url=postgres.url,
            broker_url=redis.url,
            extra_env={
                "AIRFLOW_CONN_CONVOX_DEFAULT": json.dumps(connection),
                "AIRFLOW_VAR_PAYMENTS_CREDENTIAL": secret_value,
                "CONVOX_POLL_INTERVAL": str(POLL_INTERVAL),
                # The example DAGs with a schedule never fire on their own while tested.
                "CONVOX_ROTATION_SCHEDULE": "0 0 29 2 *",
                "CONVOX_ROLLBACK_SCHEDULE": "0 0 29 2 *",
            },
        )
        cluster.start_all()
        cluster.wait_healthy()
        FIGURES["startup_seconds"] = round(time.monotonic() - started, 1)
        yield cluster
    finally:
        if cluster is not None:
            cluster.stop()
        if redis is not None:
            redis.service.stop()
        postgres.service.stop()


@pytest.fixture(scope="session")
def harness(airflow: Airflow, rack: RackEmulator, secret_value: str) -> Iterator[Harness]:
    h = Harness(airflow, rack, secret_value)
    try:
        h.wait_for_dags()
        yield h
    finally:
        h.watcher.stop()


#: (system DAG id, seeded releases of its app) of every example DAG; the deploy pipeline in both
#: modes, every other example deferred. Each runs with a logical date and with ``null``.
#: Not here: ``convox_approved_release``, which needs two racks (this cluster has one, behind
#: ``convox_default``) and a person's answer; it runs under ``dag.test()`` in
#: ``tests/e2e/test_approved_release.py``, answered through Airflow's HITL REST API.
EXAMPLES = {
    "sys_deploy_sync": 1,
    "sys_deploy_deferred": 1,
    "sys_guarded_deferred": 1,
    "sys_migrate_deferred": 1,
    "sys_rollback_deferred": 2,
    "sys_rotation_deferred": 1,
    "sys_review_deferred": 0,
}
CREATED_BY_THE_DAG = {"sys_review_deferred"}
"""Examples whose DAG creates (and deletes) its app: the run gets a name, not an app."""


@pytest.fixture(scope="session")
def example_runs(harness: Harness) -> dict[tuple[str, bool], Run]:
    """Every example run, all triggered at once (they are waited for together, per test)."""
    runs = {}
    for dag_id, releases in EXAMPLES.items():
        for dated in (True, False):
            prefix = dag_id.removeprefix("sys_").replace("_", "-")
            app = harness.new_app(prefix, releases, create=dag_id not in CREATED_BY_THE_DAG)
            runs[dag_id, dated] = harness.trigger(dag_id, app, logical_date=dated)
    return runs


@pytest.fixture(scope="session")
def figures() -> dict[str, Any]:
    return FIGURES


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("system test figures")
    for key, value in FIGURES.items():
        terminalreporter.write_line(f"{key}: {value}")
    target = os.environ.get("CONVOX_SYSTEM_FIGURES")
    if target:
        Path(target).write_text(json.dumps(FIGURES, indent=2) + "\n")
