"""ConvoxBuildSensor against the rack emulator: poke true/false/fail, transient errors, deferral."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import PokeReturnValue
from airflow_compat import AirflowException, AirflowFailException, TaskDeferred
from convox_support import (
    APP,
    RecordingTI,
    connect,
    context,
    poke,
    run_trigger,
    sample_app,
    slow_builds,
)

from convox_provider.client.client import ConvoxClient
from convox_provider.client.errors import ConvoxAuthError, ConvoxForbiddenError, ConvoxNotFoundError
from convox_provider.sensors.builds import ConvoxBuildSensor
from convox_provider.testing import RackEmulator
from convox_provider.triggers.builds import ConvoxBuildTrigger


def build(client: ConvoxClient, tmp_path: Path) -> str:
    return client.builds.build_from_directory(APP, sample_app(tmp_path), wait=False).id


def sensor(build_id: str, **options: Any) -> ConvoxBuildSensor:
    return ConvoxBuildSensor(
        task_id="build_done", app=APP, build_id=build_id, poke_interval=0.02, **options
    )


def test_templated_fields() -> None:
    assert set(ConvoxBuildSensor.template_fields) == {"convox_conn_id", "app", "build_id"}


def test_poke_true_once_complete(rack: RackEmulator, client: ConvoxClient, tmp_path: Path) -> None:
    build_id = build(client, tmp_path)
    ti = RecordingTI()
    done = poke(sensor(build_id), context(ti))
    release = client.builds.get(APP, build_id).release
    assert isinstance(done, PokeReturnValue)
    assert (done.is_done, done.xcom_value) == (True, release)
    assert ti.pushed == [("release_id", release)]


def test_poke_false_while_running(rack: RackEmulator, client: ConvoxClient, tmp_path: Path) -> None:
    slow_builds(rack, 60)
    ti = RecordingTI()
    assert poke(sensor(build(client, tmp_path)), context(ti)) is False
    assert ti.pushed == []


def test_poke_fails_fast_on_a_failed_build_with_the_log_tail(
    rack: RackEmulator, client: ConvoxClient, tmp_path: Path
) -> None:
    rack.scripts.fail_next_build("tests failed")
    build_id = build(client, tmp_path)
    with pytest.raises(AirflowFailException, match="tests failed") as failure:
        poke(sensor(build_id), context())
    assert "Last lines of the build log:\nBuilding: ." in str(failure.value)


@pytest.mark.parametrize("status", [502, 503, 504, 429])
def test_poke_tolerates_a_transient_error(
    rack: RackEmulator, client: ConvoxClient, tmp_path: Path, status: int
) -> None:
    build_id = build(client, tmp_path)
    rack.faults.respond("GET", f"/apps/{APP}/builds/{build_id}", status, retry_after=0)
    assert poke(sensor(build_id), context()) is False
    assert poke(sensor(build_id), context())  # the next poke sees the complete build


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, ConvoxAuthError), (403, ConvoxForbiddenError), (404, ConvoxNotFoundError)],
)
def test_poke_fails_on_auth_and_not_found(
    rack: RackEmulator, status: int, error: type[Exception]
) -> None:
    rack.faults.respond("GET", f"/apps/{APP}/builds/BSOMEBUILD", status)
    with pytest.raises(error):
        poke(sensor("BSOMEBUILD"), context())


def test_unknown_build_fails(rack: RackEmulator) -> None:
    with pytest.raises(ConvoxNotFoundError):
        poke(sensor("BNOSUCHONE"), context())


def test_wrong_key_fails(rack: RackEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, rack, password="not-the-password")
    with pytest.raises(ConvoxAuthError):
        poke(sensor("BSOMEBUILD"), context())


def test_execute_pokes_until_complete(
    rack: RackEmulator, client: ConvoxClient, tmp_path: Path
) -> None:
    slow_builds(rack, 0.2)
    build_id = build(client, tmp_path)
    ti = RecordingTI()
    assert sensor(build_id, timeout=10).execute(context(ti)) == ti.xcoms["release_id"]
    assert client.builds.get(APP, build_id).status == "complete"


def test_deferrable_pokes_once_then_defers(
    rack: RackEmulator, client: ConvoxClient, tmp_path: Path
) -> None:
    slow_builds(rack, 0.3)
    build_id = build(client, tmp_path)
    op = sensor(build_id, deferrable=True, timeout=600)
    rack.requests.clear()
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context())
    assert rack.requests.count("GET", f"/apps/{APP}/builds/{build_id}") == 1
    trigger = deferred.value.trigger
    assert isinstance(trigger, ConvoxBuildTrigger)
    assert (trigger.build_id, trigger.poll_interval) == (build_id, 0.02)
    assert before + 600 <= trigger.end_time <= time.time() + 600
    (event,) = run_trigger(trigger)
    ti = RecordingTI()
    assert op.execute_complete(context(ti), event=event) == event["release_id"]
    assert ti.pushed == [("release_id", event["release_id"])]


def test_deferrable_does_not_defer_a_complete_build(
    rack: RackEmulator, client: ConvoxClient, tmp_path: Path
) -> None:
    build_id = build(client, tmp_path)
    ti = RecordingTI()
    assert sensor(build_id, deferrable=True).execute(context(ti)) == ti.xcoms["release_id"]


def test_execute_complete_failed_and_missing_events() -> None:
    op = sensor("B1")
    with pytest.raises(AirflowFailException, match="boom"):
        op.execute_complete(context(), event={"status": "failed", "message": "boom"})
    with pytest.raises(AirflowException, match="without a trigger event"):
        op.execute_complete(context(), event=None)
    with pytest.raises(AirflowException, match="has no release_id"):
        op.execute_complete(context(), event={"status": "success", "build_id": "B1"})
