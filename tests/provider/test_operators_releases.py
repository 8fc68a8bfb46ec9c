"""ConvoxPromoteReleaseOperator and ConvoxRollbackOperator against the rack emulator."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from airflow_compat import (
    AirflowException,
    AirflowFailException,
    AirflowSkipException,
    TaskDeferred,
)
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

from convox_provider.client.errors import ConvoxWorkflowError
from convox_provider.operators.releases import ConvoxPromoteReleaseOperator, ConvoxRollbackOperator
from convox_provider.testing import RackEmulator, Timing
from convox_provider.triggers.releases import ConvoxReleaseTrigger

RackFactory = Callable[..., RackEmulator]


@pytest.fixture
def make_rack(convox_rack_factory: RackFactory, monkeypatch: pytest.MonkeyPatch) -> RackFactory:
    """A rack whose rollouts take ``rollout`` seconds, with app ``demo`` on two releases."""

    def make(rollout: float = 0.0) -> RackEmulator:
        rack = convox_rack_factory(timing=Timing(rollout=rollout))
        connect(monkeypatch, rack)
        seed(rack, releases=2)
        return rack

    return make


@pytest.fixture
def rack(make_rack: RackFactory) -> RackEmulator:
    return make_rack()


def unpromoted(rack: RackEmulator) -> str:
    """A new release, newest but not promoted."""
    return str(rack.add_release(APP, MANIFEST, promote=False)[1]["id"])


def promote_op(**options: Any) -> ConvoxPromoteReleaseOperator:
    return ConvoxPromoteReleaseOperator(task_id="promote", app=APP, poll_interval=FAST, **options)


def rollback_op(**options: Any) -> ConvoxRollbackOperator:
    return ConvoxRollbackOperator(task_id="rollback", app=APP, poll_interval=FAST, **options)


def current(rack: RackEmulator) -> tuple[str, str]:
    app = rack.app(APP)
    return app["status"], app["release"]


# --- promote ------------------------------------------------------------------------------------


def test_templated_fields() -> None:
    assert set(ConvoxPromoteReleaseOperator.template_fields) == {
        "convox_conn_id",
        "app",
        "release_id",
    }
    assert set(ConvoxRollbackOperator.template_fields) == {
        "convox_conn_id",
        "app",
        "release_id",
        "undoing",
    }


def _promote_over(rack: RackEmulator, promoted: str) -> str:
    """Another deployer: once ``promoted``'s promote reached the rack, promote a newer release
    (with force, as the CLI's ``--force`` would, during the first rollout). Returns its id."""
    newer = unpromoted(rack)
    deadline = time.monotonic() + 10
    while not rack.requests.find("POST", f"/apps/{APP}/releases/{promoted}/promote"):
        assert time.monotonic() < deadline, "the first promote never reached the rack"
        time.sleep(0.01)
    answer = httpx.post(
        f"{rack.url}/apps/{APP}/releases/{newer}/promote",
        data={"force": "true"},
        auth=("convox", "password"),
    )
    assert answer.status_code == 200, answer.text
    return newer


def _to_the_end(op: ConvoxPromoteReleaseOperator) -> str:
    """Execute ``op``; when it defers, run its trigger and resume it."""
    try:
        return op.execute(context())
    except TaskDeferred as deferred:
        (event,) = run_trigger(deferred.trigger)
        return op.execute_complete(context(), event)


@pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferred"])
def test_a_promote_superseded_by_a_newer_one_skips_not_fails(
    make_rack: RackFactory, deferrable: bool
) -> None:
    """Two deployers: a newer release promoted during this rollout is no rollback."""
    rack = make_rack(rollout=0.5)
    target = unpromoted(rack)
    newer: list[str] = []
    other = threading.Thread(target=lambda: newer.append(_promote_over(rack, target)))
    other.start()
    op = promote_op(release_id=target, deferrable=deferrable)
    with pytest.raises(AirflowSkipException) as skipped:
        _to_the_end(op)
    other.join(10)
    message = str(skipped.value)
    assert message.startswith(f"Release {target} of app demo was superseded: release {newer[0]}")
    assert f"{target} of app demo was rolled back" not in message
    assert message.count(target) == 1
    wait_until(lambda: current(rack) == ("running", newer[0]), 10)
    assert rack.requests.count("POST", f"/apps/{APP}/releases") == 0  # nothing rolled back


def test_a_rollback_undoing_a_release_skips_over_a_newer_deploy(rack: RackEmulator) -> None:
    _, before = current(rack)
    deployed = unpromoted(rack)
    newer = unpromoted(rack)
    for release in (deployed, newer):
        promote_op(release_id=release).execute(context())
    rack.requests.clear()
    with pytest.raises(AirflowSkipException, match=f"^App demo runs release {newer}, created"):
        rollback_op(release_id=before, undoing=deployed).execute(context())
    assert rack.requests.count("POST", "/apps/**") == 0
    assert current(rack) == ("running", newer)


def test_a_rollback_undoing_the_active_release_rolls_back(rack: RackEmulator) -> None:
    _, before = current(rack)
    deployed = unpromoted(rack)
    promote_op(release_id=deployed).execute(context())
    ti = RecordingTI()
    new_id = rollback_op(undoing=deployed).execute(context(ti))
    assert ti.xcoms == {"rolled_back_to": before, "release_id": new_id}
    assert current(rack) == ("running", new_id)


def test_promote_a_given_release(rack: RackEmulator) -> None:
    target = unpromoted(rack)
    ti = RecordingTI()
    assert promote_op(release_id=target).execute(context(ti)) == target
    assert ti.pushed == [("release_id", target)]
    assert current(rack) == ("running", target)
    assert rack.requests.count("POST", f"/apps/{APP}/releases/{target}/promote") == 1


def test_first_rollout_poll_comes_after_the_first_interval(rack: RackEmulator) -> None:
    target = unpromoted(rack)
    ConvoxPromoteReleaseOperator(
        task_id="promote", app=APP, release_id=target, poll_interval=0.3
    ).execute(context())
    (promoted,) = rack.requests.find("POST", f"/apps/{APP}/releases/{target}/promote")
    polls = [r for r in rack.requests.find("GET", f"/apps/{APP}") if r.time > promoted.time]
    # WaitOptions.first_interval (0.25 s), shorter than the 0.3 s lag allowed (initial_delay):
    # the old release read until then is "not yet", not a rollback (§5.1, §5.11)
    assert polls[0].time - promoted.time >= 0.24


def test_promote_the_newest_release_by_default(rack: RackEmulator) -> None:
    target = unpromoted(rack)
    ti = RecordingTI()
    assert promote_op().execute(context(ti)) == target
    assert ti.pushed == [("release_id", target)]
    assert current(rack) == ("running", target)


def test_promote_rolled_back_names_app_and_both_releases(rack: RackEmulator) -> None:
    _, active = current(rack)
    target = unpromoted(rack)
    rack.scripts.fail_next_promote(APP)
    with pytest.raises(AirflowFailException) as failure:
        promote_op(release_id=target).execute(context())
    assert f"Release {target} of app demo was rolled back" in str(failure.value)
    assert f"back on release {active}" in str(failure.value)


def test_promote_timeout_is_a_retryable_failure(make_rack: RackFactory) -> None:
    rack = make_rack(rollout=60)
    target = unpromoted(rack)
    with pytest.raises(AirflowException, match="gave up waiting") as failure:
        promote_op(release_id=target, timeout=0.3).execute(context())
    assert not isinstance(failure.value, AirflowFailException)


def test_promote_without_waiting(make_rack: RackFactory) -> None:
    rack = make_rack(rollout=60)
    target = unpromoted(rack)
    ti = RecordingTI()
    assert promote_op(release_id=target, wait_for_completion=False).execute(context(ti)) == target
    assert current(rack) == ("updating", target)
    assert ti.pushed == [("release_id", target)]


def test_promote_deferred(make_rack: RackFactory) -> None:
    rack = make_rack(rollout=0.2)
    target = unpromoted(rack)
    op = promote_op(release_id=target, deferrable=True, timeout=120)
    ti = RecordingTI()
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context(ti))
    assert ti.pushed == [("release_id", target)]
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout is not None
    assert timedelta(seconds=170) < deferred.value.timeout <= timedelta(seconds=180)
    classpath, kwargs = deferred.value.trigger.serialize()
    assert classpath == "convox_provider.triggers.releases.ConvoxReleaseTrigger"
    assert before + 120 <= kwargs.pop("end_time") <= time.time() + 120
    assert before <= kwargs.pop("deferred_at") <= time.time()  # for the resume hold
    assert kwargs == {
        "convox_conn_id": "convox_default",
        "app": APP,
        "release_id": target,
        "poll_interval": FAST,
        "initial_delay": FAST,
        "max_errors": 5,
    }
    (event,) = run_trigger(ConvoxReleaseTrigger(**kwargs, end_time=before + 120))
    assert op.execute_complete(context(ti), event=event) == target
    assert current(rack) == ("running", target)


@pytest.mark.parametrize(
    ("event", "error"),
    [
        (None, AirflowException),
        ({"status": "nope"}, AirflowException),
        ({"status": "timeout", "message": "gave up"}, AirflowException),
        ({"status": "error", "message": "ConvoxGatewayError: 502"}, AirflowException),
        (
            {"status": "rollback", "message": "m", "release_id": "R2", "active_release": "R1"},
            AirflowFailException,
        ),
    ],
    ids=["none", "unknown", "timeout", "error", "rollback"],
)
def test_execute_complete_raises(event: Any, error: type[Exception]) -> None:
    for op in (promote_op(), rollback_op()):
        with pytest.raises(error) as raised:
            op.execute_complete(context(), event=event)
        assert isinstance(raised.value, AirflowFailException) == (error is AirflowFailException)


def test_execute_complete_returns_the_release() -> None:
    event = {"status": "success", "app": APP, "release_id": "RNEW"}
    assert promote_op().execute_complete(context(), event=event) == "RNEW"
    assert rollback_op().execute_complete(context(), event=event) == "RNEW"


def test_on_kill_cancels_the_rollout_it_started(make_rack: RackFactory) -> None:
    rack = make_rack(rollout=60)
    _, active = current(rack)
    target = unpromoted(rack)
    op = promote_op(release_id=target, wait_for_completion=False)
    op.execute(context())
    op.on_kill()
    assert rack.requests.count("POST", f"/apps/{APP}/cancel") == 1
    assert current(rack) == ("rollback", active)


def test_on_kill_after_the_rollout_settled_cancels_nothing(rack: RackEmulator) -> None:
    op = promote_op(release_id=unpromoted(rack))
    op.execute(context())
    op.on_kill()
    assert rack.requests.count("POST", f"/apps/{APP}/cancel") == 0


# --- rollback -----------------------------------------------------------------------------------


def test_rollback_to_the_release_before_the_active_one(rack: RackEmulator) -> None:
    newest, older = rack.releases(APP)[:2]
    assert current(rack) == ("running", newest["id"])
    ti = RecordingTI()
    new_id = rollback_op().execute(context(ti))
    assert ti.pushed == [("rolled_back_to", older["id"]), ("release_id", new_id)]
    created = rack.releases(APP)[0]
    assert created["id"] == new_id not in (newest["id"], older["id"])
    assert created["build"] == older["build"]
    assert current(rack) == ("running", new_id)


def test_rollback_to_a_given_release(rack: RackEmulator) -> None:
    oldest = rack.releases(APP)[-1]
    ti = RecordingTI()
    new_id = rollback_op(release_id=oldest["id"]).execute(context(ti))
    assert ti.xcoms == {"rolled_back_to": oldest["id"], "release_id": new_id}
    assert rack.releases(APP)[0]["build"] == oldest["build"]


def test_rollback_needs_an_older_release(
    convox_rack: RackEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect(monkeypatch, convox_rack)
    seed(convox_rack, releases=1)
    with pytest.raises(ConvoxWorkflowError, match="no release older than its active release"):
        rollback_op().execute(context())
    assert convox_rack.requests.count("POST", "/apps/**") == 0


def test_rollback_deferred(rack: RackEmulator) -> None:
    ti = RecordingTI()
    with pytest.raises(TaskDeferred) as deferred:
        rollback_op(deferrable=True).execute(context(ti))
    trigger = deferred.value.trigger
    assert isinstance(trigger, ConvoxReleaseTrigger)
    assert trigger.release_id == ti.xcoms["release_id"] == rack.releases(APP)[0]["id"]
    (event,) = run_trigger(trigger)
    assert rollback_op().execute_complete(context(), event=event) == trigger.release_id


def test_rollback_that_is_rolled_back_fails(rack: RackEmulator) -> None:
    _, active = current(rack)
    rack.scripts.fail_next_promote(APP)
    with pytest.raises(AirflowFailException, match=f"back on release {active}"):
        rollback_op().execute(context())


def test_rollback_right_after_a_failed_rollout_waits_for_the_rack_to_settle(
    make_rack: RackFactory,
) -> None:
    """A rollback task after a failed deploy finds the rack still rolling the deploy back: it
    waits for that, instead of getting 403 'app is currently updating' as the CLI would."""
    rack = make_rack(rollout=0.3)
    older = rack.releases(APP)[1]
    rack.scripts.fail_next_promote(APP)
    with pytest.raises(AirflowFailException):
        promote_op(release_id=unpromoted(rack)).execute(context())
    assert rack.app(APP)["status"] == "rollback"

    new_id = rollback_op(release_id=older["id"]).execute(context())

    assert current(rack) == ("running", new_id)
    assert rack.releases(APP)[0]["build"] == older["build"]
    assert rack.requests.count("POST", f"/apps/{APP}/releases/{new_id}/promote") == 1
