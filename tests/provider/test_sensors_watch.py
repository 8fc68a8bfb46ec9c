"""ConvoxProcessSensor and ConvoxAppSensor against the rack emulator, poked and deferred."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from airflow_compat import AirflowFailException, TaskDeferred
from convox_support import (
    APP,
    FAST,
    MANIFEST,
    RecordingTI,
    connect,
    context,
    run_trigger,
    seed,
    wait_until,
)

from convox_provider.client.client import ConvoxClient
from convox_provider.client.errors import ConvoxInputError
from convox_provider.sensors.apps import ConvoxAppSensor
from convox_provider.sensors.processes import PROCESS_POKE_INTERVAL, ConvoxProcessSensor
from convox_provider.testing import RackEmulator, Timing
from convox_provider.triggers.apps import ConvoxAppTrigger
from convox_provider.triggers.processes import ConvoxProcessTrigger

RackFactory = Callable[..., RackEmulator]


@pytest.fixture
def make_rack(convox_rack_factory: RackFactory, monkeypatch: pytest.MonkeyPatch) -> RackFactory:
    def make(**timing: float) -> RackEmulator:
        rack = convox_rack_factory(timing=Timing(**timing))
        connect(monkeypatch, rack)
        seed(rack)
        return rack

    return make


def start(rack: RackEmulator, command: str) -> str:
    """A detached one-off process, as ``convox run --detach`` starts one."""
    with ConvoxClient(rack.url, "password") as client:
        return client.processes.run(APP, "web", command=command).id


def process_sensor(pid: str, **options: Any) -> ConvoxProcessSensor:
    options.setdefault("poke_interval", FAST)
    return ConvoxProcessSensor(task_id="ended", app=APP, process_id=pid, timeout=30, **options)


def run(sensor: Any) -> tuple[Any, dict[str, Any]]:
    """Execute the sensor, then each deferral's trigger and resume method; result and XComs."""
    ti = RecordingTI()
    try:
        return sensor.execute(context(ti)), ti.xcoms
    except TaskDeferred as deferred:
        payload = json.loads(json.dumps(deferred.trigger.serialize()[1]))
        again = type(deferred.trigger)(**payload)  # as the triggerer stores it
        (event,) = run_trigger(again)
        return getattr(sensor, deferred.method_name)(context(ti), event=event), ti.xcoms


# --- processes -----------------------------------------------------------------------------------


def test_process_sensor_defaults_and_templates() -> None:
    sensor = ConvoxProcessSensor(task_id="p", app=APP, process_id="web-1")
    assert sensor.poke_interval == PROCESS_POKE_INTERVAL < 5  # the rack keeps a pod ~5 s
    assert set(sensor.template_fields) == {"convox_conn_id", "app", "process_id"}


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferred"])
def test_a_process_that_exits_0(make_rack: RackFactory, deferrable: bool) -> None:
    rack = make_rack(process_start=0.05)
    rack.scripts.on_command("bin/job", exit_code=0, duration=0.2)
    pid = start(rack, "bin/job")
    result, xcoms = run(process_sensor(pid, deferrable=deferrable))
    assert result == {"process_id": pid, "status": "complete", "exit_code": 0}
    assert xcoms == {"exit_code": 0, "process_status": "complete"}


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferred"])
def test_a_nonzero_exit_fails_unless_allowed(make_rack: RackFactory, deferrable: bool) -> None:
    rack = make_rack()
    rack.scripts.on_command("bin/job", exit_code=3, duration=0.2)
    pid = start(rack, "bin/job")
    with pytest.raises(AirflowFailException, match=f"process {pid} of app demo failed: .*non-zero"):
        run(process_sensor(pid, deferrable=deferrable))

    other = start(rack, "bin/job")
    result, xcoms = run(process_sensor(other, allow_failure=True, deferrable=deferrable))
    assert result == {"process_id": other, "status": "failed", "exit_code": None}
    assert xcoms["exit_code"] is None


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferred"])
def test_a_process_gone_has_an_unknown_outcome(make_rack: RackFactory, deferrable: bool) -> None:
    rack = make_rack(reap=0.0)  # finished pods vanish at once
    rack.scripts.on_command("bin/job", duration=0.0)
    pid = start(rack, "bin/job")
    wait_until(lambda: pid not in {p["id"] for p in rack.processes(APP)})
    with pytest.raises(AirflowFailException, match=f"process {pid} of app demo is gone: .*5 s"):
        run(process_sensor(pid, deferrable=deferrable))
    result, _ = run(process_sensor(pid, allow_gone=True, deferrable=deferrable))
    assert result == {"process_id": pid, "status": "gone", "exit_code": None}


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferred"])
def test_waiting_for_a_status(make_rack: RackFactory, deferrable: bool) -> None:
    rack = make_rack(process_start=0.2)
    pid = start(rack, "sleep 30")
    assert rack.state.process_get(APP, pid)["status"] == "pending"
    result, _ = run(process_sensor(pid, statuses="running", deferrable=deferrable))
    assert result["status"] == "running"
    assert result["exit_code"] is None

    rack.scripts.on_command("bin/quick", duration=0.0)
    quick = start(rack, "bin/quick")
    wait_until(lambda: rack.state.process_get(APP, quick)["status"] == "complete")
    with pytest.raises(AirflowFailException, match="ended \\(complete\\) before it was unhealthy"):
        run(process_sensor(quick, statuses=["unhealthy"], deferrable=deferrable))


def test_an_unknown_status_is_refused_before_any_request(make_rack: RackFactory) -> None:
    rack = make_rack()
    rack.requests.clear()
    with pytest.raises(ConvoxInputError, match="invalid process status 'finished': give one"):
        run(process_sensor("web-1", statuses=["finished"]))
    assert list(rack.requests) == []


def test_the_trigger_serializes_its_options() -> None:
    trigger = ConvoxProcessTrigger(
        "c", APP, "web-1", 1_900_000_000.0, statuses=["running", "crashed"], accept=["gone"]
    )
    _, kwargs = trigger.serialize()
    assert (kwargs["statuses"], kwargs["accept"]) == (["crashed", "running"], ["gone"])
    assert ConvoxProcessTrigger(**json.loads(json.dumps(kwargs))).serialize()[1] == kwargs


# --- apps ----------------------------------------------------------------------------------------


def app_sensor(**options: Any) -> ConvoxAppSensor:
    options.setdefault("poke_interval", FAST)
    return ConvoxAppSensor(task_id="idle", app=APP, timeout=30, **options)


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferred"])
def test_the_app_running_after_a_rollout(make_rack: RackFactory, deferrable: bool) -> None:
    rack = make_rack(rollout=0.3)
    new = rack.add_release(APP, MANIFEST, promote=False)[1]["id"]
    with ConvoxClient(rack.url, "password") as client:
        client.releases.submit_promote(APP, new)
    assert rack.app(APP)["status"] == "updating"
    result, xcoms = run(app_sensor(deferrable=deferrable))
    assert result == new == rack.app(APP)["release"]
    assert xcoms == {"release_id": new}


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferred"])
def test_waiting_for_someone_to_deploy_a_release(make_rack: RackFactory, deferrable: bool) -> None:
    rack = make_rack()
    new = rack.add_release(APP, MANIFEST, promote=False)[1]["id"]
    sensor = app_sensor(release_id=new, deferrable=deferrable)
    ti = RecordingTI()
    if deferrable:
        with pytest.raises(TaskDeferred) as deferred:
            sensor.execute(context(ti))
        trigger = deferred.value.trigger
        assert isinstance(trigger, ConvoxAppTrigger)
        assert trigger.release_id == new
    else:
        assert sensor.poke(context(ti)) is False  # the app runs another release: not yet
    with ConvoxClient(rack.url, "password") as client:
        client.releases.promote(APP, new, poll_interval=FAST, initial_delay=0)
    if deferrable:
        (event,) = run_trigger(trigger)
        assert sensor.execute_complete(context(ti), event=event) == new
    else:
        assert sensor.execute(context(ti)) == new


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferred"])
def test_an_older_release_than_the_active_one_fails(
    make_rack: RackFactory, deferrable: bool
) -> None:
    rack = make_rack()
    old = rack.releases(APP)[0]["id"]
    newer = rack.add_release(APP, MANIFEST)[1]["id"]
    with pytest.raises(
        AirflowFailException, match=f"runs release {newer}, created after release {old}"
    ):
        run(app_sensor(release_id=old, deferrable=deferrable))


def test_an_app_being_deleted_fails(make_rack: RackFactory) -> None:
    rack = make_rack(app_delete=30)
    with ConvoxClient(rack.url, "password") as client:
        client.apps.delete(APP)
    started = time.monotonic()
    with pytest.raises(AirflowFailException, match="app demo is being deleted"):
        run(app_sensor())
    assert time.monotonic() - started < 5
