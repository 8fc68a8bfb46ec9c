"""Promote, rollback and the rollout wait without sockets (docs/rack-api.md §7.4, §7.5, §7.9)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from itertools import pairwise
from typing import Any

import pytest
from workflow_fakes import FakeRack, api_error

from convox_provider.client.errors import (
    ConvoxAuthError,
    ConvoxConnectionError,
    ConvoxForbiddenError,
    ConvoxGatewayError,
    ConvoxInputError,
    ConvoxRollbackError,
    ConvoxSupersededError,
    ConvoxWaitTimeoutError,
    ConvoxWorkflowError,
)
from convox_provider.client.models import App, Process, Release, Service
from convox_provider.client.waiting import MAX_ERRORS
from convox_provider.client.workflows import AppWorkflows, ReleaseWorkflows
from convox_provider.client.workflows.events import (
    AppStatusChanged,
    ProcessStateChanged,
    PromoteSubmitted,
    ReleaseCreated,
    RollbackTargetChosen,
    WaitRetrying,
)

APP = "/apps/myapp"
PROMOTE_R2 = ("POST", f"{APP}/releases/R2/promote")


def app(status: str, release: str = "R2") -> App:
    return App(name="myapp", status=status, release=release)


def _numbered_release(sent: Any) -> Release:
    """``GET …/releases/R<n>``: release R<n>, created n minutes into the day (R9 after R2)."""
    release_id = sent.path.rsplit("/", 1)[1]
    created = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=int(release_id[1:]))
    return Release(id=release_id, build=f"B{release_id[1:]}", created=created)


@pytest.fixture
def rack() -> FakeRack:
    fake = FakeRack()
    fake.on("GET", f"{APP}/releases/R*", _numbered_release)
    # no services: no pods to confirm a rollout by, so the two-readings rule decides
    fake.on("GET", f"{APP}/services", [])
    return fake


def promote(rack: FakeRack, release: str | None = "R2", **options: object) -> str:
    options.setdefault("on_event", rack.event)
    return ReleaseWorkflows(rack).promote("myapp", release, **options)  # type: ignore[arg-type]


class TestPromote:
    def test_running_app_promotes_at_once_then_waits_for_two_running_readings_on_it(
        self, rack: FakeRack
    ) -> None:
        rack.on("GET", APP, app("running", "R1"), app("updating"), app("running"), app("running"))
        rack.on("POST", f"{APP}/releases/R2/promote", None)
        rack.on("GET", f"{APP}/processes", [])

        assert promote(rack) == "R2"

        assert rack.keys.count(PROMOTE_R2) == 1
        assert rack.requests("POST")[0].form == {"force": "false"}
        assert rack.keys.count(("GET", APP)) == 4  # pre-check, updating, running, running
        # first check after first_interval (0.25 s), then each pause 1.5 times the one before
        # (from the start of the previous check, whose GETs of the app and its pods took 0.02 s
        # in the fake, the running one also the services' 0.01 s)
        assert rack.sleeps[:3] == pytest.approx([0.25, 0.23, 0.335])
        assert rack.events_of(PromoteSubmitted) == [PromoteSubmitted("myapp", "R2", False)]

    def test_updating_app_is_waited_for_before_the_promote(self, rack: FakeRack) -> None:
        rack.on(
            "GET",
            APP,
            app("updating", "R1"),
            app("updating", "R1"),
            app("running", "R1"),
            app("running", "R1"),
            app("running"),
        )
        rack.on("POST", f"{APP}/releases/R2/promote", None)
        rack.on("GET", f"{APP}/processes", [])

        promote(rack, initial_delay=0.0)

        promote_at = rack.keys.index(PROMOTE_R2)
        assert rack.keys[:promote_at].count(("GET", APP)) == 4  # the pre-wait saw running twice

    def test_force_skips_the_pre_wait_and_is_sent(self, rack: FakeRack) -> None:
        rack.on("GET", APP, app("running"))
        rack.on("POST", f"{APP}/releases/R2/promote", None)
        rack.on("GET", f"{APP}/processes", [])

        promote(rack, force=True)

        assert rack.keys[0] == PROMOTE_R2
        assert rack.requests("POST")[0].form == {"force": "true"}

    def test_no_release_id_promotes_the_newest_release(self, rack: FakeRack) -> None:
        rack.on("GET", f"{APP}/releases", [Release(id="R2"), Release(id="R1")])
        rack.on("GET", APP, app("running"))
        rack.on("POST", f"{APP}/releases/R2/promote", None)

        assert promote(rack, None, wait=False) == "R2"
        assert rack.requests("GET", f"{APP}/releases")[0].query == {"limit": "1"}

    def test_app_without_releases_fails_clearly(self, rack: FakeRack) -> None:
        rack.on("GET", f"{APP}/releases", [])
        with pytest.raises(ConvoxWorkflowError, match="no release to promote"):
            promote(rack, None)

    def test_wait_false_returns_after_the_submit(self, rack: FakeRack) -> None:
        rack.on("GET", APP, app("running", "R1"))
        rack.on("POST", f"{APP}/releases/R2/promote", None)

        assert promote(rack, wait=False) == "R2"
        assert rack.keys == [("GET", APP), PROMOTE_R2]

    def test_rollback_status_raises_at_once(self, rack: FakeRack) -> None:
        rack.on("GET", APP, app("running", "R1"), app("updating"), app("rollback", "R1"))
        rack.on("POST", f"{APP}/releases/R2/promote", None)
        rack.on("GET", f"{APP}/processes", [])

        with pytest.raises(ConvoxRollbackError) as info:
            promote(rack)

        assert info.value.release_id == "R2"
        assert info.value.active_release == "R1"
        assert rack.keys.count(("GET", APP)) == 3  # no further poll after the rollback

    def test_running_on_another_release_at_the_end_is_a_rollback(self, rack: FakeRack) -> None:
        # Reverted rollouts read "running": only app.release tells (§5.1).
        rack.on("GET", APP, app("running", "R1"), app("running", "R1"))
        rack.on("POST", f"{APP}/releases/R2/promote", None)
        rack.on("GET", f"{APP}/processes", [])

        with pytest.raises(ConvoxRollbackError, match="back on release R1"):
            promote(rack)

    def test_rollback_message_names_each_release_once(self, rack: FakeRack) -> None:
        rack.on("GET", APP, app("running", "R1"), app("running", "R1"))
        rack.on("POST", f"{APP}/releases/R2/promote", None)
        rack.on("GET", f"{APP}/processes", [])

        with pytest.raises(ConvoxRollbackError) as info:
            promote(rack)

        message = str(info.value)
        assert message.count("R2") == 1
        assert message.count("rolled back") == 1

    def test_a_newer_release_promoted_meanwhile_supersedes_not_rolls_back(
        self, rack: FakeRack
    ) -> None:
        # Our R2 rolls out; someone promotes R3 before the second "running" reading.
        rack.on(
            "GET",
            APP,
            app("running", "R1"),
            app("updating", "R2"),
            app("running", "R2"),
            app("updating", "R3"),
            app("running", "R3"),
            app("running", "R3"),
        )
        rack.on("POST", f"{APP}/releases/R2/promote", None)
        rack.on("GET", f"{APP}/processes", [])

        with pytest.raises(ConvoxSupersededError) as info:
            promote(rack)

        assert not isinstance(info.value, ConvoxRollbackError)
        assert (info.value.release_id, info.value.active_release) == ("R2", "R3")
        assert "superseded" in str(info.value)
        assert "R3" in str(info.value)

    def test_a_newer_release_rolling_back_supersedes(self, rack: FakeRack) -> None:
        rack.on("GET", APP, app("running", "R1"), app("updating", "R2"), app("rollback", "R3"))
        rack.on("POST", f"{APP}/releases/R2/promote", None)
        rack.on("GET", f"{APP}/processes", [])

        with pytest.raises(ConvoxSupersededError):
            promote(rack)

    def test_rollback_status_of_this_release_names_it_once(self, rack: FakeRack) -> None:
        rack.on("GET", APP, app("running", "R1"), app("updating"), app("rollback", "R2"))
        rack.on("POST", f"{APP}/releases/R2/promote", None)
        rack.on("GET", f"{APP}/processes", [])

        with pytest.raises(
            ConvoxRollbackError, match="release R2 of app myapp was rolled back: its"
        ):
            promote(rack)

    def test_403_from_a_rollout_that_started_meanwhile_is_waited_out(self, rack: FakeRack) -> None:
        rack.on(
            "GET",
            APP,
            app("running", "R1"),
            app("updating", "R1"),
            app("running", "R1"),
            app("running", "R1"),
            app("running"),
        )
        rack.on(
            "POST",
            f"{APP}/releases/R2/promote",
            api_error(403, "app is currently updating"),
            None,
        )
        rack.on("GET", f"{APP}/processes", [])

        assert promote(rack, initial_delay=0.0) == "R2"
        assert rack.keys.count(PROMOTE_R2) == 2

    def test_403_with_force_is_raised(self, rack: FakeRack) -> None:
        rack.on("POST", f"{APP}/releases/R2/promote", api_error(403, "budget"))
        with pytest.raises(ConvoxForbiddenError):
            promote(rack, force=True)
        assert rack.keys.count(PROMOTE_R2) == 1

    def test_a_promote_lost_in_transit_is_never_sent_again(self, rack: FakeRack) -> None:
        rack.on("GET", APP, app("running", "R1"))
        rack.on("POST", f"{APP}/releases/R2/promote", ConvoxConnectionError("reset"))
        with pytest.raises(ConvoxConnectionError):
            promote(rack)
        assert rack.keys.count(PROMOTE_R2) == 1

    def test_pod_transitions_are_reported(self, rack: FakeRack) -> None:
        rack.on("GET", APP, app("running", "R1"), app("updating"), app("running"), app("running"))
        rack.on("POST", f"{APP}/releases/R2/promote", None)
        old = Process(id="web-1", name="web", status="running", release="R1")
        new = Process(id="web-2", name="web", status="pending", release="R2")
        rack.on(
            "GET",
            f"{APP}/processes",
            [old],
            [old, new],
            [new.model_copy(update={"status": "running"})],
        )

        promote(rack)

        changes = [
            (e.process_id, e.previous, e.status) for e in rack.events_of(ProcessStateChanged)
        ]
        assert changes == [
            ("web-2", None, "pending"),
            ("web-2", "pending", "running"),
            ("web-1", "running", "gone"),
        ]

    def test_invalid_arguments_send_nothing(self, rack: FakeRack) -> None:
        workflows = ReleaseWorkflows(rack)
        with pytest.raises(ConvoxInputError):
            workflows.promote("myapp", "R2", poll_interval=0)
        with pytest.raises(ConvoxInputError):
            workflows.promote("my/app", "R2")
        assert rack.sent == []


class TestWaitForAppRunning:
    def wait(self, rack: FakeRack, **options: object) -> App:
        options.setdefault("on_event", rack.event)
        return AppWorkflows(rack).wait_for_app_running("myapp", **options)  # type: ignore[arg-type]

    def test_first_check_after_the_initial_delay(self, rack: FakeRack) -> None:
        rack.on("GET", APP, app("running"))
        assert self.wait(rack, initial_delay=7.0, poll_interval=2.0).status == "running"
        assert rack.sleeps == pytest.approx([7.0, 1.99])  # the first GET took 0.01 s
        assert rack.events_of(AppStatusChanged) == [
            AppStatusChanged("myapp", "running", None, "R2")
        ]

    def test_polls_start_an_interval_apart_and_a_slow_one_never_causes_a_burst(
        self, rack: FakeRack
    ) -> None:
        started: list[float] = []

        def reading(status: str, takes: float) -> object:
            def answer(sent: object) -> App:
                started.append(rack.clock - 0.01)  # the fake already added a request's 0.01 s
                rack.clock += takes
                return app(status)

            return answer

        rack.on("GET", APP, reading("updating", 0.5), reading("updating", 3.0))
        rack.on("GET", APP, reading("running", 0.0), reading("running", 0.0))
        self.wait(rack, initial_delay=0.0, poll_interval=2.0)
        # 2 s from each poll's start: 1.49 s after the 0.51 s poll, none after the 3.01 s one
        # (never a negative sleep), and no catch-up: the next poll then waits a full interval
        assert rack.sleeps == pytest.approx([1.49, 1.99])
        gaps = [later - earlier for earlier, later in pairwise(started)]
        assert gaps == pytest.approx([2.0, 3.01, 2.0])

    def test_running_must_be_read_twice_in_a_row(self, rack: FakeRack) -> None:
        rack.on("GET", APP, app("running"), app("updating"), app("running"), app("running"))
        self.wait(rack)
        assert rack.keys.count(("GET", APP)) == 4

    def test_one_502_does_not_end_the_wait(self, rack: FakeRack) -> None:
        rack.on(
            "GET",
            APP,
            app("updating"),
            api_error(502, "Bad Gateway"),
            app("running"),
            app("running"),
        )
        assert self.wait(rack).status == "running"
        retry = rack.events_of(WaitRetrying)
        assert len(retry) == 1
        assert retry[0].failures == 1
        assert retry[0].limit == MAX_ERRORS

    def test_consecutive_failures_end_the_wait(self, rack: FakeRack) -> None:
        rack.on(
            "GET",
            APP,
            app("updating"),
            api_error(502, "Bad Gateway"),
            ConvoxConnectionError("refused"),
            api_error(503, "Service Unavailable"),
        )
        with pytest.raises(ConvoxGatewayError):
            self.wait(rack)
        # one good reading, then MAX_ERRORS failures in a row (the last answer repeats)
        assert rack.keys.count(("GET", APP)) == 1 + MAX_ERRORS

    def test_a_success_resets_the_failure_count(self, rack: FakeRack) -> None:
        rack.on(
            "GET",
            APP,
            api_error(502, "x"),
            api_error(502, "x"),
            app("updating"),
            api_error(502, "x"),
            api_error(502, "x"),
            app("running"),
            app("running"),
        )
        assert self.wait(rack).status == "running"

    def test_max_errors_is_configurable(self, rack: FakeRack) -> None:
        rack.on("GET", APP, api_error(502, "x"), app("running"))
        with pytest.raises(ConvoxGatewayError):
            self.wait(rack, max_errors=1)

    def test_a_non_transient_error_ends_the_wait_at_once(self, rack: FakeRack) -> None:
        rack.on("GET", APP, api_error(401, "invalid authentication"))
        with pytest.raises(ConvoxAuthError):
            self.wait(rack)
        assert len(rack.sent) == 1

    def test_the_deadline_is_absolute(self, rack: FakeRack) -> None:
        rack.on("GET", APP, app("updating"))
        with pytest.raises(ConvoxWaitTimeoutError, match=r"after 60s.*updating"):
            self.wait(rack, timeout=60.0, initial_delay=5.0, poll_interval=10.0)
        # sleeps never go past the deadline: 5 + 10*5 + the rest
        assert sum(rack.sleeps) <= 60.0
        assert rack.clock - 1000.0 >= 60.0
        assert rack.keys.count(("GET", APP)) == 6

    def test_rollback_without_a_release_id_names_the_current_release(self, rack: FakeRack) -> None:
        rack.on("GET", APP, app("rollback", "R7"))
        with pytest.raises(ConvoxRollbackError) as info:
            self.wait(rack)
        assert info.value.active_release == "R7"

    def test_release_check(self, rack: FakeRack) -> None:
        rack.on("GET", APP, app("running", "R1"))
        with pytest.raises(ConvoxRollbackError):
            self.wait(rack, release_id="R2")

    def test_deleting_app_fails(self, rack: FakeRack) -> None:
        rack.on("GET", APP, app("deleting"))
        with pytest.raises(ConvoxWorkflowError, match="being deleted"):
            self.wait(rack)


def web(pid: str, status: str, release: str = "R2") -> Process:
    return Process(id=pid, name="web", status=status, release=release)


class TestFastConfirmation:
    """A rollout's end is confirmed by the release's pods instead of a second reading, and the
    app on its old release is the lag, not a rollback, until ``initial_delay`` (§5.1, §5.11)."""

    def test_ready_pods_confirm_the_first_running_reading(self, rack: FakeRack) -> None:
        rack.on("GET", APP, app("running", "R1"), app("updating"), app("running"))
        rack.on("POST", f"{APP}/releases/R2/promote", None)
        rack.instead("GET", f"{APP}/services", [Service(name="web", count=2)])
        ready = [web("web-7d9f-a", "running"), web("web-7d9f-b", "running")]
        rack.on("GET", f"{APP}/processes", [web("web-7d9f-0", "running", "R1"), *ready])

        assert promote(rack) == "R2"

        assert rack.keys.count(("GET", APP)) == 3  # pre-check, updating, running: no 2nd one
        assert rack.requests("GET", f"{APP}/processes")[-1].query == {"release": "R2"}
        assert sum(rack.sleeps) < 1.0  # the fake clock: two ramped pauses, not 5 s + 5 s

    @pytest.mark.parametrize(
        ("readings", "pods"),
        [
            pytest.param(
                [app("running"), app("updating"), app("rollback", "R1"), app("running", "R1")],
                [web("web-7d9f-a", "running"), web("web-7d9f-b", "running")],
                id="running-on-it-before-its-rollout-was-seen",
            ),
            pytest.param(
                [app("updating"), app("running"), app("rollback", "R1"), app("running", "R1")],
                [web("web-7d9f-a", "crashed")],
                id="running-on-it-while-its-pods-crash",
            ),
            pytest.param(
                [app("updating"), app("running"), app("rollback", "R1"), app("running", "R1")],
                [web("web-7d9f-a", "running"), web("web-7d9f-b", "pending")],
                id="running-on-it-before-all-its-pods-are-ready",
            ),
            pytest.param(
                [app("updating"), app("running"), app("running", "R1")],
                [web("web-7d9f-a", "starting"), web("web-7d9f-b", "running")],
                id="reverted-between-two-polls",
            ),
        ],
    )
    def test_success_is_never_reported_for_a_rollout_that_is_then_rolled_back(
        self, rack: FakeRack, readings: list[App], pods: list[Process]
    ) -> None:
        rack.on("GET", APP, app("running", "R1"), *readings)
        rack.on("POST", f"{APP}/releases/R2/promote", None)
        rack.instead("GET", f"{APP}/services", [Service(name="web", count=2)])
        rack.on("GET", f"{APP}/processes", pods)

        with pytest.raises(ConvoxRollbackError) as info:
            promote(rack)

        assert (info.value.release_id, info.value.active_release) == ("R2", "R1")

    def test_a_one_off_process_of_the_release_is_no_ready_replica(self, rack: FakeRack) -> None:
        rack.on("GET", APP, app("running", "R1"), app("updating"), app("running"))
        rack.on("POST", f"{APP}/releases/R2/promote", None)
        rack.instead("GET", f"{APP}/services", [Service(name="web", count=1)])
        # a migration's sleeping pod on the new release, named <service>-<suffix> (§5.11)
        rack.on("GET", f"{APP}/processes", [web("web-x2kqp", "running")])

        assert promote(rack) == "R2"

        assert rack.keys.count(("GET", APP)) == 4  # not confirmed by it: a second reading

    def test_the_old_release_within_the_initial_delay_is_the_lag_not_a_rollback(
        self, rack: FakeRack
    ) -> None:
        rack.on(
            "GET",
            APP,
            app("running", "R1"),
            app("running", "R1"),
            app("running", "R1"),
            app("updating"),
            app("running"),
        )
        rack.on("POST", f"{APP}/releases/R2/promote", None)
        rack.instead("GET", f"{APP}/services", [Service(name="web", count=1)])
        rack.on("GET", f"{APP}/processes", [web("web-7d9f-a", "running")])

        assert promote(rack, initial_delay=5.0) == "R2"
        assert rack.clock - 1000.0 < 5.0  # all of it within the lag allowed

    def test_the_old_release_after_the_initial_delay_is_a_rollback(self, rack: FakeRack) -> None:
        rack.on("GET", APP, app("running", "R1"))
        rack.on("POST", f"{APP}/releases/R2/promote", None)
        rack.on("GET", f"{APP}/processes", [])

        with pytest.raises(ConvoxRollbackError):
            promote(rack, initial_delay=2.0)

        assert 2.0 <= rack.clock - 1000.0 < 4.0  # the first reading past the lag decided


class TestRollback:
    def test_creates_a_release_from_the_old_build_and_env_and_promotes_the_new_one(
        self, rack: FakeRack
    ) -> None:
        old = Release(id="R1", build="B1", env="A=1\nSECRET=hunter2")
        rack.on("GET", f"{APP}/releases/R1", old)
        rack.on("POST", f"{APP}/releases", Release(id="R9", build="B1", description="b1"))
        rack.on("POST", f"{APP}/releases/R9/promote", None)
        rack.on("GET", APP, app("running", "R2"), app("updating", "R9"), app("running", "R9"))
        rack.on("GET", f"{APP}/processes", [])

        result = ReleaseWorkflows(rack).rollback("myapp", "R1", on_event=rack.event)

        assert result == "R9"
        create = rack.requests("POST", f"{APP}/releases")[0]
        assert create.form == {"build": "B1", "env": "A=1\nSECRET=hunter2"}
        promotes = [s.path for s in rack.requests("POST") if s.path.endswith("/promote")]
        assert promotes == [f"{APP}/releases/R9/promote"]  # never the old id (§8 item 2)
        # like the CLI: no wait for "running" before the promote, one look at the app first
        assert rack.keys.index(("POST", f"{APP}/releases/R9/promote")) == 3
        assert rack.events_of(ReleaseCreated) == [ReleaseCreated("myapp", "R9", "B1", "b1")]
        assert "hunter2" not in repr(rack.events)

    @pytest.mark.parametrize("status", ["updating", "rollback"])
    def test_during_a_rollout_nothing_is_created_and_the_fix_is_named(
        self, rack: FakeRack, status: str
    ) -> None:
        rack.on("GET", APP, app(status, "R5"))
        with pytest.raises(ConvoxWorkflowError) as refused:
            ReleaseWorkflows(rack).rollback("myapp", "R1", wait=False)
        message = str(refused.value)
        assert f"app myapp is {status} (a rollout is in progress)" in message
        assert "nothing was created" in message
        assert "wait_first=True" in message
        assert "force=True" in message
        assert rack.requests("POST") == []

    def test_a_rollout_started_meanwhile_names_the_release_left_behind(
        self, rack: FakeRack
    ) -> None:
        rack.on("GET", APP, app("running", "R2"))
        rack.on("GET", f"{APP}/releases/R1", Release(id="R1", build="B1", env=""))
        rack.on("POST", f"{APP}/releases", Release(id="R9", build="B1"))
        rack.on("POST", f"{APP}/releases/R9/promote", api_error(403, "app is currently updating"))
        with pytest.raises(ConvoxForbiddenError) as refused:
            ReleaseWorkflows(rack).rollback("myapp", "R1")
        assert rack.keys.count(("POST", f"{APP}/releases/R9/promote")) == 1
        assert refused.value.status_code == 403
        assert refused.value.request_id == "0123456789ab"
        assert "Release R9 (the rollback) was created but not promoted" in str(refused.value)
        assert "wait_first=True or force=True" in str(refused.value)

    def test_force_promotes_during_a_rollout_without_looking(self, rack: FakeRack) -> None:
        rack.on("GET", f"{APP}/releases/R1", Release(id="R1", build="B1", env=""))
        rack.on("POST", f"{APP}/releases", Release(id="R9", build="B1"))
        rack.on("POST", f"{APP}/releases/R9/promote", None)
        assert ReleaseWorkflows(rack).rollback("myapp", "R1", wait=False, force=True) == "R9"
        assert ("GET", APP) not in rack.keys

    def test_wait_first_waits_out_a_rollout_in_progress_before_the_promote(
        self, rack: FakeRack
    ) -> None:
        rack.on("GET", f"{APP}/releases/R1", Release(id="R1", build="B1", env=""))
        rack.on("POST", f"{APP}/releases", Release(id="R9", build="B1"))
        rack.on("POST", f"{APP}/releases/R9/promote", None)
        rack.on(
            "GET",
            APP,
            app("rollback", "R5"),  # the rack is rolling a failed deploy back
            app("running", "R1"),
            app("running", "R1"),
            app("updating", "R9"),
            app("running", "R9"),
        )
        rack.on("GET", f"{APP}/processes", [])

        result = ReleaseWorkflows(rack).rollback(
            "myapp", "R1", wait_first=True, poll_interval=0.01, initial_delay=0
        )

        assert result == "R9"
        promote = rack.keys.index(("POST", f"{APP}/releases/R9/promote"))
        assert rack.keys[:promote].count(("GET", APP)) == 3
        assert rack.keys.count(("POST", f"{APP}/releases/R9/promote")) == 1

    def test_a_release_without_build_is_refused_before_creating(self, rack: FakeRack) -> None:
        rack.on("GET", f"{APP}/releases/R1", Release(id="R1", build="", env="A=1"))
        rack.on("GET", APP, app("running", "R2"))
        with pytest.raises(ConvoxWorkflowError, match="no build"):
            ReleaseWorkflows(rack).rollback("myapp", "R1")
        assert rack.requests("POST") == []

    def test_without_a_target_goes_back_to_the_release_before_the_active_one(
        self, rack: FakeRack
    ) -> None:
        rack.on("GET", f"{APP}/releases", [Release(id=f"R{n}") for n in (3, 2, 1)])
        rack.on("POST", f"{APP}/releases", Release(id="R9", build="B2"))
        rack.on("POST", f"{APP}/releases/R9/promote", None)
        rack.on("GET", APP, app("running", "R2"))

        result = ReleaseWorkflows(rack).rollback("myapp", wait=False, on_event=rack.event)

        assert result == "R9"
        assert rack.events_of(RollbackTargetChosen) == [RollbackTargetChosen("myapp", "R1")]
        assert rack.requests("POST", f"{APP}/releases")[0].form["build"] == "B1"

    def test_without_a_target_and_no_older_release_fails_before_any_write(
        self, rack: FakeRack
    ) -> None:
        rack.on("GET", f"{APP}/releases", [Release(id="R2"), Release(id="R1")])
        rack.on("GET", APP, app("running", "R1"))
        with pytest.raises(ConvoxWorkflowError, match="no release older than"):
            ReleaseWorkflows(rack).rollback("myapp")
        assert rack.requests("POST") == []

    def test_undoing_refuses_to_roll_back_over_a_newer_release(self, rack: FakeRack) -> None:
        # The rollback was to undo R2; meanwhile someone deployed R3.
        rack.on("GET", APP, app("running", "R3"))
        with pytest.raises(ConvoxSupersededError) as info:
            ReleaseWorkflows(rack).rollback("myapp", "R1", undoing="R2")
        assert (info.value.release_id, info.value.active_release) == ("R2", "R3")
        assert rack.requests("POST") == []

    def test_undoing_rolls_back_while_the_app_runs_that_release_or_an_older_one(
        self, rack: FakeRack
    ) -> None:
        rack.on("POST", f"{APP}/releases", Release(id="R9", build="B1"))
        rack.on("POST", f"{APP}/releases/R9/promote", None)
        rack.on("GET", APP, app("running", "R2"))

        result = ReleaseWorkflows(rack).rollback("myapp", "R1", undoing="R2", wait=False)

        assert result == "R9"
        assert rack.requests("POST", f"{APP}/releases")[0].form["build"] == "B1"

    def test_rolled_back_rollback_raises(self, rack: FakeRack) -> None:
        rack.on("GET", f"{APP}/releases/R1", Release(id="R1", build="B1", env=""))
        rack.on("POST", f"{APP}/releases", Release(id="R9", build="B1"))
        rack.on("POST", f"{APP}/releases/R9/promote", None)
        rack.on("GET", APP, app("running", "R5"))
        rack.on("GET", f"{APP}/processes", [])
        with pytest.raises(ConvoxRollbackError):
            ReleaseWorkflows(rack).rollback("myapp", "R1", initial_delay=0)
