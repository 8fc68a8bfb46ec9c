"""ConvoxBuildOperator and ConvoxDeployOperator against the rack emulator."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

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
    RecordingTI,
    connect,
    context,
    run_trigger,
    sample_app,
    seed,
    slow_builds,
    wait_until,
)

from convox_provider.client.client import ConvoxClient
from convox_provider.operators import _base
from convox_provider.operators.builds import ConvoxBuildOperator, ConvoxDeployOperator
from convox_provider.operators.releases import ConvoxPromoteReleaseOperator
from convox_provider.testing import RackEmulator, Timing
from convox_provider.triggers.builds import ConvoxBuildTrigger
from convox_provider.triggers.releases import ConvoxReleaseTrigger


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return sample_app(tmp_path)


def build_op(**options: Any) -> ConvoxBuildOperator:
    return ConvoxBuildOperator(task_id="build", app=APP, poll_interval=FAST, **options)


def deploy_op(**options: Any) -> ConvoxDeployOperator:
    return ConvoxDeployOperator(task_id="deploy", app=APP, poll_interval=FAST, **options)


def newest_build(rack: RackEmulator) -> dict[str, Any]:
    return rack.builds(APP)[0]


# --- arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sources",
    [{}, {"source_dir": "/src", "object_url": "object://demo/x.tgz"}],
)
def test_exactly_one_source(sources: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="exactly one of source_dir, object_url or import_archive"):
        build_op(**sources)


def test_build_options_cannot_apply_to_an_import() -> None:
    with pytest.raises(
        ValueError, match="description, no_cache cannot be used with import_archive"
    ):
        build_op(import_archive="/build.tgz", description="x", no_cache=True)


def test_identifiers_are_templated() -> None:
    assert {"convox_conn_id", "app", "source_dir", "object_url", "import_archive"} <= set(
        ConvoxBuildOperator.template_fields
    )
    assert {"description", "manifest", "build_args", "git_sha"} <= set(
        ConvoxDeployOperator.template_fields
    )


def test_deferrable_without_waiting_warns_at_the_dag_line() -> None:
    with pytest.warns(UserWarning, match="deferrable=True has no effect") as warned:
        ConvoxBuildOperator(
            task_id="b", app=APP, source_dir="/s", deferrable=True, wait_for_completion=False
        )
    (ours,) = [w for w in warned if "deferrable=True has no effect" in str(w.message)]
    assert ours.filename == __file__


def test_default_deferrable_alone_does_not_warn(monkeypatch: pytest.MonkeyPatch) -> None:
    """``[operators] default_deferrable = True`` with a task that does not wait: the DAG never
    asked to defer, so there is nothing to warn about; the default still applies."""
    monkeypatch.setattr(_base, "DEFAULT_DEFERRABLE", True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        op = ConvoxPromoteReleaseOperator(task_id="p", app=APP, wait_for_completion=False)
        waiting = ConvoxPromoteReleaseOperator(task_id="w", app=APP)
    assert op.deferrable is True
    assert waiting.deferrable is True
    assert ConvoxPromoteReleaseOperator(task_id="n", app=APP, deferrable=False).deferrable is False


def test_deploy_defers_its_build_even_without_waiting_for_the_rollout() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        deploy_op(source_dir="/src", deferrable=True, wait_for_completion=False)


# --- building in the worker ---------------------------------------------------------------------


def test_build_from_directory(
    rack: RackEmulator, source: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    slow_builds(rack, 0.2)
    states: list[str] = []
    ti = RecordingTI(lambda key, _: states.append(newest_build(rack)["status"]))
    op = build_op(source_dir=str(source), description="ci build")
    ctx = context(ti)
    build_id = op.execute(ctx)
    build = newest_build(rack)
    assert (build["id"], build["status"]) == (build_id, "complete")
    marker = op._retry_marker(ctx)  # a durable build is tagged so that a retry finds it
    assert build["description"] == f"ci build [{marker}]"
    assert ti.pushed == [("build_id", build_id), ("release_id", build["release"])]
    assert states == ["running", "complete"]  # the build id is in XCom before the wait
    out = capfd.readouterr().out
    assert "Step 1/" in out
    assert f"Build {build_id} of app demo started" in out


def test_build_from_object_url(rack: RackEmulator, source: Path, client: ConvoxClient) -> None:
    uploaded = client.builds.build_from_directory(APP, source, wait=True)  # an object to reuse
    (stored,) = rack.requests.find("POST", "/apps/demo/objects/**")
    url = f"object://demo/{stored.path.split('/objects/', 1)[1]}"
    ti = RecordingTI()
    build_id = build_op(object_url=url).execute(context(ti))
    assert build_id != uploaded.id
    assert newest_build(rack)["status"] == "complete"
    assert ti.xcoms == {"build_id": build_id, "release_id": newest_build(rack)["release"]}


def test_import_archive(rack: RackEmulator, client: ConvoxClient, tmp_path: Path) -> None:
    exported = tmp_path / "build.tgz"
    with exported.open("wb") as file:
        client.builds.export(APP, rack.builds(APP)[0]["id"], file.write)
    ti = RecordingTI()
    build_id = build_op(import_archive=str(exported), deferrable=True).execute(context(ti))
    build = newest_build(rack)
    assert (build["id"], build["status"]) == (build_id, "complete")
    assert ti.pushed == [("build_id", build_id), ("release_id", build["release"])]


def test_failed_build_fails_the_task_with_the_log_tail(rack: RackEmulator, source: Path) -> None:
    rack.scripts.fail_next_build("npm ERR! missing script: build")
    ti = RecordingTI()
    with pytest.raises(AirflowFailException) as failure:
        build_op(source_dir=str(source)).execute(context(ti))
    message = str(failure.value)
    assert "missing script: build" in message
    assert "Last lines of the build log:\nBuilding: ." in message
    assert list(ti.xcoms) == ["build_id"]


def test_without_following_logs_the_build_is_only_polled(
    rack: RackEmulator, source: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    slow_builds(rack, 0.2)
    build_id = build_op(source_dir=str(source), follow_logs=False).execute(context())
    assert newest_build(rack)["status"] == "complete"
    assert rack.requests.count("GET", f"/apps/{APP}/builds/{build_id}/logs") == 0
    assert rack.requests.count("GET", f"/apps/{APP}/builds/{build_id}") >= 2
    assert "Building service: web" not in capfd.readouterr().out


def test_without_following_logs_a_failed_build_still_reports_its_tail(
    rack: RackEmulator, source: Path
) -> None:
    rack.scripts.fail_next_build("npm ERR! missing script: build")
    with pytest.raises(AirflowFailException, match="missing script: build"):
        build_op(source_dir=str(source), follow_logs=False).execute(context())


def test_without_waiting_the_running_build_is_returned(rack: RackEmulator, source: Path) -> None:
    slow_builds(rack, 60)
    ti = RecordingTI()
    build_id = build_op(source_dir=str(source), wait_for_completion=False).execute(context(ti))
    assert newest_build(rack)["status"] == "running"
    assert ti.pushed == [("build_id", build_id)]


# --- deferring ----------------------------------------------------------------------------------


def test_deferral_carries_an_absolute_deadline(rack: RackEmulator, source: Path) -> None:
    slow_builds(rack, 60)
    ti = RecordingTI()
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        build_op(source_dir=str(source), deferrable=True, timeout=600).execute(context(ti))
    build_id = newest_build(rack)["id"]
    assert ti.pushed == [("build_id", build_id)]
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout is not None
    assert timedelta(seconds=659) < deferred.value.timeout <= timedelta(seconds=660)
    trigger = deferred.value.trigger
    assert isinstance(trigger, ConvoxBuildTrigger)
    classpath, kwargs = trigger.serialize()
    assert classpath == "convox_provider.triggers.builds.ConvoxBuildTrigger"
    assert before + 600 <= kwargs.pop("end_time") <= time.time() + 600
    assert before <= kwargs.pop("deferred_at") <= time.time()  # for the resume hold
    assert kwargs == {
        "convox_conn_id": "convox_default",
        "app": APP,
        "build_id": build_id,
        "poll_interval": FAST,
        "max_errors": 5,
        "follow_logs": True,
    }


def test_a_deferred_build_without_following_logs_defers_a_polling_trigger(
    rack: RackEmulator, source: Path
) -> None:
    slow_builds(rack, 60)
    with pytest.raises(TaskDeferred) as deferred:
        deploy_op(source_dir=str(source), deferrable=True, follow_logs=False).execute(context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, ConvoxBuildTrigger)
    assert trigger.serialize()[1]["follow_logs"] is False


def test_deferred_build_resumes_with_the_trigger_event(rack: RackEmulator, source: Path) -> None:
    slow_builds(rack, 0.3)
    op = build_op(source_dir=str(source), deferrable=True)
    ti = RecordingTI()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context(ti))
    _, kwargs = deferred.value.trigger.serialize()
    (event,) = run_trigger(ConvoxBuildTrigger(**kwargs))  # as a triggerer re-creates it
    assert op.execute_complete(context(ti), event=event) == event["build_id"]
    assert ti.xcoms == {"build_id": event["build_id"], "release_id": newest_build(rack)["release"]}


def test_no_deferral_when_the_build_already_ended(
    rack: RackEmulator, source: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    ti = RecordingTI()
    build_id = build_op(source_dir=str(source), deferrable=True).execute(context(ti))
    assert ti.xcoms == {"build_id": build_id, "release_id": newest_build(rack)["release"]}
    push = f"Running: docker push {rack.state.registry(APP)}:web.{build_id}"
    assert push in capfd.readouterr().out


def test_no_deferral_for_a_build_that_already_failed(rack: RackEmulator, source: Path) -> None:
    rack.scripts.fail_next_build("base image not found")
    with pytest.raises(AirflowFailException, match="base image not found"):
        build_op(source_dir=str(source), deferrable=True).execute(context())


# --- execute_complete ---------------------------------------------------------------------------

SUCCESS = {"status": "success", "app": APP, "build_id": "B1", "release_id": "R1"}


def test_execute_complete_success() -> None:
    ti = RecordingTI()
    assert build_op(source_dir="/src").execute_complete(context(ti), event=SUCCESS) == "B1"
    assert ti.pushed == [("release_id", "R1")]


@pytest.mark.parametrize(
    ("event", "error", "match"),
    [
        (
            {"status": "failed", "message": "build B1 failed", "build_id": "B1", "logs_tail": "x"},
            AirflowFailException,
            "build B1 failed\nLast lines of the build log:\nx",
        ),
        (
            {
                "status": "rollback",
                "message": "release R2 of app demo was rolled back: the app is back on release R1",
                "app": APP,
                "release_id": "R2",
                "active_release": "R1",
            },
            AirflowFailException,
            "^Release R2 of app demo was rolled back: the app is back on release R1$",
        ),
        (
            {
                "status": "superseded",
                "message": "release R2 of app demo was superseded: release R3 ...",
                "app": APP,
                "release_id": "R2",
                "active_release": "R3",
            },
            AirflowSkipException,
            "^Release R2 of app demo was superseded: release R3",
        ),
        ({"status": "timeout", "message": "gave up at 12:00"}, AirflowException, "gave up"),
        ({"status": "error", "message": "ConvoxAuthError: 401"}, AirflowException, "401"),
        (None, AirflowException, "without a trigger event"),
        ({"status": "cancelled"}, AirflowException, "unknown trigger event"),
        ("success", AirflowException, "unknown trigger event"),
        ({"status": "success", "app": APP}, AirflowException, "has no build_id"),
    ],
    ids=[
        "failed",
        "rollback",
        "superseded",
        "timeout",
        "error",
        "none",
        "unknown",
        "not-a-dict",
        "no-id",
    ],
)
def test_execute_complete_raises_for_anything_but_success(
    event: Any, error: type[Exception], match: str
) -> None:
    ti = RecordingTI()
    with pytest.raises(error, match=match) as raised:
        build_op(source_dir="/src").execute_complete(context(ti), event=event)
    assert isinstance(raised.value, AirflowFailException) == (error is AirflowFailException)
    assert ti.pushed == []


# --- on_kill ------------------------------------------------------------------------------------


def test_on_kill_deletes_the_build_pod(rack: RackEmulator, source: Path) -> None:
    slow_builds(rack, 60)
    op = build_op(source_dir=str(source), wait_for_completion=False)
    op.execute(context())
    pod = newest_build(rack)["process"]
    op.on_kill()
    assert rack.requests.count("DELETE", f"/apps/{APP}/processes/{pod}") == 1
    wait_until(lambda: pod not in {p["id"] for p in rack.processes(APP)})


def test_on_kill_after_the_build_ended_deletes_nothing(rack: RackEmulator, source: Path) -> None:
    op = build_op(source_dir=str(source))
    op.execute(context())
    op.on_kill()
    assert rack.requests.count("DELETE", "**") == 0


def test_on_kill_before_anything_started_sends_nothing(rack: RackEmulator) -> None:
    rack.requests.clear()
    build_op(source_dir="/src").on_kill()
    assert len(rack.requests) == 0


def test_on_kill_swallows_errors(rack: RackEmulator, source: Path) -> None:
    slow_builds(rack, 60)
    op = build_op(source_dir=str(source), wait_for_completion=False)
    op.execute(context())
    rack.faults.respond("GET", "/apps/demo/builds/*", 500, times=None)
    op.on_kill()  # logged, not raised
    assert rack.requests.count("DELETE", "**") == 0


# --- deploy -------------------------------------------------------------------------------------


def test_deploy_builds_promotes_and_waits(rack: RackEmulator, source: Path) -> None:
    ti = RecordingTI()
    release_id = deploy_op(source_dir=str(source)).execute(context(ti))
    build = newest_build(rack)
    assert build["release"] == release_id
    assert ti.pushed == [("build_id", build["id"]), ("release_id", release_id)]
    assert (rack.app(APP)["status"], rack.app(APP)["release"]) == ("running", release_id)
    assert rack.requests.count("POST", f"/apps/{APP}/releases/{release_id}/promote") == 1


def test_deploy_rolled_back_fails_naming_the_releases(rack: RackEmulator, source: Path) -> None:
    before = rack.app(APP)["release"]
    rack.scripts.fail_next_promote(APP)
    ti = RecordingTI()
    with pytest.raises(AirflowFailException) as failure:
        deploy_op(source_dir=str(source)).execute(context(ti))
    built = newest_build(rack)["release"]
    assert f"Release {built} of app demo was rolled back" in str(failure.value)
    assert f"back on release {before}" in str(failure.value)
    assert ti.xcoms["release_id"] == built


def deploy_to_the_end(op: ConvoxDeployOperator, ctx: dict[str, Any]) -> str:
    """Run a deploy as a worker and a triggerer would: deferrals are run and resumed here."""
    if not op.deferrable:
        return op.execute(ctx)
    with pytest.raises(TaskDeferred) as built:
        op.execute(ctx)
    with pytest.raises(TaskDeferred) as rolling:
        op.build_complete(ctx, event=run_trigger(built.value.trigger)[0])
    return op.execute_complete(ctx, event=run_trigger(rolling.value.trigger)[0])


@pytest.mark.parametrize("deferrable", [False, True])
def test_deploy_rolled_back_says_what_its_pods_showed(
    convox_rack_factory: Callable[..., RackEmulator],
    monkeypatch: pytest.MonkeyPatch,
    source: Path,
    deferrable: bool,
) -> None:
    rack = convox_rack_factory(timing=Timing(rollout=0.5, process_start=0.05))
    connect(monkeypatch, rack)
    seed(rack)
    rack.scripts.fail_next_promote(
        APP, crash=["Traceback (most recent call last):", "KeyError: 'PORT'"]
    )
    op = deploy_op(source_dir=str(source), deferrable=deferrable)
    ti = RecordingTI()
    with pytest.raises(AirflowFailException) as failure:
        deploy_to_the_end(op, context(ti))
    message = str(failure.value)
    assert message.startswith(f"Release {ti.xcoms['release_id']} of app demo was rolled back")
    assert "Its processes not ready (" in message
    assert "(web): crashed" in message
    assert "    KeyError: 'PORT'" in message
    assert "password" not in message  # the rack's key (the emulator's is "password")


def test_deploy_deferred_twice(rack: RackEmulator, source: Path) -> None:
    slow_builds(rack, 0.2)
    op = deploy_op(source_dir=str(source), deferrable=True, promote_timeout=300)
    ti = RecordingTI()
    with pytest.raises(TaskDeferred) as deferred_build:
        op.execute(context(ti))
    assert deferred_build.value.method_name == "build_complete"
    (built,) = run_trigger(deferred_build.value.trigger)
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred_rollout:
        op.build_complete(context(ti), event=built)
    trigger = deferred_rollout.value.trigger
    assert isinstance(trigger, ConvoxReleaseTrigger)
    assert deferred_rollout.value.method_name == "execute_complete"
    assert (trigger.release_id, trigger.initial_delay) == (built["release_id"], FAST)
    assert before + 300 <= trigger.end_time <= time.time() + 300
    assert ti.pushed == [("build_id", built["build_id"]), ("release_id", built["release_id"])]
    (rolled_out,) = run_trigger(trigger)
    assert op.execute_complete(context(ti), event=rolled_out) == built["release_id"]
    assert rack.app(APP)["release"] == built["release_id"]


def test_deploy_build_complete_validates_the_build_event() -> None:
    with pytest.raises(AirflowFailException, match="boom"):
        deploy_op(source_dir="/src").build_complete(
            context(), event={"status": "failed", "message": "boom", "build_id": "B1"}
        )


def test_deploy_without_waiting_returns_once_promoted(rack: RackEmulator, source: Path) -> None:
    ti = RecordingTI()
    release_id = deploy_op(source_dir=str(source), wait_for_completion=False).execute(context(ti))
    assert rack.requests.count("POST", f"/apps/{APP}/releases/{release_id}/promote") == 1
    assert ti.xcoms["release_id"] == release_id
