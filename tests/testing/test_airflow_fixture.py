"""The ``convox_airflow`` fixture, as a user's project uses it (a pytest run of its own).

Run in a subprocess: Airflow is configured once per process, and this suite's own Airflow is
configured by tests/conftest.py already.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

DAG_FILE = """
from airflow.sdk import DAG
from convox_provider.operators.releases import ConvoxPromoteReleaseOperator

with DAG("promote_shop", schedule=None) as dag:
    ConvoxPromoteReleaseOperator(task_id="promote", app="shop", poll_interval=0.05)
"""

ACROSS_FILE = """
from airflow.sdk import DAG
from convox_provider.operators.builds import ConvoxCopyBuildOperator

with DAG("ship_shop", schedule=None, params={"build_id": ""}) as dag:
    ConvoxCopyBuildOperator(
        task_id="ship",
        source_conn_id="convox_staging",
        source_app="shop",
        build_id="{{ params.build_id }}",
        target_conn_id="convox_production",
        promote=True,
        poll_interval=0.05,
    )
"""

TEST_FILE = """
from dags.promote_shop import dag

MANIFEST = "services:\\n  web:\\n    build: .\\n    port: 3000\\n"


def test_promote_dag(convox_airflow):
    convox_airflow.rack.create_app("shop")
    _, release = convox_airflow.rack.add_release("shop", MANIFEST, promote=False)
    run = dag.test()
    assert run.state == "success"
    assert convox_airflow.rack.app("shop")["release"] == release["id"]


def test_two_racks(convox_airflow):
    from dags.ship_shop import dag as ship

    staging = convox_airflow.add_rack("convox_staging")
    production = convox_airflow.add_rack("convox_production")
    assert len({convox_airflow.rack.url, staging.url, production.url}) == 3
    assert convox_airflow.racks == {
        "convox_default": convox_airflow.rack,
        "convox_staging": staging,
        "convox_production": production,
    }
    staging.create_app("shop")
    production.create_app("shop")
    build, _ = staging.add_release("shop", MANIFEST)
    run = ship.test(run_conf={"build_id": build["id"]})
    assert run.state == "success"
    (copied,) = production.builds("shop")
    assert production.app("shop")["release"] == copied["release"]
    assert convox_airflow.rack.requests.count("GET", "/apps/shop") == 0


def test_another_connection_id(convox_airflow):
    import os
    assert convox_airflow.connect("rack_b") == "rack_b"
    assert os.environ["AIRFLOW_CONN_RACK_B"] == os.environ["AIRFLOW_CONN_CONVOX_DEFAULT"]
"""


def _run_pytest(project: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CONVOX_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(project)])
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(project)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_users_dag_test_is_three_lines(tmp_path: Path) -> None:
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "__init__.py").write_text("")
    (tmp_path / "dags" / "promote_shop.py").write_text(DAG_FILE)
    (tmp_path / "dags" / "ship_shop.py").write_text(ACROSS_FILE)
    (tmp_path / "test_user.py").write_text(textwrap.dedent(TEST_FILE))
    (tmp_path / "pytest.ini").write_text("[pytest]\nconvox_dags_folder = dags\n")
    done = _run_pytest(tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "3 passed" in done.stdout


def test_without_the_dags_folder_the_fixture_says_what_to_set(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text("def test_it(convox_airflow):\n    pass\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    done = _run_pytest(tmp_path)
    assert done.returncode != 0
    assert "set the ini option convox_dags_folder" in done.stdout + done.stderr
