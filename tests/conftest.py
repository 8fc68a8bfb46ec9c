"""Test-session setup that must happen before Airflow is imported.

Airflow reads its configuration when first imported, so every test process gets its own empty
``AIRFLOW_HOME`` here (one per xdist worker; never the developer's real one), Airflow's own
example DAGs off and ``[core] dags_folder`` on this repository's ``example_dags/``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

if "airflow.configuration" in sys.modules:
    raise RuntimeError(
        "Airflow was imported before tests/conftest.py could point AIRFLOW_HOME at a temporary "
        "directory; a pytest plugin must not import Airflow at load time"
    )

_worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
_airflow_home = tempfile.mkdtemp(prefix=f"convox-airflow-{_worker}-")
atexit.register(shutil.rmtree, _airflow_home, ignore_errors=True)

os.environ["AIRFLOW_HOME"] = _airflow_home
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
# dag.test() finds DAGs through the dags-folder bundle: the example DAGs (tests/e2e) are the DAGs.
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "example_dags"
)
