"""App create, delete and restart without sockets (docs/rack-api.md §4.1, §4.5, §7.7, §7.9)."""

from __future__ import annotations

from typing import Any

import pytest
from workflow_fakes import FakeRack, api_error

from convox_provider.client.errors import (
    ConvoxConflictError,
    ConvoxGatewayError,
    ConvoxInputError,
    ConvoxNotFoundError,
    ConvoxRollbackError,
    ConvoxWaitTimeoutError,
    ConvoxWorkflowError,
)
from convox_provider.client.models import App, AppConfig, Process, Release, Service
from convox_provider.client.waiting import WaitOptions
from convox_provider.client.workflows.apps import (
    MARKER_CONFIG,
    AppLifecycleWorkflows,
    AppRestartWorkflows,
    Restart,
)
from convox_provider.client.workflows.events import AppLifecycle, ServicesRestarted

APP = "/apps/pr-7"
MARKER = f"{APP}/configs/{MARKER_CONFIG}"


def fast(on_event: Any = None) -> WaitOptions:
    return WaitOptions(poll_interval=1.0, initial_delay=1.0, on_event=on_event)


FAST: dict[str, Any] = {"waiting": fast()}
NOT_FOUND = api_error(404, "app not found: pr-7")


def app(status: str = "running", release: str = "", **fields: Any) -> App:
    return App(name="pr-7", status=status, release=release, **fields)


class Workflows(AppRestartWorkflows[Any], AppLifecycleWorkflows[Any]):
    """The app workflows as ``client.apps`` composes them."""


def flows(rack: FakeRack) -> Workflows:
    return Workflows(rack)


def writes(rack: FakeRack) -> list[tuple[str, str]]:
    return [s.key for s in rack.sent if s.method != "GET"]


class TestCreate:
    def test_creates_marks_and_waits_for_two_running_readings(self) -> None:
        rack = FakeRack()
        rack.on("GET", APP, NOT_FOUND, app("updating"), app("running"), app("running"))
        rack.on("POST", "/apps", app("updating"))
        rack.on("PUT", MARKER, None)
        done = flows(rack).create_and_wait("pr-7", marker="m-1", waiting=fast(rack.event))
        assert (done.created, done.pending, done.app.status) == (True, False, "running")
        assert writes(rack) == [("POST", "/apps"), ("PUT", MARKER)]
        post = rack.requests("POST", "/apps")[0]
        assert post.form["name"] == "pr-7"
        assert "generation" in post.form  # as the CLI sends it
        steps = [e.step for e in rack.events_of(AppLifecycle)]
        assert steps == ["creating", "created"]
        assert len(rack.requests("GET", APP)) == 4  # missing, then updating, running, running

    def test_an_existing_app_is_refused_before_any_write(self) -> None:
        rack = FakeRack()
        rack.on("GET", APP, app())
        with pytest.raises(ConvoxConflictError, match=r"app already exists: pr-7.*exists_ok=True"):
            flows(rack).create_and_wait("pr-7", **FAST)
        assert writes(rack) == []

    def test_exists_ok_uses_the_app_as_it_is(self) -> None:
        rack = FakeRack()
        rack.on("GET", APP, app())
        done = flows(rack).create_and_wait("pr-7", exists_ok=True, **FAST)
        assert (done.created, done.pending) == (False, False)
        assert writes(rack) == []

    def test_an_app_carrying_this_marker_is_re_attached_to(self) -> None:
        rack = FakeRack()
        rack.on("GET", APP, app("updating"), app("running"), app("running"))
        rack.on("GET", MARKER, AppConfig(name=MARKER_CONFIG, value="m-1"))
        done = flows(rack).create_and_wait("pr-7", marker="m-1", **FAST)
        assert done.created is True
        assert writes(rack) == []  # no second create, the marker is there

    def test_an_app_with_another_marker_is_not_ours(self) -> None:
        rack = FakeRack()
        rack.on("GET", APP, app())
        rack.on("GET", MARKER, AppConfig(name=MARKER_CONFIG, value="someone-else"))
        with pytest.raises(ConvoxConflictError, match="already exists"):
            flows(rack).create_and_wait("pr-7", marker="m-1", attempted=True, **FAST)
        assert writes(rack) == []

    def test_an_unmarked_app_is_ours_only_after_an_attempt(self) -> None:
        rack = FakeRack()
        rack.on("GET", APP, app())
        rack.on("GET", MARKER, api_error(404, "app config not found"))
        with pytest.raises(ConvoxConflictError):
            flows(rack).create_and_wait("pr-7", marker="m-1", **FAST)
        rack.on("PUT", MARKER, None)
        done = flows(rack).create_and_wait("pr-7", marker="m-1", attempted=True, **FAST)
        assert done.created is True

    def test_an_app_being_deleted_is_refused_even_with_exists_ok(self) -> None:
        rack = FakeRack()
        rack.on("GET", APP, app("deleting"))
        with pytest.raises(ConvoxConflictError, match=r"being deleted.*wait_for_app_deleted"):
            flows(rack).create_and_wait("pr-7", exists_ok=True, **FAST)
        assert writes(rack) == []

    def test_a_lost_answer_fails_and_the_next_attempt_re_attaches(self) -> None:
        rack = FakeRack()
        rack.on("GET", APP, NOT_FOUND)
        rack.on("POST", "/apps", api_error(504, "gateway timeout"))
        with pytest.raises(ConvoxGatewayError):
            flows(rack).create_and_wait("pr-7", marker="m-1", waiting=fast(rack.event))
        assert rack.events == [AppLifecycle("pr-7", "creating")]
        retry = FakeRack()  # the rack as the next attempt finds it: the create took
        retry.on("GET", APP, app("updating"), app("running"))
        retry.on("GET", MARKER, api_error(404, "app config not found"))
        retry.on("PUT", MARKER, None)
        done = flows(retry).create_and_wait("pr-7", marker="m-1", attempted=True, **FAST)
        assert done.created is True
        assert writes(retry) == [("PUT", MARKER)]  # no second create

    def test_settings_are_applied_once_it_runs_and_waited_for(self) -> None:
        rack = FakeRack()
        params = {"BuildMem": "2048"}
        settled = {"locked": True, "parameters": params}
        rack.on("GET", APP, NOT_FOUND, app("updating", **settled), app("running", **settled))
        rack.on("POST", "/apps", app("running"))
        rack.on("PUT", APP, None)
        done = flows(rack).create_and_wait("pr-7", lock=True, parameters=params, **FAST)
        assert done.app.locked is True
        puts = rack.requests("PUT", APP)
        assert len(puts) == 1
        assert puts[0].form["lock"] == "true"
        assert "BuildMem" in puts[0].form["parameters"]

    def test_without_wait_a_new_app_is_pending(self) -> None:
        rack = FakeRack()
        rack.on("GET", APP, NOT_FOUND)
        rack.on("POST", "/apps", app("updating"))
        done = flows(rack).create_and_wait("pr-7", wait=False, **FAST)
        assert (done.created, done.pending) == (True, True)
        assert rack.sleeps == []

    @pytest.mark.parametrize(
        ("name", "problem"),
        [
            ("pr/7", "cannot contain '/'"),
            ("..", "cannot be '.' or '..'"),
            ("PR-7", "must start with a lowercase letter"),
            ("7pr", "must start with a lowercase letter"),
            ("pr-", "cannot end with '-'"),
            ("system", "reserved"),
        ],
    )
    def test_bad_names_are_refused_before_any_request(self, name: str, problem: str) -> None:
        rack = FakeRack()
        with pytest.raises(ConvoxInputError, match=problem):
            flows(rack).create_and_wait(name)
        assert rack.sent == []

    def test_unknown_parameters_are_refused(self) -> None:
        rack = FakeRack()
        with pytest.raises(ConvoxInputError, match=r"BuildGpu.*silently drop"):
            flows(rack).create_and_wait("pr-7", parameters={"BuildGpu": "1"})
        assert rack.sent == []


class TestDelete:
    def test_deletes_and_waits_for_two_not_found_readings(self) -> None:
        rack = FakeRack()
        rack.on("GET", APP, app(), app("deleting"), NOT_FOUND, NOT_FOUND)
        rack.on("DELETE", APP, None)
        assert flows(rack).delete_and_wait("pr-7", **FAST) is True
        assert writes(rack) == [("DELETE", APP)]
        assert len(rack.requests("GET", APP)) == 4

    def test_a_locked_app_is_refused_before_the_delete(self) -> None:
        rack = FakeRack()
        rack.on("GET", APP, app(locked=True))
        with pytest.raises(ConvoxConflictError, match=r"app is locked: pr-7.*lock=False"):
            flows(rack).delete_and_wait("pr-7", **FAST)
        assert writes(rack) == []

    def test_a_missing_app_is_an_error_unless_missing_ok(self) -> None:
        rack = FakeRack()
        rack.on("GET", APP, NOT_FOUND)
        with pytest.raises(ConvoxNotFoundError, match=r"app not found: pr-7.*missing_ok=True"):
            flows(rack).delete_and_wait("pr-7", **FAST)
        assert flows(rack).delete_and_wait("pr-7", missing_ok=True, **FAST) is False
        assert writes(rack) == []

    def test_an_app_already_deleting_is_only_waited_for(self) -> None:
        rack = FakeRack()
        rack.on("GET", APP, app("deleting"), NOT_FOUND, NOT_FOUND)
        assert flows(rack).delete_and_wait("pr-7", **FAST) is True
        assert writes(rack) == []

    def test_a_delete_answered_not_found_is_gone(self) -> None:
        rack = FakeRack()
        rack.on("GET", APP, app(), NOT_FOUND, NOT_FOUND)
        rack.on("DELETE", APP, NOT_FOUND)
        assert flows(rack).delete_and_wait("pr-7", **FAST) is True

    def test_an_app_that_comes_back_fails_the_wait(self) -> None:
        rack = FakeRack()
        rack.on("GET", APP, app(), NOT_FOUND, app("updating"))
        rack.on("DELETE", APP, None)
        with pytest.raises(ConvoxWorkflowError, match="not being deleted"):
            flows(rack).delete_and_wait("pr-7", **FAST)

    def test_the_wait_has_a_deadline(self) -> None:
        rack = FakeRack()
        rack.on("GET", APP, app(), app("deleting"))
        rack.on("DELETE", APP, None)
        with pytest.raises(ConvoxWaitTimeoutError, match="to be deleted"):
            flows(rack).delete_and_wait(
                "pr-7", waiting=WaitOptions(timeout=10, poll_interval=1.0, initial_delay=1.0)
            )


def pod(pid: str, status: str = "running", name: str = "web") -> Process:
    return Process(id=pid, name=name, status=status, release="R1")


SERVICES = [Service(name="worker", count=1), Service(name="web", count=2)]
OLD = [pod("web-aaaa-1"), pod("web-aaaa-2"), pod("worker-bbbb-1", name="worker")]


class TestRestart:
    def test_restarts_each_service_in_name_order_and_waits_for_new_pods(self) -> None:
        rack = FakeRack()
        rack.on("GET", APP, app(release="R1"))
        rack.on("GET", f"{APP}/services", SERVICES)
        new = [pod("web-cccc-1"), pod("web-cccc-2"), pod("worker-dddd-1", name="worker")]
        rack.on(
            "GET",
            f"{APP}/processes",
            OLD,  # before the restart
            *[OLD] * 4,  # the rollout wait's pod watch, one a poll within initial_delay (§5.11)
            OLD,  # the rollout wait's ready check: the release's pods all running
            [*OLD, pod("web-cccc-1", "pending")],  # the pods wait
            [OLD[0], pod("web-cccc-1"), pod("web-cccc-2"), *new[2:]],
            new,
        )
        rack.on("POST", f"{APP}/services/*/restart", None)
        done = flows(rack).restart("pr-7", waiting=fast(rack.event))
        assert done == Restart("pr-7", "R1", ("web", "worker"), tuple(p.id for p in OLD))
        assert writes(rack) == [
            ("POST", f"{APP}/services/web/restart"),
            ("POST", f"{APP}/services/worker/restart"),
        ]
        assert len(rack.requests("GET", f"{APP}/processes")) == 9
        assert rack.events_of(ServicesRestarted)[0].services == ("web", "worker")

    def test_one_service(self) -> None:
        rack = FakeRack()
        rack.on("GET", APP, app(release="R1"))
        rack.on("GET", f"{APP}/services", SERVICES)
        rack.on("GET", f"{APP}/processes", OLD)
        rack.on("POST", f"{APP}/services/worker/restart", None)
        done = flows(rack).restart("pr-7", service="worker", wait=False)
        assert (done.services, done.replaced) == (("worker",), ("worker-bbbb-1",))
        assert writes(rack) == [("POST", f"{APP}/services/worker/restart")]

    def test_an_unknown_service_is_refused_naming_the_services(self) -> None:
        rack = FakeRack()
        rack.on("GET", APP, app(release="R1"))
        rack.on("GET", f"{APP}/services", SERVICES)
        with pytest.raises(ConvoxInputError, match=r"no service 'wbe' \(its services: web, worker"):
            flows(rack).restart("pr-7", service="wbe")
        assert writes(rack) == []

    def test_a_missing_app_is_refused(self) -> None:
        rack = FakeRack()
        rack.on("GET", APP, NOT_FOUND)
        with pytest.raises(ConvoxNotFoundError, match="nothing was restarted"):
            flows(rack).restart("pr-7")
        assert writes(rack) == []

    def test_an_app_without_services_is_refused(self) -> None:
        rack = FakeRack()
        rack.on("GET", APP, app())
        rack.on("GET", f"{APP}/services", [])
        with pytest.raises(ConvoxWorkflowError, match="no services to restart"):
            flows(rack).restart("pr-7")
        assert writes(rack) == []

    def test_a_crashing_new_pod_fails_the_wait(self) -> None:
        rack = FakeRack()
        rack.on("GET", APP, app(release="R1"))
        rack.on("GET", f"{APP}/services", SERVICES)
        rack.on("GET", f"{APP}/processes", OLD, OLD, OLD, [*OLD, pod("web-cccc-1", "crashed")])
        rack.on("POST", f"{APP}/services/web/restart", None)
        with pytest.raises(ConvoxWorkflowError, match="web-cccc-1 crashed"):
            flows(rack).restart("pr-7", service="web", **FAST)

    def test_a_rollback_during_the_restart_raises_as_after_a_promote(self) -> None:
        rack = FakeRack()
        rack.on("GET", APP, app(release="R1"), app("rollback", release="R0"))
        rack.on("GET", f"{APP}/services", SERVICES)
        rack.on("GET", f"{APP}/processes", OLD)
        rack.on("GET", f"{APP}/releases/*", lambda sent: Release(id=sent.path.rsplit("/", 1)[1]))
        rack.on("POST", f"{APP}/services/web/restart", None)
        with pytest.raises(ConvoxRollbackError):
            flows(rack).restart("pr-7", service="web", **FAST)

    def test_old_pods_left_keep_the_wait_going_until_the_deadline(self) -> None:
        rack = FakeRack()
        rack.on("GET", APP, app(release="R1"))
        rack.on("GET", f"{APP}/services", SERVICES)
        rack.on("GET", f"{APP}/processes", OLD)
        rack.on("POST", f"{APP}/services/web/restart", None)
        with pytest.raises(ConvoxWaitTimeoutError, match=r"1 old process|2 old process"):
            flows(rack).restart(
                "pr-7",
                service="web",
                waiting=WaitOptions(timeout=10, poll_interval=1.0, initial_delay=1.0),
            )
