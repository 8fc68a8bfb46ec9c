"""ConvoxCreateAppOperator, ConvoxDeleteAppOperator and ConvoxRestartOperator against the rack
emulator, in the worker and deferred; their triggers' serialization; retries (durability)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from airflow.sdk import DAG
from airflow_compat import TaskDeferred
from convox_support import APP, FAST, RecordingTI, connect, context, run_trigger, seed

from convox_provider.client.errors import (
    ConvoxConflictError,
    ConvoxGatewayError,
    ConvoxInputError,
    ConvoxNotFoundError,
)
from convox_provider.client.workflows.apps import MARKER_CONFIG
from convox_provider.operators.apps import (
    ConvoxCreateAppOperator,
    ConvoxDeleteAppOperator,
    ConvoxRestartOperator,
)
from convox_provider.testing import RackEmulator, Timing
from convox_provider.triggers.apps import (
    ConvoxAppDeletedTrigger,
    ConvoxAppRunningTrigger,
    ConvoxRestartTrigger,
)

RackFactory = Callable[..., RackEmulator]
NEW = "pr-42"


class StateStore(dict[str, Any]):
    """Airflow 3.3's task state store, kept across tries."""

    def set(self, key: str, value: Any) -> None:
        self[key] = value


class TaskInstance(RecordingTI):
    def __init__(self) -> None:
        super().__init__()
        self.dag_id, self.task_id, self.run_id, self.map_index = "review", "create", "pr-42", -1


def attempt(store: StateStore | None) -> dict[str, Any]:
    ctx: dict[str, Any] = {"ti": TaskInstance()}
    if store is not None:
        ctx["task_state_store"] = store
    return ctx


@pytest.fixture
def make_rack(convox_rack_factory: RackFactory, monkeypatch: pytest.MonkeyPatch) -> RackFactory:
    def make(**timing: float) -> RackEmulator:
        rack = convox_rack_factory(timing=Timing(**timing))
        connect(monkeypatch, rack)
        return rack

    return make


@pytest.fixture
def rack(make_rack: RackFactory) -> RackEmulator:
    return make_rack()


def create_op(**options: Any) -> ConvoxCreateAppOperator:
    return ConvoxCreateAppOperator(task_id="create", app=NEW, poll_interval=FAST, **options)


def delete_op(**options: Any) -> ConvoxDeleteAppOperator:
    return ConvoxDeleteAppOperator(task_id="delete", app=NEW, poll_interval=FAST, **options)


def restart_op(**options: Any) -> ConvoxRestartOperator:
    return ConvoxRestartOperator(task_id="restart", app=APP, poll_interval=FAST, **options)


def resume(op: Any, ctx: dict[str, Any], method: str = "execute") -> Any:
    """Run ``method``, then each trigger it defers to and the method it names, to the end."""
    step = getattr(op, method)
    kwargs: dict[str, Any] = {}
    deferrals = 0
    while True:
        try:
            return step(ctx, **kwargs), deferrals
        except TaskDeferred as deferred:
            deferrals += 1
            (event,) = run_trigger(deferred.trigger)
            step, kwargs = getattr(op, deferred.method_name), {"event": event}


class TestCreate:
    def test_creates_and_waits_for_running(self, make_rack: RackFactory) -> None:
        rack = make_rack(rollout=0.1)
        assert create_op().execute(context()) == NEW
        assert rack.app(NEW)["status"] == "running"

    def test_an_existing_app_fails_unless_exists_ok(self, rack: RackEmulator) -> None:
        rack.create_app(NEW)
        with pytest.raises(ConvoxConflictError, match=r"app already exists: pr-42.*exists_ok"):
            create_op().execute(context())
        assert rack.requests.count("POST", "/apps") == 0
        assert create_op(exists_ok=True).execute(context()) == NEW

    def test_lock_and_parameters_are_set_once_it_runs(self, make_rack: RackFactory) -> None:
        rack = make_rack(rollout=0.05)
        create_op(lock=True, parameters={"BuildMem": "1024"}).execute(context())
        found = rack.app(NEW)
        assert (found["status"], found["locked"], found["parameters"]["BuildMem"]) == (
            "running",
            True,
            "1024",
        )

    def test_settings_need_the_wait(self) -> None:
        with pytest.raises(ValueError, match="need wait_for_completion=True"):
            create_op(lock=True, wait_for_completion=False)

    def test_deferred_create_then_settings_defer_twice(self, make_rack: RackFactory) -> None:
        rack = make_rack(rollout=0.2)
        result, deferrals = resume(create_op(deferrable=True, lock=True), context())
        assert (result, deferrals) == (NEW, 2)
        assert (rack.app(NEW)["status"], rack.app(NEW)["locked"]) == ("running", True)
        assert rack.requests.count("POST", "/apps") == 1
        assert rack.requests.count("PUT", f"/apps/{NEW}") == 1

    def test_a_retry_re_attaches_to_the_app_its_previous_try_created(
        self, make_rack: RackFactory
    ) -> None:
        """The first try's create answer is lost (504 after the rack created the app)."""
        rack = make_rack(rollout=0.1)
        rack.faults.respond("POST", "/apps", 504, after_handler=True)
        store = StateStore()
        with pytest.raises(ConvoxGatewayError):
            create_op().execute(attempt(store))  # created, but the marker was never written
        assert rack.app(NEW)["name"] == NEW
        assert store == {"app_create": NEW}
        assert create_op().execute(attempt(store)) == NEW
        assert rack.requests.count("POST", "/apps") == 1
        other_run = attempt(None)
        other_run["ti"].run_id = "pr-43"
        with pytest.raises(ConvoxConflictError):  # another task instance's marker
            create_op().execute(other_run)

    def test_a_retry_without_a_state_store_finds_its_marker(self, make_rack: RackFactory) -> None:
        rack = make_rack(rollout=0.1)

        class Lost(Exception):
            pass

        op = create_op()
        progress = op._progress

        def dying(ctx: Any) -> Callable[[Any], None]:
            record = progress(ctx)

            def on_event(event: Any) -> None:
                record(event)
                if type(event).__name__ == "AppStatusChanged":
                    raise Lost  # the worker dies in the middle of the wait

            return on_event

        op._progress = dying  # type: ignore[method-assign]
        with pytest.raises(Lost):
            op.execute(attempt(None))
        assert rack.state.config_get(NEW, MARKER_CONFIG)["value"].startswith("airflow-")
        assert create_op().execute(attempt(None)) == NEW
        assert rack.requests.count("POST", "/apps") == 1

    @pytest.mark.parametrize(
        ("name", "problem"),
        [("pr/1", "cannot contain '/'"), ("..", "'..'"), ("PR-1", "lowercase"), ("pr-", "end")],
    )
    def test_bad_names_are_refused_before_any_request(
        self, rack: RackEmulator, name: str, problem: str
    ) -> None:
        with pytest.raises(ConvoxInputError, match=problem):
            ConvoxCreateAppOperator(task_id="create", app=name).execute(context())
        assert len(rack.requests) == 0


class TestDelete:
    def test_deletes_and_waits_until_gone(self, make_rack: RackFactory) -> None:
        rack = make_rack(app_delete=0.1)
        rack.create_app(NEW)
        assert delete_op().execute(context()) is True
        assert NEW not in [a["name"] for a in rack.state.app_list()]

    def test_deferred(self, make_rack: RackFactory) -> None:
        rack = make_rack(app_delete=0.2)
        rack.create_app(NEW)
        result, deferrals = resume(delete_op(deferrable=True), context())
        assert (result, deferrals) == (True, 1)
        assert rack.requests.count("DELETE", f"/apps/{NEW}") == 1

    def test_a_locked_app_is_refused_before_the_delete(self, rack: RackEmulator) -> None:
        rack.create_app(NEW)
        rack.state.app_update(NEW, lock=True, parameters=None)
        with pytest.raises(ConvoxConflictError, match=r"app is locked: pr-42.*[Uu]nlock it"):
            delete_op().execute(context())
        assert rack.requests.count("DELETE", f"/apps/{NEW}") == 0

    def test_missing(self, rack: RackEmulator) -> None:
        with pytest.raises(ConvoxNotFoundError, match=r"app not found: pr-42.*missing_ok=True"):
            delete_op().execute(context())
        assert delete_op(missing_ok=True).execute(context()) is False

    def test_a_retry_after_the_app_is_gone_succeeds(self, make_rack: RackFactory) -> None:
        rack = make_rack(app_delete=0.3)
        rack.create_app(NEW)
        store = StateStore()
        with pytest.raises(TaskDeferred):  # the first try is lost while deferred
            delete_op(deferrable=True).execute(attempt(store))
        time.sleep(0.4)
        assert delete_op().execute(attempt(store)) is True
        assert rack.requests.count("DELETE", f"/apps/{NEW}") == 1

    def test_works_as_a_teardown(self) -> None:
        with DAG("review", schedule=None):
            teardown = delete_op(missing_ok=True).as_teardown()
        assert teardown.is_teardown
        assert teardown.trigger_rule == "all_done_setup_success"


class TestRestart:
    def test_restarts_every_service_and_waits(self, make_rack: RackFactory) -> None:
        rack = make_rack(process_start=0.1)
        seed(rack)
        before = {p["id"] for p in rack.processes(APP)}
        assert restart_op().execute(context()) == ["web"]
        after = rack.processes(APP)
        assert after
        assert before.isdisjoint(p["id"] for p in after)

    def test_deferred(self, make_rack: RackFactory) -> None:
        rack = make_rack(process_start=0.2)
        seed(rack)
        result, deferrals = resume(restart_op(service="web", deferrable=True), context())
        assert (result, deferrals) == (["web"], 1)
        assert {p["status"] for p in rack.processes(APP)} == {"running"}

    def test_unknown_service_and_missing_app_are_refused(self, rack: RackEmulator) -> None:
        seed(rack)
        with pytest.raises(ConvoxInputError, match=r"no service 'api' \(its services: web\)"):
            restart_op(service="api").execute(context())
        with pytest.raises(ConvoxNotFoundError, match="app not found: nope"):
            ConvoxRestartOperator(task_id="restart", app="nope").execute(context())
        assert rack.requests.count("POST", f"/apps/{APP}/services/web/restart") == 0

    def test_a_retry_waits_for_the_previous_try_s_restart(self, make_rack: RackFactory) -> None:
        rack = make_rack(process_start=0.2)
        seed(rack)
        store = StateStore()
        with pytest.raises(TaskDeferred):
            restart_op(deferrable=True).execute(attempt(store))
        assert json.loads(store["restart"])["services"] == ["web"]
        assert restart_op().execute(attempt(store)) == ["web"]
        assert rack.requests.count("POST", f"/apps/{APP}/services/web/restart") == 1


@pytest.mark.parametrize(
    "trigger",
    [
        ConvoxAppRunningTrigger(
            convox_conn_id="c", app="pr-1", end_time=1.9e9, poll_interval=2, initial_delay=2
        ),
        ConvoxAppDeletedTrigger(convox_conn_id="c", app="pr-1", end_time=1.9e9, max_errors=2),
        ConvoxRestartTrigger(
            convox_conn_id="c",
            app="pr-1",
            end_time=1.9e9,
            release_id="RABC",
            services=["web", "worker"],
            replaced=["web-abc-1"],
        ),
    ],
    ids=["running", "deleted", "restart"],
)
def test_triggers_serialize_round_trip(trigger: Any) -> None:
    classpath, kwargs = trigger.serialize()
    assert classpath == f"convox_provider.triggers.apps.{type(trigger).__name__}"
    restored = type(trigger)(**json.loads(json.dumps(kwargs)))
    assert restored.serialize() == (classpath, kwargs)
    assert kwargs["end_time"] == 1.9e9


def test_the_deleted_trigger_fails_on_an_app_that_is_not_being_deleted(
    rack: RackEmulator,
) -> None:
    rack.create_app(NEW)
    trigger = ConvoxAppDeletedTrigger(
        convox_conn_id="convox_default", app=NEW, end_time=time.time() + 10, poll_interval=FAST
    )
    (event,) = run_trigger(trigger)
    assert event["status"] == "error"
    assert "not being deleted" in event["message"]
