"""ConvoxReleaseSensor against the rack emulator: poke true/false/fail, errors, deferral."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from airflow.sdk import PokeReturnValue
from airflow_compat import AirflowException, AirflowFailException, TaskDeferred
from convox_support import APP, MANIFEST, connect, context, poke, run_trigger, seed, wait_until

from convox_provider.client.client import ConvoxClient
from convox_provider.client.errors import ConvoxAuthError, ConvoxForbiddenError, ConvoxNotFoundError
from convox_provider.sensors.releases import ConvoxReleaseSensor
from convox_provider.testing import RackEmulator, Timing
from convox_provider.triggers.releases import ConvoxReleaseTrigger

Promoted = tuple[RackEmulator, str, str]


@pytest.fixture
def promoted(
    convox_rack_factory: Callable[..., RackEmulator], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Promoted]:
    """App ``demo`` on release R1 with R2 promoted; rollouts take ``rollout`` seconds."""

    def make(rollout: float = 0.0, *, fail: bool = False, app_delete: float = 0.0) -> Promoted:
        rack = convox_rack_factory(timing=Timing(rollout=rollout, app_delete=app_delete))
        connect(monkeypatch, rack)
        (first,) = seed(rack)
        second = str(rack.add_release(APP, MANIFEST, promote=False)[1]["id"])
        if fail:
            rack.scripts.fail_next_promote(APP)
        with ConvoxClient(rack.url, "password") as client:
            client.releases.submit_promote(APP, second)
        return rack, first, second

    return make


def sensor(release_id: str, **options: Any) -> ConvoxReleaseSensor:
    options.setdefault("poke_interval", 0.02)
    return ConvoxReleaseSensor(task_id="live", app=APP, release_id=release_id, **options)


def test_templated_fields() -> None:
    assert set(ConvoxReleaseSensor.template_fields) == {"convox_conn_id", "app", "release_id"}


def test_poke_true_when_running_on_the_release(promoted: Callable[..., Promoted]) -> None:
    _, _, second = promoted()
    done = poke(sensor(second), context())
    assert isinstance(done, PokeReturnValue)
    assert (done.is_done, done.xcom_value) == (True, second)


def test_poke_false_while_updating(promoted: Callable[..., Promoted]) -> None:
    rack, _, second = promoted(rollout=60)
    assert rack.app(APP)["status"] == "updating"
    assert poke(sensor(second), context()) is False


def test_poke_false_while_a_newer_release_is_not_yet_promoted(
    promoted: Callable[..., Promoted],
) -> None:
    rack, _, second = promoted()
    third = str(rack.add_release(APP, MANIFEST, promote=False)[1]["id"])
    assert rack.app(APP)["release"] == second
    live = sensor(third)
    assert poke(live, context()) is False
    assert poke(live, context()) is False


def test_poke_fails_for_a_release_older_than_the_active_one(
    promoted: Callable[..., Promoted],
) -> None:
    _, first, second = promoted()
    with pytest.raises(AirflowFailException) as failure:
        poke(sensor(first), context())
    assert f"Release {first} of app demo is older than the active release {second}" in str(
        failure.value
    )


def test_poke_fails_on_a_rollback_finished_between_pokes(
    promoted: Callable[..., Promoted],
) -> None:
    rack, first, second = promoted(rollout=0.2, fail=True)
    live = sensor(second)
    assert poke(live, context()) is False  # updating on the release: the rollout has started
    wait_until(lambda: rack.app(APP)["status"] == "running")
    assert rack.app(APP)["release"] == first
    with pytest.raises(AirflowFailException) as failure:
        poke(live, context())
    assert f"Release {second} of app demo was rolled back" in str(failure.value)
    assert f"back on release {first}" in str(failure.value)


def test_execute_fails_on_a_rollback_instead_of_timing_out(
    promoted: Callable[..., Promoted],
) -> None:
    _, first, second = promoted(rollout=0.1, fail=True)
    live = sensor(second, timeout=30, poke_interval=0.5)  # the rollback ends between pokes
    started = time.monotonic()
    with pytest.raises(AirflowFailException, match=f"back on release {first}"):
        live.execute(context())
    assert time.monotonic() - started < 5


class MemoryStore:
    """A task state store: what a rescheduled sensor keeps between its runs."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value


def test_rescheduled_sensor_remembers_the_rollout_in_the_state_store(
    promoted: Callable[..., Promoted],
) -> None:
    rack, first, second = promoted(rollout=0.2, fail=True)
    store = MemoryStore()
    ctx = {**context(), "task_state_store": store}
    assert poke(sensor(second, mode="reschedule"), ctx) is False
    assert set(store.values.values()) == {second}
    wait_until(lambda: rack.app(APP)["status"] == "running")
    with pytest.raises(AirflowFailException, match=f"back on release {first}"):
        poke(sensor(second, mode="reschedule"), ctx)  # a new instance, as after a reschedule


def test_rescheduled_sensor_without_a_state_store_cannot_tell(
    promoted: Callable[..., Promoted],
) -> None:
    rack, first, second = promoted(rollout=0.2, fail=True)
    assert poke(sensor(second, mode="reschedule"), context()) is False
    wait_until(lambda: rack.app(APP)["status"] == "running")
    assert rack.app(APP)["release"] == first
    assert poke(sensor(second, mode="reschedule"), context()) is False


def test_poke_mode_keeps_nothing_in_the_state_store(promoted: Callable[..., Promoted]) -> None:
    _, _, second = promoted(rollout=60)
    store = MemoryStore()
    assert poke(sensor(second), {**context(), "task_state_store": store}) is False
    assert store.values == {}


def test_poke_fails_fast_on_rollback(promoted: Callable[..., Promoted]) -> None:
    rack, first, second = promoted(rollout=60)
    with ConvoxClient(rack.url, "password") as client:
        client.apps.cancel(APP)
    assert rack.app(APP)["status"] == "rollback"
    with pytest.raises(AirflowFailException) as failure:
        poke(sensor(second), context())
    assert f"Release {second} of app demo was rolled back" in str(failure.value)
    assert f"back on release {first}" in str(failure.value)


@pytest.mark.parametrize("status", [502, 503])
def test_poke_tolerates_a_transient_error(promoted: Callable[..., Promoted], status: int) -> None:
    rack, _, second = promoted()
    rack.faults.respond("GET", f"/apps/{APP}", status)
    assert poke(sensor(second), context()) is False
    assert poke(sensor(second), context())


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, ConvoxAuthError), (403, ConvoxForbiddenError), (404, ConvoxNotFoundError)],
)
def test_poke_fails_on_auth_and_not_found(
    promoted: Callable[..., Promoted], status: int, error: type[Exception]
) -> None:
    rack, _, second = promoted()
    rack.faults.respond("GET", f"/apps/{APP}", status)
    with pytest.raises(error):
        poke(sensor(second), context())


def test_unknown_app_fails(promoted: Callable[..., Promoted]) -> None:
    promoted()
    with pytest.raises(ConvoxNotFoundError):
        poke(ConvoxReleaseSensor(task_id="x", app="nosuchapp", release_id="R1"), context())


def test_deleting_app_fails(promoted: Callable[..., Promoted]) -> None:
    rack, _, second = promoted(app_delete=60)
    with ConvoxClient(rack.url, "password") as client:
        client.apps.delete(APP)
    assert rack.app(APP)["status"] == "deleting"
    with pytest.raises(AirflowException, match="being deleted"):
        poke(sensor(second), context())


def test_execute_pokes_until_running(promoted: Callable[..., Promoted]) -> None:
    _, _, second = promoted(rollout=0.2)
    assert sensor(second, timeout=10).execute(context()) == second


def test_deferrable_pokes_once_then_defers(promoted: Callable[..., Promoted]) -> None:
    _, _, second = promoted(rollout=0.2)
    op = sensor(second, deferrable=True, timeout=300)
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, ConvoxReleaseTrigger)
    assert (trigger.release_id, trigger.poll_interval, trigger.initial_delay) == (second, 0.02, 0)
    assert before + 300 <= trigger.end_time <= time.time() + 300
    (event,) = run_trigger(trigger)
    assert op.execute_complete(context(), event=event) == second


def test_deferred_rollback_fails_the_sensor(promoted: Callable[..., Promoted]) -> None:
    _, first, second = promoted(rollout=0.2, fail=True)
    op = sensor(second, deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context())
    (event,) = run_trigger(deferred.value.trigger)
    with pytest.raises(AirflowFailException, match=f"back on release {first}"):
        op.execute_complete(context(), event=event)


def test_deferrable_does_not_defer_when_already_running(
    promoted: Callable[..., Promoted],
) -> None:
    _, _, second = promoted()
    assert sensor(second, deferrable=True).execute(context()) == second
