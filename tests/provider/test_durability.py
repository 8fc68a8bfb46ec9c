"""A retried task re-attaches to the build, release or rollout its previous try started.

The previous try is ended the way a worker dies: killed with SIGKILL in a subprocess, or an
exception thrown in the middle of its wait. Airflow 3.3's task state store (kept across tries)
is a dict here; the fallback for older Airflow (a marker in the build description) is tested by
making the store unavailable.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from airflow_compat import TaskDeferred
from convox_support import (
    APP,
    FAST,
    MANIFEST,
    RecordingTI,
    connect,
    run_trigger,
    sample_app,
    seed,
    slow_builds,
    wait_until,
)

from convox_provider.client.errors import ConvoxError
from convox_provider.operators.builds import ConvoxBuildOperator, ConvoxDeployOperator
from convox_provider.operators.environment import ConvoxEnvSetOperator
from convox_provider.operators.releases import ConvoxPromoteReleaseOperator, ConvoxRollbackOperator
from convox_provider.testing import RackEmulator, Timing

RackFactory = Callable[..., RackEmulator]
BUILDS = f"/apps/{APP}/builds"


class StateStore(dict[str, Any]):
    """Airflow 3.3's task state store, kept across tries, without the API server."""

    def set(self, key: str, value: Any) -> None:
        self[key] = value


class TaskInstance(RecordingTI):
    """A recording task instance with the identity the fallback marker is derived from."""

    def __init__(self, try_number: int = 1, run_id: str = "manual__2026-11-23") -> None:
        super().__init__()
        self.dag_id, self.task_id, self.run_id, self.map_index = "deploys", "build", run_id, -1
        self.try_number = try_number


class WorkerLost(Exception):
    """Stands for the worker dying in the middle of a wait."""


@pytest.fixture
def rack(convox_rack_factory: RackFactory, monkeypatch: pytest.MonkeyPatch) -> RackEmulator:
    rack = convox_rack_factory(timing=Timing(rollout=0.1))
    connect(monkeypatch, rack)
    seed(rack)
    return rack


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return sample_app(tmp_path)


def attempt(
    store: StateStore | None, try_number: int, **ti: Any
) -> tuple[TaskInstance, dict[str, Any]]:
    """The task instance and context of one try."""
    instance = TaskInstance(try_number, **ti)
    ctx: dict[str, Any] = {"ti": instance}
    if store is not None:
        ctx["task_state_store"] = store
    return instance, ctx


def die_while_building(op: Any, store: StateStore | None) -> None:
    """Run a first try of ``op`` that dies once the build's output reached its log (mid-wait)."""

    def lost(line: str) -> None:
        raise WorkerLost(line)

    op._log_line = lost
    with pytest.raises(WorkerLost):
        op.execute(attempt(store, 1)[1])


def crash_during_rollout(op: Any) -> None:
    """The try dies at the first sight of the app rolling out (after its ids were kept)."""
    progress = op._progress

    def dying(context: Any) -> Callable[[Any], None]:
        record = progress(context)

        def on_event(event: Any) -> None:
            record(event)
            if type(event).__name__ == "AppStatusChanged" and event.status == "updating":
                raise WorkerLost(str(event))

        return on_event

    op._progress = dying


def build_op(source: Path, **options: Any) -> ConvoxBuildOperator:
    return ConvoxBuildOperator(
        task_id="build", app=APP, source_dir=str(source), poll_interval=FAST, **options
    )


# --- builds ---------------------------------------------------------------------------------------


def test_a_retry_after_a_crash_mid_wait_reattaches_to_the_build(
    rack: RackEmulator, source: Path
) -> None:
    slow_builds(rack, 0.5)
    store = StateStore()
    first = build_op(source)
    die_while_building(first, store)
    build_id = store["build_id"]
    assert rack.builds(APP)[0]["status"] == "running"

    retry = build_op(source)
    ti, ctx = attempt(store, 2)
    assert retry.execute(ctx) == build_id
    assert rack.requests.count("POST", BUILDS) == 1
    (build,) = [b for b in rack.builds(APP) if b["id"] == build_id]
    assert build["status"] == "complete"
    assert ti.pushed == [("build_id", build_id), ("release_id", build["release"])]


def test_a_killed_worker_is_reattached_to(rack: RackEmulator, source: Path, tmp_path: Path) -> None:
    """The first try runs in a process killed with SIGKILL while the build runs."""
    slow_builds(rack, 3.0)
    state = tmp_path / "state.json"
    child = textwrap.dedent(
        """
        import json, sys
        from pathlib import Path
        from convox_provider.operators.builds import ConvoxBuildOperator

        class Store:
            def get(self, key, default=None):
                path = Path(sys.argv[1])
                return json.loads(path.read_text()).get(key, default) if path.exists() else default
            def set(self, key, value):
                path = Path(sys.argv[1])
                data = json.loads(path.read_text()) if path.exists() else {}
                data[key] = value
                Path(sys.argv[1] + ".tmp").write_text(json.dumps(data))
                Path(sys.argv[1] + ".tmp").replace(path)

        class TI:
            def xcom_push(self, key, value):
                pass

        op = ConvoxBuildOperator(task_id="build", app="demo", source_dir=sys.argv[2],
                                 poll_interval=0.05)
        op.execute({"ti": TI(), "task_state_store": Store()})
        """
    )
    worker = subprocess.Popen([sys.executable, "-c", child, str(state), str(source)])
    try:
        wait_until(lambda: rack.requests.count("GET", f"{BUILDS}/*/logs") > 0, 60)  # following
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
    assert worker.returncode == -signal.SIGKILL
    store = StateStore(json.loads(state.read_text()))
    assert rack.builds(APP)[0]["status"] == "running"

    retry = build_op(source)
    assert retry.execute(attempt(store, 2)[1]) == store["build_id"]
    assert rack.requests.count("POST", BUILDS) == 1
    assert rack.builds(APP)[0]["status"] == "complete"


def test_a_complete_build_of_a_previous_try_is_used_as_it_is(
    rack: RackEmulator, source: Path
) -> None:
    store = StateStore()
    build_op(source).execute(attempt(store, 1)[1])
    rack.requests.clear()
    retry = build_op(source)
    assert retry.execute(attempt(store, 2)[1]) == store["build_id"]
    assert rack.requests.count("POST", "/apps/**") == 0
    assert rack.requests.count("GET", "**/logs") == 0  # no wait, no log replay


def test_a_failed_build_of_a_previous_try_is_built_again(rack: RackEmulator, source: Path) -> None:
    rack.scripts.fail_next_build("npm ERR!")
    store = StateStore()
    with pytest.raises(Exception, match="npm ERR!"):
        build_op(source).execute(attempt(store, 1)[1])
    failed = store["build_id"]
    retry = build_op(source)
    assert retry.execute(attempt(store, 2)[1]) != failed
    assert rack.requests.count("POST", BUILDS) == 2


@pytest.mark.parametrize("with_store", [True, False], ids=["state-store", "marker"])
def test_a_killed_build_is_not_reattached_a_cleared_task_builds_again(
    rack: RackEmulator, source: Path, with_store: bool, capfd: pytest.CaptureFixture[str]
) -> None:
    """Marked failed in the UI: ``on_kill`` deletes the build pod, so the build reads
    ``running`` forever (docs/rack-api.md §4.3). The cleared task must build anew, at once."""
    slow_builds(rack, 0.5)
    store = StateStore() if with_store else None
    first = build_op(source)
    die_while_building(first, store)
    first.on_kill()
    killed = rack.builds(APP)[0]
    assert killed["status"] == "running"

    retry = build_op(source, timeout=30)
    capfd.readouterr()
    new = retry.execute(attempt(store, 2)[1])
    logged = capfd.readouterr().out
    assert new != killed["id"]
    assert rack.requests.count("POST", BUILDS) == 2
    assert [b["status"] for b in rack.builds(APP) if b["id"] == new] == ["complete"]
    assert f"Build {killed['id']} of app {APP} from a previous try (running)" in logged
    assert "can never finish" in logged
    assert "building again" in logged


def test_not_durable_builds_on_every_try(rack: RackEmulator, source: Path) -> None:
    store = StateStore()
    build_op(source, durable=False).execute(attempt(store, 1)[1])
    build_op(source, durable=False).execute(attempt(store, 2)[1])
    assert rack.requests.count("POST", BUILDS) == 2
    assert store == {}


def test_a_deferrable_retry_defers_on_the_previous_build(rack: RackEmulator, source: Path) -> None:
    slow_builds(rack, 0.5)
    store = StateStore()
    first = build_op(source)
    die_while_building(first, store)
    retry = build_op(source, deferrable=True)
    _, ctx = attempt(store, 2)
    with pytest.raises(TaskDeferred) as deferred:
        retry.execute(ctx)
    assert deferred.value.trigger.build_id == store["build_id"]
    (event,) = run_trigger(deferred.value.trigger)
    assert retry.execute_complete(ctx, event) == store["build_id"]
    assert rack.requests.count("POST", BUILDS) == 1


# --- builds found by their marker: no task state store (Airflow before 3.3), or no id in it ---


def test_without_a_state_store_the_build_is_found_by_its_marker(
    rack: RackEmulator, source: Path
) -> None:
    slow_builds(rack, 0.5)
    first = build_op(source, description="nightly")
    die_while_building(first, None)
    (build,) = rack.builds(APP)[:1]
    marker = first._retry_marker(attempt(None, 1)[1])
    assert marker is not None
    assert build["description"] == f"nightly [{marker}]"

    retry = build_op(source, description="nightly")
    assert retry.execute(attempt(None, 2)[1]) == build["id"]
    assert rack.requests.count("POST", BUILDS) == 1


def test_the_marker_is_per_task_instance_not_per_try(rack: RackEmulator, source: Path) -> None:
    op = build_op(source)
    markers = {
        op._retry_marker(attempt(None, try_number, run_id=run_id)[1])
        for try_number, run_id in [(1, "run-a"), (2, "run-a"), (3, "run-a")]
    }
    assert len(markers) == 1
    other = op._retry_marker(attempt(None, 1, run_id="run-b")[1])
    assert other not in markers
    build_op(source).execute(attempt(None, 1, run_id="run-a")[1])
    build_op(source).execute(attempt(None, 1, run_id="run-b")[1])
    assert rack.requests.count("POST", BUILDS) == 2  # another run builds anew


@pytest.mark.parametrize("with_store", [True, False], ids=["state-store", "no-state-store"])
@pytest.mark.parametrize("lost", ["gateway-timeout", "cut-connection"])
def test_a_build_whose_create_answer_was_lost_is_not_built_again(
    rack: RackEmulator, source: Path, with_store: bool, lost: str
) -> None:
    """The rack created the build but the try never saw its id: the retry finds it by marker."""
    store = StateStore() if with_store else None
    if lost == "gateway-timeout":
        rack.faults.respond("POST", BUILDS, 504, after_handler=True)
    else:
        rack.faults.drop("POST", BUILDS, stage="handler")
    with pytest.raises(ConvoxError):
        build_op(source).execute(attempt(store, 1)[1])
    assert store is None or "build_id" not in store
    (build,) = rack.builds(APP)[:1]

    assert build_op(source).execute(attempt(store, 2)[1]) == build["id"]
    assert rack.requests.count("POST", BUILDS) == 1


def test_not_durable_builds_carry_no_marker(rack: RackEmulator, source: Path) -> None:
    build_op(source, description="nightly", durable=False).execute(attempt(StateStore(), 1)[1])
    assert rack.builds(APP)[0]["description"] == "nightly"


# --- rollouts -------------------------------------------------------------------------------------


@pytest.fixture
def rolling_rack(convox_rack_factory: RackFactory, monkeypatch: pytest.MonkeyPatch) -> RackEmulator:
    """Rollouts take 0.5 s; app ``demo`` runs the newer of two releases."""
    rack = convox_rack_factory(timing=Timing(rollout=0.5))
    connect(monkeypatch, rack)
    seed(rack, releases=2)
    return rack


def die_during_rollout(op: Any, store: StateStore) -> None:
    """Run a first try of ``op`` that dies once the app is seen rolling out."""
    crash_during_rollout(op)
    with pytest.raises(WorkerLost):
        op.execute(attempt(store, 1)[1])


def rollout(rack: RackEmulator) -> tuple[str, str]:
    app = rack.app(APP)
    return app["status"], app["release"]


def test_a_deploy_retried_during_its_rollout_neither_builds_nor_promotes_again(
    rolling_rack: RackEmulator, source: Path
) -> None:
    store = StateStore()

    def deploy() -> ConvoxDeployOperator:
        return ConvoxDeployOperator(
            task_id="deploy", app=APP, source_dir=str(source), poll_interval=FAST
        )

    die_during_rollout(deploy(), store)
    release_id = store["release_id"]
    assert rollout(rolling_rack) == ("updating", release_id)

    assert deploy().execute(attempt(store, 2)[1]) == release_id
    assert rolling_rack.requests.count("POST", BUILDS) == 1
    assert rolling_rack.requests.count("POST", f"/apps/{APP}/releases/*/promote") == 1
    assert rollout(rolling_rack) == ("running", release_id)


def test_a_retried_promote_waits_for_the_rollout_it_started(rolling_rack: RackEmulator) -> None:
    target = rolling_rack.add_release(APP, MANIFEST, promote=False)[1]["id"]
    store = StateStore()
    die_during_rollout(
        ConvoxPromoteReleaseOperator(task_id="p", app=APP, poll_interval=FAST), store
    )
    assert store == {"release_id": target}
    rolling_rack.add_release(APP, MANIFEST, promote=False)  # newer, not what the task promoted

    retry = ConvoxPromoteReleaseOperator(task_id="p", app=APP, poll_interval=FAST)
    assert retry.execute(attempt(store, 2)[1]) == target
    assert rolling_rack.requests.count("POST", f"/apps/{APP}/releases/*/promote") == 1
    assert rollout(rolling_rack) == ("running", target)


def test_a_retried_rollback_creates_no_second_release(rolling_rack: RackEmulator) -> None:
    old = rolling_rack.releases(APP)[1]["id"]
    store = StateStore()
    die_during_rollout(ConvoxRollbackOperator(task_id="r", app=APP, poll_interval=FAST), store)
    new = store["release_id"]

    retry = ConvoxRollbackOperator(task_id="r", app=APP, poll_interval=FAST)
    ti, ctx = attempt(store, 2)
    assert retry.execute(ctx) == new
    assert ti.xcoms == {"rolled_back_to": old, "release_id": new}
    assert rolling_rack.requests.count("POST", f"/apps/{APP}/releases") == 1
    assert rollout(rolling_rack) == ("running", new)


def test_a_retried_env_set_creates_no_second_release(rack: RackEmulator) -> None:
    store = StateStore()
    for try_number in (1, 2):
        op = ConvoxEnvSetOperator(
            task_id="env", app=APP, set={"TOKEN": "t-1234567"}, promote=True, poll_interval=FAST
        )
        op.execute(attempt(store, try_number)[1])
    assert rack.requests.count("POST", f"/apps/{APP}/releases") == 1
    assert rack.requests.count("POST", f"/apps/{APP}/releases/*/promote") == 1
