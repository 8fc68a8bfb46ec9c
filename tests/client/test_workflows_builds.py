"""Builds from a directory or an object, followed and waited on, without sockets (§4.3, §7.1)."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path
from typing import Any

import pytest
from workflow_fakes import FakeRack, StreamScript, api_error

from convox_provider.client.errors import (
    ConvoxBuildFailedError,
    ConvoxConnectionError,
    ConvoxInputError,
    ConvoxNotFoundError,
    ConvoxStreamError,
    ConvoxWaitTimeoutError,
    ConvoxWorkflowError,
)
from convox_provider.client.models import App, Build, Object, Process
from convox_provider.client.workflows import BuildWorkflows
from convox_provider.client.workflows.events import (
    BuildCreated,
    BuildStatusChanged,
    SourceUploaded,
    StreamInterrupted,
)

APP = "/apps/myapp"
LOGS = f"{APP}/builds/B1/logs"
RUNNING = Build(id="B1", status="running", process="build-abc")
COMPLETE = Build(id="B1", status="complete", release="R1", process="build-abc")
FAILED = Build(id="B1", status="failed", process="build-abc")


@pytest.fixture
def rack() -> FakeRack:
    return FakeRack()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    (tmp_path / "convox.yml").write_text("services:\n  web:\n    build: .\n    port: 3000\n")
    (tmp_path / "Dockerfile").write_text("FROM alpine\n")
    (tmp_path / "secret.env").write_text("nope\n")
    (tmp_path / ".dockerignore").write_text("*.env\n")
    return tmp_path


def builds(rack: FakeRack) -> BuildWorkflows[Any]:
    return BuildWorkflows(rack)  # type: ignore[arg-type]


def script_build(rack: FakeRack, *states: Build) -> None:
    rack.on("GET", APP, App(name="myapp", status="running"))  # read before the upload
    rack.on(
        "POST",
        f"{APP}/objects/tmp/*.tgz",
        lambda sent: Object(Url=f"object://myapp/{sent.path[20:]}"),
    )
    rack.on("POST", f"{APP}/builds", RUNNING)
    rack.on("GET", f"{APP}/builds/B1", *states)
    rack.on("GET", f"{APP}/processes/build-abc", Process(id="build-abc", status="running"))


class TestBuildFromDirectory:
    def test_a_missing_app_fails_before_the_upload(self, rack: FakeRack, source: Path) -> None:
        rack.on("GET", APP, api_error(404, "app not found"))
        with pytest.raises(ConvoxNotFoundError):
            builds(rack).build_from_directory("myapp", source)
        assert rack.keys == [("GET", APP)]

    def test_uploads_builds_follows_and_catches_up(self, rack: FakeRack, source: Path) -> None:
        script_build(rack, RUNNING, COMPLETE)
        rack.on_stream(
            LOGS,
            StreamScript([b"step 1\n", b"step 2\n"]),  # the live stream ends early
            StreamScript([b"step 1\nstep 2\nst", b"ep 3\n"]),  # the stored log, complete
        )
        output: list[bytes] = []

        build = builds(rack).build_from_directory(
            "myapp",
            source,
            description="first",
            on_output=output.append,
            on_event=rack.event,
            poll_interval=1.0,
        )

        assert build.release == "R1"
        assert b"".join(output) == b"step 1\nstep 2\nstep 3\n"  # nothing twice
        upload, create = rack.requests("POST")
        assert upload.path.startswith(f"{APP}/objects/tmp/")
        assert upload.path.endswith(".tgz")
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(upload.body or b""))) as tar:
            assert sorted(tar.getnames()) == [".dockerignore", "Dockerfile", "convox.yml"]
        assert create.form == {
            "url": f"object://myapp/{upload.path[len(APP) + 9 :]}",
            "description": "first",
        }
        assert [spec.path for spec in rack.streams] == [LOGS, LOGS]
        # the interval counts from the poll's start: the fake's build and pod GETs took 0.02 s
        assert rack.sleeps == pytest.approx([0.98])
        uploaded = rack.events_of(SourceUploaded)
        assert uploaded[0].size == len(upload.body or b"")
        assert rack.events_of(BuildCreated) == [BuildCreated("myapp", "B1", "build-abc")]
        assert [e.status for e in rack.events_of(BuildStatusChanged)] == ["running", "complete"]

    def test_no_cache_is_sent_the_way_the_rack_reads_it(self, rack: FakeRack, source: Path) -> None:
        script_build(rack, COMPLETE)
        rack.on_stream(LOGS, StreamScript([]))
        builds(rack).build_from_directory(
            "myapp", source, no_cache=True, build_args={"A": "1"}, manifest="convox2.yml"
        )
        create = rack.requests("POST", f"{APP}/builds")[0]
        assert create.form["no-cache"] == "false"  # inverted on the server (§4.3)
        assert create.form["build-args"] == "A=1"
        assert create.form["manifest"] == "convox2.yml"

    def test_bad_options_are_refused_before_the_upload(self, rack: FakeRack, source: Path) -> None:
        with pytest.raises(ConvoxInputError):
            builds(rack).build_from_directory("myapp", source, build_args={"A": "has space"})
        with pytest.raises(ConvoxInputError):
            builds(rack).build_from_directory("myapp", source / "missing")
        with pytest.raises(ConvoxInputError):
            builds(rack).build_from_directory("myapp", source, poll_interval=0)
        assert rack.sent == []

    def test_without_wait_the_running_build_is_returned(self, rack: FakeRack, source: Path) -> None:
        script_build(rack)
        build = builds(rack).build_from_directory("myapp", source, wait=False)
        assert build.status == "running"
        assert rack.streams == []
        assert [s.method for s in rack.sent] == ["GET", "POST", "POST"]  # app, upload, create

    def test_a_dropped_log_stream_is_reported_and_the_poll_goes_on(
        self, rack: FakeRack, source: Path
    ) -> None:
        script_build(rack, RUNNING, RUNNING, COMPLETE)
        rack.on_stream(
            LOGS,
            StreamScript([b"one\n"], error=ConvoxConnectionError("connection reset")),
            StreamScript([b"one\ntwo\n"]),
        )
        output: list[bytes] = []
        builds(rack).build_from_directory(
            "myapp", source, on_output=output.append, on_event=rack.event
        )
        assert b"".join(output) == b"one\ntwo\n"
        assert [e.error for e in rack.events_of(StreamInterrupted)] == ["connection reset"]

    def test_a_failed_build_raises_with_the_log_tail(self, rack: FakeRack, source: Path) -> None:
        script_build(rack, RUNNING, FAILED)
        lines = [f"line {n}\n".encode() for n in range(100)]
        rack.on_stream(
            LOGS,
            StreamScript(lines[:50]),
            StreamScript(lines, error=ConvoxStreamError("docker build exited 1")),
        )
        output: list[bytes] = []
        with pytest.raises(ConvoxBuildFailedError, match="B1 of app myapp failed: docker") as info:
            builds(rack).build_from_directory("myapp", source, on_output=output.append)
        assert b"".join(output) == b"".join(lines)
        tail = info.value.logs_tail.splitlines()
        assert tail[-1] == "ERROR: docker build exited 1"
        assert tail[-2] == "line 99"
        assert "line 10" not in tail
        assert info.value.build_id == "B1"


class TestBuildFromObject:
    def test_builds_the_given_object(self, rack: FakeRack) -> None:
        rack.on("POST", f"{APP}/builds", RUNNING)
        rack.on("GET", f"{APP}/builds/B1", COMPLETE)
        build = builds(rack).build_from_object(
            "myapp", "object://myapp/src.tgz", follow_logs=False, git_sha="abc"
        )
        assert build.release == "R1"
        assert rack.sent[0].form == {"url": "object://myapp/src.tgz", "git-sha": "abc"}
        assert rack.streams == []

    def test_an_http_url_is_refused(self, rack: FakeRack) -> None:
        with pytest.raises(ConvoxInputError, match="object://"):
            builds(rack).build_from_object("myapp", "https://example.com/src.tgz")
        assert rack.sent == []


class TestWaitForBuild:
    def test_polls_every_second_until_complete(self, rack: FakeRack) -> None:
        rack.on("GET", f"{APP}/builds/B1", RUNNING, RUNNING, COMPLETE)
        rack.on("GET", f"{APP}/processes/build-abc", Process(status="running"))
        assert builds(rack).wait_for_build("myapp", "B1").release == "R1"
        # polls start a second apart: each sleep is the second minus the poll's requests
        # (0.01 s each in the fake: build and pod, then the build alone)
        assert rack.sleeps == pytest.approx([0.98, 0.99])
        assert rack.streams == []

    def test_failed_reads_the_stored_log_for_the_tail(self, rack: FakeRack) -> None:
        rack.on("GET", f"{APP}/builds/B1", FAILED)
        rack.on_stream(LOGS, StreamScript([b"compiling\n", b"ERROR: exit status 2\n"]))
        with pytest.raises(ConvoxBuildFailedError, match="exit status 2") as info:
            builds(rack).wait_for_build("myapp", "B1")
        assert info.value.logs_tail == "compiling\nERROR: exit status 2"

    def test_failed_with_an_unreadable_log_still_raises(self, rack: FakeRack) -> None:
        rack.on("GET", f"{APP}/builds/B1", FAILED.model_copy(update={"reason": "oom"}))
        rack.on_stream(LOGS, StreamScript(error=ConvoxConnectionError("refused")))
        with pytest.raises(ConvoxBuildFailedError, match="failed: oom"):
            builds(rack).wait_for_build("myapp", "B1")

    def test_an_unexpected_status_is_an_error(self, rack: FakeRack) -> None:
        rack.on("GET", f"{APP}/builds/B1", Build(id="B1", status="exploded"))
        with pytest.raises(ConvoxWorkflowError, match="exploded"):
            builds(rack).wait_for_build("myapp", "B1")

    def test_transient_errors_are_tolerated(self, rack: FakeRack) -> None:
        rack.on("GET", f"{APP}/builds/B1", api_error(502, "Bad Gateway"), COMPLETE)
        assert builds(rack).wait_for_build("myapp", "B1").status == "complete"

    def test_timeout(self, rack: FakeRack) -> None:
        rack.on("GET", f"{APP}/builds/B1", RUNNING)
        rack.on("GET", f"{APP}/processes/build-abc", Process(status="running"))
        with pytest.raises(ConvoxWaitTimeoutError, match="build B1"):
            builds(rack).wait_for_build("myapp", "B1", timeout=30)
        assert sum(rack.sleeps) <= 30

    @pytest.mark.parametrize(
        "pod", [api_error(500, 'pods "build-abc" not found'), Process(status="failed")]
    )
    def test_a_lost_build_pod_fails_the_wait_after_the_grace_period(
        self, rack: FakeRack, pod: Any
    ) -> None:
        rack.on("GET", f"{APP}/builds/B1", RUNNING)
        rack.on("GET", f"{APP}/processes/build-abc", pod)
        rack.on_stream(LOGS, StreamScript([]))
        started = rack.clock
        with pytest.raises(ConvoxBuildFailedError, match="build pod build-abc") as info:
            builds(rack).wait_for_build("myapp", "B1", lost_pod_grace=20)
        assert 20 <= rack.clock - started <= 30
        assert "§4.3" in str(info.value)

    def test_an_open_silent_log_stream_does_not_hide_a_lost_pod(self, rack: FakeRack) -> None:
        # A dead build's log socket may stay open and silent: the poll must still decide.
        rack.on("GET", f"{APP}/builds/B1", RUNNING)
        rack.on("GET", f"{APP}/processes/build-abc", api_error(500, 'pods "build-abc" not found'))
        rack.on_stream(LOGS, StreamScript([b"step 1\n"]), StreamScript([], stays_open=True))
        output: list[bytes] = []
        with pytest.raises(ConvoxBuildFailedError, match="build pod build-abc"):
            builds(rack).wait_for_build(
                "myapp", "B1", follow_logs=True, lost_pod_grace=20, on_output=output.append
            )
        assert rack.clock - 1000.0 < 120  # not the hour-long build deadline
        assert output == [b"step 1\n"]  # a stream opened again passes on only new bytes

    def test_an_open_log_stream_is_reopened_until_the_build_ends(self, rack: FakeRack) -> None:
        rack.on("GET", f"{APP}/builds/B1", RUNNING, RUNNING, COMPLETE)
        rack.on("GET", f"{APP}/processes/build-abc", Process(status="running"))
        rack.on_stream(
            LOGS,
            StreamScript([b"a\n"], stays_open=True),
            StreamScript([b"a\nb\n"], stays_open=True),
            StreamScript([b"a\nb\nc\n"]),
        )
        output: list[bytes] = []
        build = builds(rack).wait_for_build(
            "myapp", "B1", follow_logs=True, on_output=output.append
        )
        assert build.status == "complete"
        assert b"".join(output) == b"a\nb\nc\n"

    def test_a_pod_that_reappears_resets_the_grace_period(self, rack: FakeRack) -> None:
        rack.on("GET", f"{APP}/builds/B1", *([RUNNING] * 25), COMPLETE)
        gone = api_error(500, 'pods "build-abc" not found')
        rack.on("GET", f"{APP}/processes/build-abc", gone, gone, Process(status="running"), gone)
        assert builds(rack).wait_for_build("myapp", "B1", lost_pod_grace=12).status == "complete"

    def test_a_pending_build_pod_is_not_lost(self, rack: FakeRack) -> None:
        rack.on("GET", f"{APP}/builds/B1", *([RUNNING] * 200), COMPLETE)
        rack.on("GET", f"{APP}/processes/build-abc", Process(status="pending"))
        assert builds(rack).wait_for_build("myapp", "B1", lost_pod_grace=10).status == "complete"
