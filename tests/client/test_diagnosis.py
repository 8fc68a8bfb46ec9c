"""Failure diagnosis without sockets: what a rollback's or a failed build's error says of the rack
(docs/rack-api.md §5.12): the release's pods that were not ready, bounded, redacted, and never
in the way of the error it explains."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from workflow_fakes import FakeRack, StreamScript, api_error

from convox_provider.client.errors import (
    ConvoxBuildFailedError,
    ConvoxRollbackError,
    ConvoxStreamError,
)
from convox_provider.client.models import App, Build, Process, Release, Service
from convox_provider.client.workflows import BuildWorkflows, ReleaseWorkflows
from convox_provider.client.workflows.diagnosis import (
    DIAGNOSIS_SECONDS,
    LINE_CHARS,
    LOG_LINES,
    PODS_SHOWN,
    redact,
)

APP = "/apps/myapp"
SECRET = "hunter2-db-password"
KEY = "deploy-key-0123456789"


def app(status: str, release: str = "R2") -> App:
    return App(name="myapp", status=status, release=release)


def pod(pid: str, status: str, release: str = "R2") -> Process:
    return Process(id=pid, name="web", status=status, release=release)


def logs(pid: str) -> str:
    return f"{APP}/processes/{pid}/logs"


CREATED = datetime(2026, 1, 1, tzinfo=timezone.utc)
R2 = Release(id="R2", created=CREATED.replace(hour=1), env=f"DB_PASSWORD={SECRET}\nN=1")


@pytest.fixture
def rack() -> FakeRack:
    fake = FakeRack()
    fake.config.api_key = KEY  # what the diagnosis redacts besides the env
    fake.on("GET", f"{APP}/releases/R1", Release(id="R1", created=CREATED))
    fake.on("GET", f"{APP}/releases/R2", R2)
    fake.on("POST", f"{APP}/releases/R2/promote", None)
    fake.on("GET", f"{APP}/services", [Service(name="web", count=1)])
    # pre-check, the rollout seen, then its rollback
    fake.on("GET", APP, app("running", "R1"), app("updating"), app("rollback", "R1"))
    return fake


def rolled_back(rack: FakeRack) -> str:
    with pytest.raises(ConvoxRollbackError) as info:
        ReleaseWorkflows(rack).promote("myapp", "R2", watch_processes=False)
    assert (info.value.release_id, info.value.active_release) == ("R2", "R1")
    return str(info.value)


def test_a_rollback_says_which_pods_were_not_ready_and_how_they_ended(rack: FakeRack) -> None:
    rack.on("GET", f"{APP}/processes", [pod("web-1", "crashed"), pod("web-0", "running")])
    rack.on_stream(logs("web-1"), StreamScript([b"booting\nError: cannot reach the db\n"]))

    message = rolled_back(rack)

    assert message.startswith("release R2 of app myapp was rolled back")
    assert "Its processes not ready (1 of 2):" in message
    assert "web-1 (web): crashed" in message
    assert "    Error: cannot reach the db" in message
    assert "web-0" not in message  # ready pods are not the story
    listing = rack.requests("GET", f"{APP}/processes")[-1]
    assert listing.query == {"release": "R2"}
    (spec,) = rack.streams
    assert dict(spec.headers)["Since"] == "-10m0s"  # the route adds Since to now (§5.12)


def test_secrets_never_appear(rack: FakeRack) -> None:
    rack.on("GET", f"{APP}/processes", [pod("web-1", "crashed")])
    output = (
        f"DB_PASSWORD={SECRET}\nusing key {KEY}\n"
        "RACK_URL=https://convox:rackpass99@api.example.org\nN=1\n"
    )
    rack.on_stream(logs("web-1"), StreamScript([output.encode()]))

    message = rolled_back(rack)

    for secret in (SECRET, KEY, "rackpass99"):
        assert secret not in message
    assert "DB_PASSWORD=****" in message
    assert "https://convox:****@api.example.org" in message
    assert "N=1" in message  # values shorter than 4 characters are not blanked out


def test_output_is_bounded_in_pods_lines_and_characters(rack: FakeRack) -> None:
    failing = [pod(f"web-{n}", "crashed") for n in range(PODS_SHOWN + 2)]
    rack.on("GET", f"{APP}/processes", failing)
    chatter = "".join(f"line {n}\n" for n in range(40)) + "x" * 5000 + "\n"
    for each in failing:
        rack.on_stream(logs(each.id), StreamScript([chatter.encode()]))

    message = rolled_back(rack)

    assert len(rack.streams) == PODS_SHOWN
    assert "… and 2 more" in message
    assert "line 36" in message  # the last LOG_LINES lines: 36 to 39 and the long one
    assert "line 35" not in message
    assert message.count("    line ") == PODS_SHOWN * (LOG_LINES - 1)
    longest = max(len(line) for line in message.splitlines())
    assert longest <= LINE_CHARS + 4  # the indent, then the cut line


def test_the_least_ready_pods_come_first(rack: FakeRack) -> None:
    rack.on(
        "GET",
        f"{APP}/processes",
        [pod("web-a", "pending"), pod("web-b", "starting"), pod("web-c", "crashed")],
    )
    rack.on_stream(logs("web-a"), StreamScript([b"a\n"]))
    rack.on_stream(logs("web-b"), StreamScript([b"b\n"]))
    rack.on_stream(logs("web-c"), StreamScript([b"c\n"]))

    message = rolled_back(rack)

    assert message.index("web-c") < message.index("web-b") < message.index("web-a")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (api_error(502, "Bad Gateway"), "Could not read its processes: "),
        (RuntimeError("a bug in the diagnosis"), "Could not read its processes: a bug in"),
        ([], "None of its processes is left on the rack"),
        ([pod("web-0", "running")], "All 1 of its processes read running"),
    ],
)
def test_a_diagnosis_never_hides_the_rollback(rack: FakeRack, answer: Any, expected: str) -> None:
    rack.on("GET", f"{APP}/processes", answer)
    assert expected in rolled_back(rack)


def test_a_log_that_cannot_be_read_is_one_line(rack: FakeRack) -> None:
    rack.on("GET", f"{APP}/processes", [pod("web-1", "crashed"), pod("web-2", "crashed")])
    rack.on_stream(logs("web-1"), StreamScript(error=ConvoxStreamError('pods "web-1" not found')))
    rack.on_stream(
        logs("web-2"), StreamScript([b"partial line before the break\n"], stays_open=True)
    )

    message = rolled_back(rack)

    assert 'could not read its log: pods "web-1" not found' in message
    assert "partial line before the break" in message  # a stream left open is closed, kept


def test_no_output_is_shown_when_the_release_cannot_be_read(rack: FakeRack) -> None:
    # the rollback's own read of R2 (is it newer than R1?) works, the diagnosis's fails
    rack.instead("GET", f"{APP}/releases/R2", R2, api_error(502, "Bad Gateway"))
    rack.on("GET", f"{APP}/processes", [pod("web-1", "crashed")])
    rack.on_stream(logs("web-1"), StreamScript([f"{SECRET}\n".encode()]))

    message = rolled_back(rack)

    assert "web-1 (web): crashed" in message
    assert "their output is not shown: could not read the release" in message
    assert not rack.streams  # without the env to redact by, no log is read


def test_logs_stop_being_read_once_the_diagnosis_took_its_time(rack: FakeRack) -> None:
    rack.on("GET", f"{APP}/processes", [pod("web-1", "crashed"), pod("web-2", "crashed")])

    def slow(sent: Any) -> Release:
        rack.clock += DIAGNOSIS_SECONDS  # as if reading the release had taken that long
        return R2

    rack.instead("GET", f"{APP}/releases/R2", slow)

    message = rolled_back(rack)

    assert message.count("log not read: the diagnosis took") == 2
    assert not rack.streams


def test_redact_replaces_longer_secrets_first_and_url_passwords() -> None:
    text = "token abcdefgh and abcd; see postgres://u:p4ss@h/db and https://h/x"
    assert redact(text, ["abcd", "abcdefgh"]) == (
        "token **** and ****; see postgres://u:****@h/db and https://h/x"
    )


def test_a_failed_build_names_its_pod(rack: FakeRack) -> None:
    build = Build(id="B1", status="failed", process="build-xyz", reason="exit status 1")
    rack.on("GET", f"{APP}/builds/B1", build)
    rack.on(
        "GET", f"{APP}/processes/build-xyz", Process(id="build-xyz", name="build", status="failed")
    )
    rack.on_stream(f"{APP}/builds/B1/logs", StreamScript([b"Step 1/2\nERROR: exit status 1\n"]))

    with pytest.raises(ConvoxBuildFailedError) as info:
        BuildWorkflows(rack).wait_for_build("myapp", "B1")

    assert str(info.value) == (
        "build B1 of app myapp failed: exit status 1.\nBuild pod build-xyz (build): failed"
    )
    assert "ERROR: exit status 1" in info.value.logs_tail


def test_a_failed_build_whose_pod_is_gone_says_so(rack: FakeRack) -> None:
    rack.on("GET", f"{APP}/builds/B1", Build(id="B1", status="failed", process="build-xyz"))
    rack.on("GET", f"{APP}/processes/build-xyz", api_error(500, 'pods "build-xyz" not found'))
    rack.on_stream(f"{APP}/builds/B1/logs", StreamScript([b"ERROR: boom\n"]))

    with pytest.raises(ConvoxBuildFailedError, match="Build pod build-xyz is gone"):
        BuildWorkflows(rack).wait_for_build("myapp", "B1")
