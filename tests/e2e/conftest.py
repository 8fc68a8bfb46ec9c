"""End-to-end harness: the example DAGs run under ``dag.test()`` against a local rack.

One process, session-wide: Airflow's metadata DB is created once (``resetdb``, ~0.7 s), one
rack emulator serves every test (each test deploys its own app), and each example DAG file is
loaded once per mode. ``tests/conftest.py`` has already pointed ``AIRFLOW_HOME`` at a temporary
directory and ``[core] dags_folder`` at ``example_dags/``, both before Airflow was imported.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from convox_provider.testing import RackEmulator

from .harness import EXAMPLE_DAGS, MANIFEST, POLL_INTERVAL, TIMING, SeededApp

if Path(os.environ.get("AIRFLOW__CORE__DAGS_FOLDER", "")) != EXAMPLE_DAGS:
    raise RuntimeError("tests/conftest.py must point AIRFLOW__CORE__DAGS_FOLDER at example_dags/")


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A fresh, migrated metadata DB in this process's temporary AIRFLOW_HOME."""
    from airflow.utils import db

    db.resetdb()


@pytest.fixture(scope="session")
def rack() -> Iterator[RackEmulator]:
    """One emulated rack for the session; ``AIRFLOW_CONN_CONVOX_DEFAULT`` points at it."""
    emulator = RackEmulator(password=secrets.token_hex(16), timing=TIMING).start()
    connection = {"conn_type": "convox", "host": emulator.url, "password": emulator.password}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_CONVOX_DEFAULT", json.dumps(connection))
        patch.setenv("CONVOX_POLL_INTERVAL", str(POLL_INTERVAL))
        try:
            yield emulator
        finally:
            emulator.stop()


_app_numbers = itertools.count(1)


@pytest.fixture
def app(rack: RackEmulator) -> SeededApp:
    """A new app (its own name per test) running a seeded release of the sample app."""
    name = f"e2e-{next(_app_numbers)}"
    rack.create_app(name)
    build, release = rack.add_release(name, MANIFEST, description="seed")
    return SeededApp(name, build["id"], release["id"])


@pytest.fixture(scope="session")
def example_dag(airflow_db: None, rack: RackEmulator) -> Callable[[str, str], Any]:
    """``example_dag(dag_id, mode)``: the DAG object of ``example_dags/<dag_id>.py``, with its
    operators built in ``mode`` (``sync`` or ``deferrable``, via ``CONVOX_DEFERRABLE``)."""
    from airflow.sdk import DAG

    loaded: dict[tuple[str, str], DAG] = {}

    def load(dag_id: str, mode: str) -> DAG:
        if (dag_id, mode) not in loaded:
            path = EXAMPLE_DAGS / f"{dag_id}.py"
            spec = importlib.util.spec_from_file_location(f"e2e_{dag_id}_{mode}", path)
            assert spec is not None
            assert spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("CONVOX_DEFERRABLE", str(mode == "deferrable").lower())
                spec.loader.exec_module(module)
            (dag,) = [v for v in vars(module).values() if isinstance(v, DAG)]
            assert dag.dag_id == dag_id
            loaded[dag_id, mode] = dag
        return loaded[dag_id, mode]

    return load
