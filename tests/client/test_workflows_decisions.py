"""The decisions the Airflow layer asks the client for, driven without sockets: cancel a build or
a rollout, promote or re-attach, the environment already written, one look at a rollout or a
build, and the wait options every wait takes."""

from __future__ import annotations

from typing import Any

import pytest
from workflow_fakes import FakeRack, StreamScript, api_error

from convox_provider.client.errors import (
    ConvoxBuildFailedError,
    ConvoxForbiddenError,
    ConvoxInputError,
    ConvoxRollbackError,
    ConvoxSupersededError,
)
from convox_provider.client.models import App, Build, Release
from convox_provider.client.waiting import (
    BUILD_WAIT,
    MAX_ERRORS,
    ROLLOUT_WAIT,
    WaitOptions,
    wait_options,
)
from convox_provider.client.workflows import (
    AppWorkflows,
    BuildWorkflows,
    EnvironmentWorkflows,
    ProcessWorkflows,
    ReleaseWorkflows,
)
from convox_provider.client.workflows.events import (
    EnvironmentUnchanged,
    PromoteNotNeeded,
    PromoteSubmitted,
    ReleaseCreated,
    WaitRetrying,
)
from convox_provider.client.workflows.waits import RolloutReading

APP = "/apps/myapp"
RELEASES = f"{APP}/releases"


@pytest.fixture
def rack() -> FakeRack:
    return FakeRack()


def app(status: str, release: str = "R2") -> App:
    return App(name="myapp", status=status, release=release)


def releases(rack: FakeRack) -> ReleaseWorkflows[Any]:
    return ReleaseWorkflows(rack)  # type: ignore[arg-type]


def builds(rack: FakeRack) -> BuildWorkflows[Any]:
    return BuildWorkflows(rack)  # type: ignore[arg-type]


class TestCancelBuild:
    @pytest.mark.parametrize(
        ("status", "process", "deleted"),
        [
            ("running", "build-x", "build-x"),
            ("created", "build-x", "build-x"),
            ("complete", "build-x", None),
            ("failed", "build-x", None),
            ("running", "", None),
        ],
    )
    def test_the_build_pod_is_deleted_only_while_the_build_is_active(
        self, rack: FakeRack, status: str, process: str, deleted: str | None
    ) -> None:
        rack.on("GET", f"{APP}/builds/B1", Build(id="B1", status=status, process=process))
        rack.on("DELETE", f"{APP}/processes/*", None)

        assert builds(rack).cancel("myapp", "B1") is (deleted is not None)

        sent = [s.path for s in rack.requests("DELETE")]
        assert sent == ([] if deleted is None else [f"{APP}/processes/{deleted}"])


class TestCancelRollout:
    @pytest.mark.parametrize(
        ("status", "release", "cancelled"),
        [
            ("updating", "R2", True),
            ("updating", "R1", False),
            ("running", "R2", False),
            ("rollback", "R1", False),
        ],
    )
    def test_cancel_is_sent_only_while_the_app_rolls_out_that_release(
        self, rack: FakeRack, status: str, release: str, cancelled: bool
    ) -> None:
        rack.on("GET", APP, app(status, release))
        rack.on("POST", f"{APP}/cancel", None)

        assert AppWorkflows(rack).cancel_rollout("myapp", "R2") is cancelled  # type: ignore[arg-type]

        assert [s.path for s in rack.requests("POST")] == ([f"{APP}/cancel"] if cancelled else [])


class TestPromoteOrAttach:
    def test_a_release_the_app_runs_is_not_promoted_again(self, rack: FakeRack) -> None:
        rack.on("GET", APP, app("running"))

        done = releases(rack).promote_or_attach(
            "myapp", "R2", waiting=WaitOptions(on_event=rack.event)
        )

        assert (done.release_id, done.pending) == ("R2", False)
        assert rack.keys == [("GET", APP)]
        assert rack.events_of(PromoteNotNeeded) == [PromoteNotNeeded("myapp", "R2", "running")]

    def test_a_rollout_in_progress_is_waited_for_not_promoted(self, rack: FakeRack) -> None:
        rack.on("GET", APP, app("updating"), app("updating"), app("running"))
        rack.on("GET", f"{APP}/processes", [])
        rack.on("GET", f"{APP}/services", [])  # no pods to confirm by: two readings decide

        done = releases(rack).promote_or_attach(
            "myapp", "R2", waiting=WaitOptions(poll_interval=2.0, on_event=rack.event)
        )

        assert (done.release_id, done.pending) == ("R2", False)
        assert not rack.requests("POST")
        assert rack.events_of(PromoteNotNeeded) == [PromoteNotNeeded("myapp", "R2", "rolling out")]
        # no initial delay: polled at once, then after the first ramped pause
        assert rack.keys[:2] == [("GET", APP), ("GET", APP)]
        assert rack.sleeps[0] == pytest.approx(0.25, abs=0.05)
        assert rack.keys.count(("GET", APP)) == 4

    def test_without_wait_a_rollout_in_progress_is_left_pending(self, rack: FakeRack) -> None:
        rack.on("GET", APP, app("updating"))

        done = releases(rack).promote_or_attach("myapp", "R2", wait=False)

        assert (done.release_id, done.pending) == ("R2", True)
        assert rack.keys == [("GET", APP)]

    @pytest.mark.parametrize(("status", "active"), [("running", "R1"), ("rollback", "R2")])
    def test_otherwise_the_release_is_promoted(
        self, rack: FakeRack, status: str, active: str
    ) -> None:
        rack.on("GET", APP, app(status, active), app("running", "R1"))
        rack.on("POST", f"{RELEASES}/R2/promote", None)

        done = releases(rack).promote_or_attach("myapp", "R2", wait=False, force=True)

        assert (done.release_id, done.pending) == ("R2", True)
        assert len(rack.requests("POST", f"{RELEASES}/R2/promote")) == 1


class TestEnvironmentUnchanged:
    def test_replace_with_if_changed_reuses_the_newest_release_with_that_env(
        self, rack: FakeRack
    ) -> None:
        rack.on("GET", RELEASES, [Release(id="R5")])
        rack.on("GET", f"{RELEASES}/R5", Release(id="R5", env="ONLY=1"))

        found = EnvironmentWorkflows(rack).set(  # type: ignore[arg-type]
            "myapp",
            {"ONLY": "1"},
            replace=True,
            if_changed=True,
            on_event=rack.event,
            promote=False,
        )

        assert found.id == "R5"
        assert not rack.requests("POST")
        assert rack.events_of(EnvironmentUnchanged) == [
            EnvironmentUnchanged("myapp", "R5", ("ONLY",))
        ]

    @pytest.mark.parametrize("newest", [[Release(id="R5")], []])
    def test_replace_with_if_changed_writes_when_the_env_differs(
        self, rack: FakeRack, newest: list[Release]
    ) -> None:
        rack.on("GET", RELEASES, newest)
        rack.on("GET", f"{RELEASES}/R5", Release(id="R5", env="ONLY=1\nOTHER=2"))
        rack.on("POST", RELEASES, Release(id="R6", env="ONLY=1"))

        found = EnvironmentWorkflows(rack).set(  # type: ignore[arg-type]
            "myapp",
            {"ONLY": "1"},
            replace=True,
            if_changed=True,
            on_event=rack.event,
            promote=False,
        )

        assert found.id == "R6"
        assert rack.requests("POST", RELEASES)[0].form == {"env": "ONLY=1"}
        assert rack.events_of(ReleaseCreated)
        assert not rack.events_of(EnvironmentUnchanged)

    def test_replace_with_if_changed_and_a_release_reads_nothing(self, rack: FakeRack) -> None:
        rack.on("POST", RELEASES, Release(id="R6", env="ONLY=1"))

        found = EnvironmentWorkflows(rack).set(  # type: ignore[arg-type]
            "myapp", {"ONLY": "1"}, replace=True, if_changed=True, release="R1", promote=False
        )

        assert found.id == "R6"
        assert rack.keys == [("POST", RELEASES)]

    def test_a_change_the_release_read_has_is_reported_unchanged(self, rack: FakeRack) -> None:
        rack.on("GET", RELEASES, [Release(id="R5")])
        rack.on("GET", f"{RELEASES}/R5", Release(id="R5", env="A=1\nB=2"))

        found = EnvironmentWorkflows(rack).set(
            "myapp", {"A": "1"}, on_event=rack.event, promote=False
        )  # type: ignore[arg-type]

        assert found.id == "R5"
        assert not rack.requests("POST")
        assert rack.events_of(EnvironmentUnchanged) == [EnvironmentUnchanged("myapp", "R5", ("A",))]


def created(rack: FakeRack, **ids: str) -> None:
    """Releases with a ``created`` time each, in the order given (oldest first)."""
    for position, release_id in enumerate(ids.values()):
        rack.on(
            "GET",
            f"{RELEASES}/{release_id}",
            Release(id=release_id, created=f"2026-01-0{position + 1}T00:00:00Z"),
        )


class TestRolloutState:
    def state(self, rack: FakeRack, *, seen: bool = False) -> RolloutReading:
        return releases(rack).rollout_state("myapp", "R2", seen=seen)

    def test_running_on_the_release_is_done(self, rack: FakeRack) -> None:
        rack.on("GET", APP, app("running"))
        assert self.state(rack).state == RolloutReading.RUNNING

    def test_updating_on_the_release_is_a_rollout_started(self, rack: FakeRack) -> None:
        rack.on("GET", APP, app("updating"))
        reading = self.state(rack)
        assert reading.state == RolloutReading.ROLLING_OUT
        assert reading.app.status == "updating"

    def test_rollback_on_the_release_raises(self, rack: FakeRack) -> None:
        rack.on("GET", APP, app("rollback"))
        with pytest.raises(ConvoxRollbackError, match=r"its rollout failed \(status 'rollback'\)"):
            self.state(rack)
        # the app is on this release: nothing to compare; its pods are read for the message
        assert rack.keys == [("GET", APP), ("GET", f"{APP}/processes")]

    @pytest.mark.parametrize("status", ["updating", "running"])
    def test_an_older_release_before_the_rollout_is_pending(
        self, rack: FakeRack, status: str
    ) -> None:
        rack.on("GET", APP, app(status, "R1"))
        created(rack, old="R1", ours="R2")
        assert self.state(rack).state == RolloutReading.PENDING

    def test_an_older_release_once_the_rollout_was_seen_is_a_rollback(self, rack: FakeRack) -> None:
        rack.on("GET", APP, app("running", "R1"))
        created(rack, old="R1", ours="R2")
        with pytest.raises(ConvoxRollbackError, match="back on release R1"):
            self.state(rack, seen=True)

    def test_running_on_a_newer_release_before_the_rollout_can_never_end_on_it(
        self, rack: FakeRack
    ) -> None:
        rack.on("GET", APP, app("running", "R3"))
        created(rack, ours="R2", newer="R3")
        reading = self.state(rack)
        assert reading.state == RolloutReading.OLDER
        assert "release R2 of app myapp is older than the active release R3" in reading.message

    @pytest.mark.parametrize(("status", "seen"), [("running", True), ("rollback", False)])
    def test_a_newer_release_once_seen_or_rolling_back_supersedes(
        self, rack: FakeRack, status: str, seen: bool
    ) -> None:
        rack.on("GET", APP, app(status, "R3"))
        created(rack, ours="R2", newer="R3")
        with pytest.raises(ConvoxSupersededError) as info:
            self.state(rack, seen=seen)
        assert info.value.active_release == "R3"

    def test_an_app_being_deleted(self, rack: FakeRack) -> None:
        rack.on("GET", APP, app("deleting"))
        reading = self.state(rack)
        assert reading.state == RolloutReading.DELETING
        assert reading.message == "app myapp is being deleted"


class TestPollBuild:
    def test_an_active_build_is_returned_as_read(self, rack: FakeRack) -> None:
        rack.on("GET", f"{APP}/builds/B1", Build(id="B1", status="running"))
        assert builds(rack).poll("myapp", "B1").status == "running"
        assert rack.keys == [("GET", f"{APP}/builds/B1")]

    def test_a_complete_build_is_settled(self, rack: FakeRack) -> None:
        rack.on("GET", f"{APP}/builds/B1", Build(id="B1", status="complete", release="R9"))
        assert builds(rack).poll("myapp", "B1").release == "R9"

    def test_a_failed_build_raises_with_its_log_tail(self, rack: FakeRack) -> None:
        rack.on("GET", f"{APP}/builds/B1", Build(id="B1", status="failed"))
        rack.on_stream(f"{APP}/builds/B1/logs", StreamScript([b"step 1\nERROR: tests failed\n"]))
        with pytest.raises(ConvoxBuildFailedError, match="tests failed") as info:
            builds(rack).poll("myapp", "B1")
        assert "step 1" in info.value.logs_tail


class TestWaitOptions:
    @pytest.mark.parametrize(
        ("option", "value"),
        [
            ("timeout", -1),
            ("timeout", float("nan")),
            ("poll_interval", 0),
            ("poll_interval", "5"),
            ("initial_delay", -0.5),
            ("max_errors", 0),
            ("max_errors", True),
            ("max_errors", 2.0),
            ("on_event", "print"),
        ],
    )
    def test_an_option_that_cannot_work_is_refused_naming_it(self, option: str, value: Any) -> None:
        with pytest.raises(ConvoxInputError, match=f"invalid {option}"):
            WaitOptions(**{option: value})

    def test_the_defaults_have_one_source(self) -> None:
        assert WaitOptions().max_errors == MAX_ERRORS == 5
        assert BUILD_WAIT.max_errors == ROLLOUT_WAIT.max_errors == MAX_ERRORS

    def test_waiting_is_used_as_given(self, rack: FakeRack) -> None:
        rack.on("GET", APP, app("running"), api_error(502, "Bad Gateway"), app("running"))
        waiting = WaitOptions(timeout=60, poll_interval=3.0, initial_delay=1.0, on_event=rack.event)

        AppWorkflows(rack).wait_for_app_running("myapp", waiting=waiting)  # type: ignore[arg-type]

        assert rack.sleeps[0] == pytest.approx(1.0)
        assert rack.events_of(WaitRetrying)[0].limit == MAX_ERRORS

    @pytest.mark.parametrize("keyword", ["timeout", "poll_interval", "max_errors", "on_event"])
    def test_waiting_and_a_non_default_wait_keyword_are_refused(
        self, rack: FakeRack, keyword: str
    ) -> None:
        given = {"timeout": 1.0, "poll_interval": 9.0, "max_errors": 1, "on_event": print}
        with pytest.raises(ConvoxInputError, match=f"waiting= or as {keyword}, not both"):
            releases(rack).promote(
                "myapp", "R2", waiting=WaitOptions(), **{keyword: given[keyword]}
            )
        assert rack.sent == []

    def test_waiting_with_wait_keywords_at_their_defaults_is_accepted(self) -> None:
        waiting = WaitOptions(timeout=10)
        arguments = {"waiting": waiting, "timeout": BUILD_WAIT.timeout, "poll_interval": 1.0}
        assert wait_options(arguments, BUILD_WAIT) is waiting

    def test_a_renamed_timeout_keyword(self) -> None:
        arguments = {"waiting": None, "timeout": 3600, "start_timeout": 7.0}
        assert wait_options(arguments, ROLLOUT_WAIT, timeout="start_timeout").timeout == 7.0

    def test_waiting_must_be_wait_options(self) -> None:
        with pytest.raises(ConvoxInputError, match="waiting must be a WaitOptions"):
            wait_options({"waiting": {"timeout": 5}}, ROLLOUT_WAIT)

    def test_a_promote_passes_its_wait_on_whole(self, rack: FakeRack) -> None:
        rack.on("GET", APP, app("running"))
        rack.on("POST", f"{RELEASES}/R2/promote", None)
        rack.on("GET", f"{APP}/processes", [])
        rack.on("GET", f"{APP}/services", [])
        waiting = WaitOptions(
            timeout=60,
            poll_interval=2.0,
            initial_delay=0.5,
            first_interval=0.4,
            on_event=rack.event,
        )

        releases(rack).promote("myapp", "R2", waiting=waiting)

        assert rack.events_of(PromoteSubmitted)
        assert rack.sleeps[0] == pytest.approx(0.4)


class TestRemoveProcess:
    def test_a_process_still_there_is_deleted(self, rack: FakeRack) -> None:
        rack.on("DELETE", f"{APP}/processes/P1", None)
        assert ProcessWorkflows(rack).remove("myapp", "P1") is True  # type: ignore[arg-type]
        assert rack.keys == [("DELETE", f"{APP}/processes/P1")]

    @pytest.mark.parametrize("status", [404, 500])
    def test_a_process_gone_already_is_not_an_error(self, rack: FakeRack, status: int) -> None:
        rack.on("DELETE", f"{APP}/processes/P1", api_error(status, "process not found"))
        assert ProcessWorkflows(rack).remove("myapp", "P1") is False  # type: ignore[arg-type]

    def test_other_errors_are_raised(self, rack: FakeRack) -> None:
        rack.on("DELETE", f"{APP}/processes/P1", api_error(403, "admin role required"))
        with pytest.raises(ConvoxForbiddenError):
            ProcessWorkflows(rack).remove("myapp", "P1")  # type: ignore[arg-type]
