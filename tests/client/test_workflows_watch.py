"""The watch decisions, driven without sockets: which release is new since a cursor, when an app
is idle, how a process ended (``client/workflows/watch.py``)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from workflow_fakes import FakeRack, api_error

from convox_provider.assets import asset_uri
from convox_provider.client.errors import ConvoxGatewayError, ConvoxInputError, ConvoxNotFoundError
from convox_provider.client.models import App, Process, Release
from convox_provider.client.waiting import WaitOptions
from convox_provider.client.workflows.events import WaitRetrying
from convox_provider.client.workflows.watch import (
    BEFORE_FIRST_RELEASE,
    AppReading,
    AppWatch,
    ProcessReading,
    ProcessWatch,
    ReleaseWatch,
    created_after,
)

APP = "/apps/myapp"
T0 = datetime(2026, 1, 15, 14, 0, tzinfo=timezone.utc)


def app(status: str, release: str) -> App:
    return App(name="myapp", status=status, release=release)


def release(rid: str, minutes: int | None) -> Release:
    created = None if minutes is None else T0 + timedelta(minutes=minutes)
    return Release(id=rid, app="myapp", build=f"B{rid}", description=f"d {rid}", created=created)


def watch(rack: FakeRack) -> ReleaseWatch[Any]:
    return ReleaseWatch(rack)  # type: ignore[arg-type]


def new_release(rack: FakeRack, since: str | None, **options: Any) -> Release:
    waiting = WaitOptions(**{"poll_interval": 1.0, "timeout": 60.0, "initial_delay": 0, **options})
    return watch(rack).wait_for_new_release("myapp", since=since, waiting=waiting)  # type: ignore[no-any-return]


# --- releases ------------------------------------------------------------------------------------


def test_a_new_release_counts_once_running_twice_in_a_row_on_it() -> None:
    rack = FakeRack()
    rack.on(
        "GET",
        APP,
        app("running", "R1"),
        app("updating", "R2"),
        app("running", "R2"),
        app("running", "R2"),
    )
    rack.on("GET", f"{APP}/releases/R1", release("R1", 0))
    rack.on("GET", f"{APP}/releases/R2", release("R2", 5))
    found = new_release(rack, "R1")
    assert found.id == "R2"
    assert rack.keys.count(("GET", APP)) == 4
    assert rack.sleeps == pytest.approx([0.99] * 3)  # polls start a poll interval apart


def test_a_rolled_back_rollout_ends_on_the_cursor_and_is_never_reported() -> None:
    rack = FakeRack()
    rack.on(
        "GET",
        APP,
        app("updating", "R3"),
        app("rollback", "R3"),
        app("running", "R2"),  # the cursor again
        app("running", "R2"),
    )
    rack.on("GET", f"{APP}/releases/*", release("R3", 9))
    with pytest.raises(Exception, match="gave up waiting for a new active release"):
        new_release(rack, "R2", timeout=5.0)
    assert ("GET", f"{APP}/releases/R3") not in rack.keys  # never settled on it


def test_an_older_release_running_again_is_not_new_and_is_looked_up_once() -> None:
    rack = FakeRack()
    rack.on("GET", APP, app("running", "R1"))
    rack.on("GET", f"{APP}/releases/R1", release("R1", 0))
    rack.on("GET", f"{APP}/releases/R2", release("R2", 5))
    with pytest.raises(Exception, match="gave up"):
        new_release(rack, "R2", timeout=6.0)
    assert rack.keys.count(("GET", f"{APP}/releases/R1")) == 1


def test_a_cursor_the_rack_no_longer_has_makes_the_running_release_new() -> None:
    rack = FakeRack()
    rack.on("GET", APP, app("running", "R9"))
    rack.on("GET", f"{APP}/releases/R9", release("R9", 1))
    rack.on("GET", f"{APP}/releases/R1", api_error(500, 'releases.convox.com "r1" not found'))
    assert new_release(rack, "R1").id == "R9"


def test_without_a_cursor_the_release_it_settles_on_is_returned() -> None:
    rack = FakeRack()
    rack.on("GET", APP, app("updating", ""), app("running", "R1"))
    rack.on("GET", f"{APP}/releases/R1", release("R1", 0))
    assert new_release(rack, None).id == "R1"


@pytest.mark.parametrize(
    ("answer", "origin"),
    [
        (api_error(404, "app not found: myapp"), BEFORE_FIRST_RELEASE),
        (app("creating", ""), BEFORE_FIRST_RELEASE),
        (app("updating", "R1"), None),
    ],
)
def test_watch_origin_is_before_the_first_release_only_for_an_app_without_one(
    answer: Any, origin: str | None
) -> None:
    rack = FakeRack()
    rack.on("GET", APP, answer)
    assert watch(rack).watch_origin("myapp") == origin
    assert rack.keys == [("GET", APP)]


def test_a_watch_from_before_the_first_release_waits_for_the_app_and_reports_its_first() -> None:
    rack = FakeRack()
    missing = api_error(404, "app not found: myapp")
    rack.on(
        "GET",
        APP,
        missing,
        missing,
        app("creating", ""),
        app("running", "R1"),
        app("running", "R1"),
    )
    rack.on("GET", f"{APP}/releases/R1", release("R1", 0))
    assert new_release(rack, BEFORE_FIRST_RELEASE).id == "R1"
    assert rack.keys.count(("GET", APP)) == 5
    assert ("GET", f"{APP}/releases/") not in rack.keys  # no cursor release to look up


def test_any_other_watch_of_an_app_that_is_gone_raises() -> None:
    rack = FakeRack()
    rack.on("GET", APP, api_error(404, "app not found: myapp"))
    with pytest.raises(ConvoxNotFoundError, match="app not found"):
        new_release(rack, "R1")
    with pytest.raises(ConvoxNotFoundError, match="app not found"):
        new_release(rack, None)


def test_transient_errors_are_retried_and_reported() -> None:
    rack = FakeRack()
    outage = api_error(503, "Service Unavailable")
    rack.on("GET", APP, outage, outage, app("running", "R2"), app("running", "R2"))
    rack.on("GET", f"{APP}/releases/R1", release("R1", 0))
    rack.on("GET", f"{APP}/releases/R2", release("R2", 5))
    assert new_release(rack, "R1", on_event=rack.event).id == "R2"
    assert [e.failures for e in rack.events_of(WaitRetrying)] == [1, 2]
    rack = FakeRack()
    rack.on("GET", APP, outage)
    with pytest.raises(ConvoxGatewayError):
        new_release(rack, "R1", max_errors=3)
    assert rack.keys.count(("GET", APP)) == 3


def test_created_after_orders_by_created_and_takes_no_time_as_older() -> None:
    assert created_after(release("R2", 5), release("R1", 0))
    assert not created_after(release("R1", 0), release("R2", 5))
    assert not created_after(release("R1", 0), release("R1", 0))
    assert not created_after(release("R2", None), release("R1", 0))
    assert created_after(release("R2", 0), release("R1", None))


def test_bad_ids_are_refused_before_any_request() -> None:
    rack = FakeRack()
    with pytest.raises(ConvoxInputError, match="invalid release id 'R/x'"):
        new_release(rack, "R/x")
    assert rack.sent == []


# --- the app idle --------------------------------------------------------------------------------


def apps(rack: FakeRack) -> AppWatch[Any]:
    return AppWatch(rack)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("found", "wanted", "state"),
    [
        (app("running", "R2"), None, AppReading.RUNNING),
        (app("running", "R2"), "R2", AppReading.RUNNING),
        (app("updating", "R2"), "R2", AppReading.WAITING),
        (app("rollback", "R2"), None, AppReading.WAITING),  # someone else's: waited through
        (app("running", ""), None, AppReading.WAITING),  # nothing runs yet
        (app("running", "R1"), "R2", AppReading.WAITING),  # R2 newer: may still be promoted
        (app("running", "R3"), "R2", AppReading.NEVER),  # R3 newer: R2 never will be
        (app("deleting", "R2"), None, AppReading.NEVER),
    ],
)
def test_app_state(found: App, wanted: str | None, state: str) -> None:
    rack = FakeRack()
    rack.on("GET", APP, found)
    for rid, minutes in (("R1", 0), ("R2", 5), ("R3", 9)):
        rack.on("GET", f"{APP}/releases/{rid}", release(rid, minutes))
    reading = apps(rack).app_state("myapp", release_id=wanted)
    assert reading.state == state
    assert bool(reading.message) == (state == AppReading.NEVER)


def test_wait_until_idle_wants_two_running_readings_and_stops_on_never() -> None:
    rack = FakeRack()
    rack.on("GET", APP, app("running", "R1"), app("updating", "R1"), app("running", "R1"))
    reading = apps(rack).wait_until_idle("myapp", waiting=WaitOptions(poll_interval=1.0))
    assert (reading.state, rack.keys.count(("GET", APP))) == (AppReading.RUNNING, 4)
    rack = FakeRack()
    rack.on("GET", APP, app("deleting", "R1"))
    reading = apps(rack).wait_until_idle("myapp", waiting=WaitOptions(poll_interval=1.0))
    assert (reading.state, rack.keys.count(("GET", APP))) == (AppReading.NEVER, 1)


# --- processes -----------------------------------------------------------------------------------


def processes(rack: FakeRack) -> ProcessWatch[Any]:
    return ProcessWatch(rack)  # type: ignore[arg-type]


def pod(status: str) -> Process:
    return Process(id="run-1", app="myapp", name="web", status=status, release="R1")


GONE = api_error(500, 'pods "run-1" not found')


@pytest.mark.parametrize(
    ("answer", "options", "state", "code"),
    [
        (pod("running"), {}, ProcessReading.WAITING, None),
        (pod("complete"), {}, ProcessReading.DONE, 0),
        (pod("failed"), {}, ProcessReading.FAILED, None),
        (pod("failed"), {"accept": ["failed"]}, ProcessReading.DONE, None),
        (GONE, {}, ProcessReading.FAILED, None),
        (GONE, {"accept": "gone"}, ProcessReading.DONE, None),
        (pod("pending"), {"statuses": "running"}, ProcessReading.WAITING, None),
        (pod("running"), {"statuses": ["running", "unhealthy"]}, ProcessReading.DONE, None),
        (pod("complete"), {"statuses": "running"}, ProcessReading.FAILED, 0),
        (GONE, {"statuses": "running", "accept": ["gone"]}, ProcessReading.FAILED, None),
        (pod("complete"), {"statuses": "complete"}, ProcessReading.DONE, 0),
    ],
)
def test_process_state(answer: Any, options: dict[str, Any], state: str, code: int | None) -> None:
    rack = FakeRack()
    rack.on("GET", f"{APP}/processes/run-1", answer)
    rack.on("GET", APP, app("running", "R1"))
    reading = processes(rack).process_state("myapp", "run-1", **options)
    assert (reading.state, reading.exit_code) == (state, code)
    assert bool(reading.message) == (state == ProcessReading.FAILED)
    if answer is GONE:
        assert reading.status == "gone"
        assert ("GET", APP) in rack.keys  # the app exists: the pod is what is gone


def test_a_missing_app_is_not_a_gone_process() -> None:
    rack = FakeRack()
    rack.on("GET", f"{APP}/processes/run-1", GONE)
    rack.on("GET", APP, api_error(404, "app not found: myapp"))
    with pytest.raises(ConvoxNotFoundError, match="app not found"):
        processes(rack).process_state("myapp", "run-1")


def test_wait_for_process_polls_until_it_ends() -> None:
    rack = FakeRack()
    rack.on("GET", f"{APP}/processes/run-1", pod("pending"), pod("running"), pod("complete"))
    waiting = WaitOptions(poll_interval=0.5, initial_delay=0)
    reading = processes(rack).wait_for_process("myapp", "run-1", waiting=waiting)
    assert (reading.state, reading.status, reading.exit_code) == ("done", "complete", 0)
    assert rack.sleeps == pytest.approx([0.49] * 2)  # less the request's own time


def test_unknown_outcomes_are_refused_before_any_request() -> None:
    rack = FakeRack()
    with pytest.raises(ConvoxInputError, match="invalid accept 'crashed': a process wait"):
        processes(rack).process_state("myapp", "run-1", accept=["gone", "crashed"])
    assert rack.sent == []


@pytest.mark.parametrize("statuses", ["done", ["running", "exited"], [], ["unknown"]])
def test_unknown_statuses_are_refused_before_any_request(statuses: Any) -> None:
    rack = FakeRack()
    with pytest.raises(ConvoxInputError, match=r"invalid process status .*: give one or more of"):
        processes(rack).process_state("myapp", "run-1", statuses=statuses)
    assert rack.sent == []


# --- the asset URI -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "uri"),
    [
        ("acme/production", "convox://acme/production/myapp"),
        ("/acme/production/", "convox://acme/production/myapp"),
        ("https://api.rack.example.com", "convox://api.rack.example.com/myapp"),
        ("https://convox:s3cret@API.Rack.Example.com:443/", "convox://api.rack.example.com/myapp"),
        ("api.rack.example.com", "convox://api.rack.example.com/myapp"),
        ("convox:s3cret@api.rack.example.com", "convox://api.rack.example.com/myapp"),
        ("http://127.0.0.1:5443", "convox://127.0.0.1:5443/myapp"),
        ("http://localhost:80", "convox://localhost/myapp"),
        (" local ", "convox://local/myapp"),
    ],
)
def test_asset_uri_is_normalised_and_credential_free(given: str, uri: str) -> None:
    assert asset_uri(given, "myapp") == uri
    assert "s3cret" not in asset_uri(given, "myapp")


@pytest.mark.parametrize(
    ("given", "app_name", "message"),
    [
        ("acme/production", "My App", "app 'My App' is not a Convox app name"),
        ("", "myapp", "rack must name the rack"),
        ("acme/prod/extra", "myapp", r"is not '<org>/<rack>'"),
        ("https://convox:s3cret@/", "myapp", "rack is not a host name or '<org>/<rack>'"),
    ],
)
def test_asset_uri_refuses_what_is_not_a_rack(given: str, app_name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as failure:
        asset_uri(given, app_name)
    assert "s3cret" not in str(failure.value)
