"""Deploys as asset events, extra links and ``Convox-Actor``, under ``dag.test()`` in both modes.

``convox_deploy_asset`` deploys an app with ``rack=``; the asset event and its extra are read
back from the metadata DB, and so is the queue entry that makes the scheduler start
``convox_smoke_on_deploy`` (scheduled on the same URI, written by the consumer DAG itself).
``dag.test()`` does not run the scheduler, so the consumer's run is started here with
``dag.test()`` too; it reads the app back and checks it runs the deployed release. Every
request the deploy sent (build, log stream, promote, the polls of the deferred waits) carries
the task's actor.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from convox_provider.testing import RackEmulator

from .harness import EXAMPLE_DAGS, MANIFEST, MODES, SeededApp
from .test_example_dags import deferrals, exception_lines, task_states, xcoms

PRODUCER = "convox_deploy_asset"
CONSUMER = "convox_smoke_on_deploy"


def load(dag_id: str, mode: str, patch: pytest.MonkeyPatch, app: str, rack: str) -> Any:
    from airflow.sdk import DAG

    patch.setenv("CONVOX_ASSET_APP", app)
    patch.setenv("CONVOX_ASSET_RACK", rack)
    patch.setenv("CONVOX_DEFERRABLE", str(mode == "deferrable").lower())
    spec = importlib.util.spec_from_file_location(
        f"assets_{dag_id}_{mode}_{app}", EXAMPLE_DAGS / f"{dag_id}.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (dag,) = [v for v in vars(module).values() if isinstance(v, DAG)]
    return dag


def asset_events(uri: str) -> list[Any]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.uri == uri)
            .order_by(AssetEvent.id)
        )
        return [(row.source_task_id, row.source_run_id, dict(row.extra)) for row in rows]


def queued_for(dag_id: str, uri: str, *, clear: bool = False) -> int:
    from airflow.models.asset import AssetDagRunQueue, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        if clear:
            session.query(AssetDagRunQueue).filter_by(target_dag_id=dag_id).delete()
            return 0
        return (
            session.query(AssetDagRunQueue)
            .join(AssetModel, AssetDagRunQueue.asset_id == AssetModel.id)
            .filter(AssetDagRunQueue.target_dag_id == dag_id, AssetModel.uri == uri)
            .count()
        )


@pytest.fixture(scope="module")
def app(rack: RackEmulator) -> SeededApp:
    """One app for both modes: before Airflow 3.3, ``dag.test()`` writes a DAG's assets to the
    metadata DB only the first time it sees the DAG (apache/airflow#64884), so the asset URI
    (which names the app) must be the same in both runs."""
    name = "assets-demo"
    rack.create_app(name)
    build, release = rack.add_release(name, MANIFEST, description="seed")
    return SeededApp(name, build["id"], release["id"])


@pytest.mark.parametrize("mode", MODES)
def test_a_deploy_is_an_asset_event_that_queues_the_smoke_test(
    *,
    mode: str,
    app: SeededApp,
    rack: RackEmulator,
    airflow_db: None,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    host = f"{rack.host}:{rack.port}"
    uri = f"convox://{host}/{app.name}"
    producer = load(PRODUCER, mode, monkeypatch, app.name, host)
    consumer = load(CONSUMER, mode, monkeypatch, app.name, host)
    assert [outlet.uri for outlet in producer.get_task("deploy").outlets] == [uri]
    assert [asset.uri for asset in consumer.timetable.asset_condition.objects] == [uri]
    rack.requests.clear()
    queued_for(CONSUMER, uri, clear=True)

    run = producer.test(run_conf={"description": "release notes 1.2"})

    output = capfd.readouterr().out
    assert run.state == "success", exception_lines(output)
    pushed = xcoms(run)
    release_id, build_id = pushed["deploy", "return_value"], pushed["deploy", "build_id"]
    assert rack.app(app.name)["release"] == release_id
    # The asset event, read back from the metadata DB, with the deploy's extra.
    ((task_id, extra),) = [(t, x) for t, r, x in asset_events(uri) if r == run.run_id]
    assert task_id == "deploy"
    assert extra == {
        "app": app.name,
        "rack": host,
        "release_id": release_id,
        "build_id": build_id,
        "description": extra["description"],
        "rollback": False,
        "promoted": True,
    }
    assert extra["description"].startswith("release notes 1.2")
    # The scheduler would start the consumer: the event queued a run of it.
    assert queued_for(CONSUMER, uri) == 1
    # Links: a direct rack has no console pages; the app's service URL is known.
    (web_url,) = pushed["deploy", "service_urls"].values()
    assert set(pushed["deploy", "service_urls"]) == {"web"}
    assert web_url.startswith("https://web.")
    assert pushed["deploy", "_link_ConvoxServiceLink"] == pushed["deploy", "service_urls"]["web"]
    assert pushed["deploy", "_link_ConvoxBuildLink"] == ""
    assert pushed["deploy", "_link_ConvoxAppLink"] == ""
    # Every request of the deploy named the task, in both modes (also the deferred waits').
    actor = f"airflow:{PRODUCER}/{run.run_id}/deploy"
    records = list(rack.requests)
    assert records
    assert {record.header("Convox-Actor") for record in records} == {actor}
    assert all(rack.password not in (record.header("Convox-Actor") or "") for record in records)
    assert deferrals(caplog) == (2 if mode == "deferrable" else 0)

    smoke = consumer.test()

    assert smoke.state == "success", exception_lines(capfd.readouterr().out)
    assert task_states(smoke) == {"smoke": "success"}
    assert xcoms(smoke)["smoke", "return_value"]["release_id"] == release_id
