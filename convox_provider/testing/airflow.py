"""Airflow set-up for users' DAG tests against the rack emulator (``convox_airflow`` fixture).

``dag.test()`` needs a migrated metadata DB and the DAG in ``[core] dags_folder`` (otherwise:
*the dag is not serialized*). Airflow reads its configuration when first imported, so
:func:`isolate_airflow` must run before that: the pytest plugin calls it when the ini option
``convox_dags_folder`` is set, or a ``conftest.py`` calls it at its top. Importing this module
never imports Airflow.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .emulator import RackEmulator

__all__ = ["ISOLATED", "connection_uri", "isolate_airflow", "pointed_at"]

ISOLATED = "CONVOX_TESTING_AIRFLOW_HOME"
"""Set (to the temporary ``AIRFLOW_HOME``) once :func:`isolate_airflow` ran in this process."""


def isolate_airflow(dags_folder: str | os.PathLike[str]) -> Path:
    """Point Airflow at a new temporary ``AIRFLOW_HOME`` (removed at exit) with ``[core]
    dags_folder`` on ``dags_folder``, Airflow's example DAGs off and unit-test mode on; return
    the home. Call it before Airflow is imported."""
    if "airflow.configuration" in sys.modules:
        raise RuntimeError(
            "isolate_airflow() must run before Airflow is imported (Airflow reads its settings "
            "once): set the ini option convox_dags_folder, or call it at the top of conftest.py"
        )
    folder = Path(dags_folder).resolve()
    if not folder.is_dir():
        raise ValueError(f"convox_dags_folder: no directory at {str(folder)!r}")
    home = tempfile.mkdtemp(prefix="convox-airflow-")
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    os.environ.update(
        {
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__DAGS_FOLDER": str(folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
            ISOLATED: home,
        }
    )
    return Path(home)


def connection_uri(rack: RackEmulator) -> str:
    """The Airflow connection of ``rack`` as JSON (``AIRFLOW_CONN_<ID>``'s value)."""
    return json.dumps({"conn_type": "convox", "host": rack.url, "password": rack.password})


@contextmanager
def pointed_at(rack: RackEmulator, conn_id: str = "convox_default") -> Iterator[str]:
    """Define the Airflow connection ``conn_id`` as ``rack`` (``AIRFLOW_CONN_<ID>``) for the
    duration; what it was before is restored afterwards."""
    name = f"AIRFLOW_CONN_{conn_id.upper()}"
    before = os.environ.get(name)
    os.environ[name] = connection_uri(rack)
    try:
        yield conn_id
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before
