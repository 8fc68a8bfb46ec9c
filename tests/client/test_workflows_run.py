"""One-off runs (sleep pod + exec) and scaling, without sockets (rack-api.md §6.9, §7.6, §7.7)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from workflow_fakes import FakeRack, StreamScript, api_error

from convox_provider.client.errors import (
    ConvoxConnectionError,
    ConvoxInputError,
    ConvoxRollbackError,
    ConvoxStreamError,
    ConvoxWaitTimeoutError,
    ConvoxWorkflowError,
)
from convox_provider.client.models import App, Process
from convox_provider.client.operation import Stream
from convox_provider.client.workflows import ProcessWorkflows, ServiceWorkflows
from convox_provider.client.workflows.events import (
    ProcessCleanupFailed,
    ProcessDeleted,
    ProcessStarted,
)

APP = "/apps/myapp"
POD = f"{APP}/processes/run-1"
EXEC = f"{POD}/exec"
SECRET = "db-password-42"


@pytest.fixture
def rack() -> FakeRack:
    rack = FakeRack()
    rack.on(
        "POST", f"{APP}/services/web/processes", Process(id="run-1", name="web", status="pending")
    )
    rack.on("DELETE", POD, None)
    return rack


def running(rack: FakeRack, *before: str) -> None:
    states = [Process(id="run-1", name="web", status=s) for s in (*before, "running")]
    rack.on("GET", POD, *states)


def run(rack: FakeRack, command: Any = "bin/migrate", **options: Any) -> int:
    options.setdefault("on_event", rack.event)
    workflows: ProcessWorkflows[Any] = ProcessWorkflows(rack)  # type: ignore[arg-type]
    return workflows.run_attached("myapp", "web", command, **options)


def deleted(rack: FakeRack) -> bool:
    return rack.keys[-1] == ("DELETE", POD)


class TestRun:
    def test_sleep_pod_then_exec_then_delete(self, rack: FakeRack) -> None:
        running(rack, "pending")
        rack.on_stream(EXEC, StreamScript([b"migrating\n", b"done\n"], exit_code=0))
        output: list[bytes] = []

        code = run(
            rack,
            ["sh", "-c", "bin/migrate && echo ok"],
            release="R3",
            environment={"TOKEN": SECRET},
            timeout=600,
            cpu=256,
            memory=512,
            on_output=output.append,
        )

        assert code == 0
        assert b"".join(output) == b"migrating\ndone\n"
        start = rack.sent[0]
        assert start.headers["Command"] == "sleep 600"
        assert start.headers["Release"] == "R3"
        assert start.headers["Cpu"] == "256"
        assert start.headers["Memory"] == "512"
        assert start.headers["Environment"] == f"TOKEN={SECRET}"
        exec_spec = rack.streams[0]
        assert dict(exec_spec.headers) == {
            "Command": "sh -c 'bin/migrate && echo ok'",
            "Entrypoint": "true",
            "Tty": "false",
            "Disable-Stdin": "true",
        }
        assert exec_spec.exit_code
        assert rack.keys.count(("GET", POD)) == 3  # pending, running, running
        # one check a second, from each check's start (its GET took 0.01 s in the fake)
        assert rack.sleeps == pytest.approx([1.0, 0.99, 0.99])
        assert deleted(rack)
        assert rack.events_of(ProcessStarted) == [ProcessStarted("myapp", "run-1", "web")]
        assert rack.events_of(ProcessDeleted) == [ProcessDeleted("myapp", "run-1")]
        assert SECRET not in repr(rack.events)

    def test_a_non_zero_exit_code_is_returned_and_the_pod_deleted(self, rack: FakeRack) -> None:
        running(rack)
        rack.on_stream(EXEC, StreamScript([b"boom\n"], exit_code=3))
        assert run(rack, entrypoint=False) == 3
        assert dict(rack.streams[0].headers)["Entrypoint"] == "false"
        assert deleted(rack)

    def test_an_error_frame_after_exit_code_0_fails_and_deletes(self, rack: FakeRack) -> None:
        running(rack)
        rack.on_stream(EXEC, StreamScript(exit_code=0, error=ConvoxStreamError("exec failed")))
        with pytest.raises(ConvoxStreamError, match="exec failed"):
            run(rack)
        assert deleted(rack)

    def test_a_start_timeout_deletes_the_pod(self, rack: FakeRack) -> None:
        rack.on("GET", POD, Process(id="run-1", status="pending"))
        with pytest.raises(ConvoxWaitTimeoutError, match="run-1"):
            run(rack, start_timeout=10)
        assert deleted(rack)
        assert sum(rack.sleeps) <= 10

    @pytest.mark.parametrize("status", ["crashed", "failed", "complete"])
    def test_a_pod_that_cannot_run_fails_at_once(self, rack: FakeRack, status: str) -> None:
        rack.on(
            "GET", POD, Process(id="run-1", status="pending"), Process(id="run-1", status=status)
        )
        with pytest.raises(ConvoxWorkflowError, match=status):
            run(rack)
        assert rack.keys.count(("GET", POD)) == 2
        assert deleted(rack)

    def test_a_vanished_pod_fails_at_once(self, rack: FakeRack) -> None:
        rack.on("GET", POD, api_error(500, 'pods "run-1" not found'))
        with pytest.raises(ConvoxWorkflowError, match="disappeared"):
            run(rack)
        assert deleted(rack)

    @pytest.mark.parametrize("cancel", [asyncio.CancelledError, KeyboardInterrupt])
    def test_cancellation_during_the_exec_deletes_the_pod(
        self, rack: FakeRack, cancel: type[BaseException]
    ) -> None:
        running(rack)
        rack.on_stream(EXEC, StreamScript(exit_code=0))

        def interrupt(effect: Any) -> BaseException | None:
            return cancel() if isinstance(effect, Stream) else None

        rack.interrupt = interrupt
        with pytest.raises(cancel):
            run(rack)
        assert deleted(rack)

    def test_a_failed_delete_never_hides_the_outcome(self, rack: FakeRack) -> None:
        running(rack)
        rack.on_stream(EXEC, StreamScript(exit_code=7))
        rack._answers[("DELETE", POD)] = [api_error(502, "Bad Gateway")]
        assert run(rack) == 7
        assert rack.keys.count(("DELETE", POD)) == 2  # a transient failure is tried again
        assert [e.error for e in rack.events_of(ProcessCleanupFailed)] == [
            "502: Bad Gateway [Request-Id 0123456789ab]"
        ]

    def test_a_delete_failing_once_is_tried_again(self, rack: FakeRack) -> None:
        running(rack)
        rack.on_stream(EXEC, StreamScript(exit_code=0))
        rack._answers[("DELETE", POD)] = [ConvoxConnectionError("reset"), None]
        assert run(rack) == 0
        assert rack.events_of(ProcessDeleted) == [ProcessDeleted("myapp", "run-1")]
        assert rack.events_of(ProcessCleanupFailed) == []

    def test_a_failed_delete_never_replaces_the_original_error(self, rack: FakeRack) -> None:
        running(rack)
        rack.on_stream(EXEC, StreamScript(error=ConvoxConnectionError("exec cut")))
        rack._answers[("DELETE", POD)] = [ConvoxConnectionError("delete cut")]
        with pytest.raises(ConvoxConnectionError, match="exec cut"):
            run(rack)

    def test_a_pod_that_already_went_away_counts_as_deleted(self, rack: FakeRack) -> None:
        running(rack)
        rack.on_stream(EXEC, StreamScript(exit_code=0))
        rack._answers[("DELETE", POD)] = [api_error(500, 'pods "run-1" not found')]
        assert run(rack) == 0
        assert rack.events_of(ProcessCleanupFailed) == []

    def test_closing_the_flow_cannot_send_the_delete(self, rack: FakeRack) -> None:
        running(rack)
        workflows: ProcessWorkflows[Any] = ProcessWorkflows(rack)  # type: ignore[arg-type]
        flow = ProcessWorkflows.run_attached.describe(workflows, "myapp", "web", "true")
        effect = next(flow)
        while not isinstance(effect, Stream):
            effect = flow.send(rack._perform(effect))
        flow.close()  # GeneratorExit: no RuntimeError from a yield in finally
        assert ("DELETE", POD) not in rack.keys

    @pytest.mark.parametrize(
        ("command", "options"),
        [
            ("", {}),
            ("   ", {}),
            (["ok", 3], {}),
            ("true", {"timeout": 0}),
            ("true", {"environment": {"BAD KEY": "x"}}),
            ("true", {"environment": {"K": "line\nbreak"}}),
            ("true", {"start_timeout": -1}),
        ],
    )
    def test_invalid_arguments_send_nothing(
        self, rack: FakeRack, command: Any, options: dict[str, Any]
    ) -> None:
        with pytest.raises(ConvoxInputError):
            run(rack, command, **options)
        assert rack.sent == []


class TestScale:
    def scale(self, rack: FakeRack, **options: Any) -> App | None:
        options.setdefault("on_event", rack.event)
        workflows: ServiceWorkflows[Any] = ServiceWorkflows(rack)  # type: ignore[arg-type]
        return workflows.scale("myapp", "web", **options)

    def test_updates_then_waits_for_running_twice(self, rack: FakeRack) -> None:
        rack.on("PUT", f"{APP}/services/web", None)
        rack.on("GET", APP, App(status="updating"), App(status="running"), App(status="running"))
        rack.on("GET", f"{APP}/processes", [])

        final = self.scale(rack, count=3, memory=1024)

        assert final is not None
        assert final.status == "running"
        assert rack.sent[0].form == {"count": "3", "memory": "1024"}
        assert rack.keys.count(("GET", APP)) == 3
        assert rack.sleeps[0] == 5.0

    def test_rollback_fails(self, rack: FakeRack) -> None:
        rack.on("PUT", f"{APP}/services/web", None)
        rack.on("GET", APP, App(status="rollback", release="R1"))
        rack.on("GET", f"{APP}/processes", [])
        with pytest.raises(ConvoxRollbackError):
            self.scale(rack, count=0)

    def test_without_wait(self, rack: FakeRack) -> None:
        rack.on("PUT", f"{APP}/services/web", None)
        assert self.scale(rack, cpu=500, wait=False) is None
        assert rack.keys == [("PUT", f"{APP}/services/web")]

    @pytest.mark.parametrize(
        "options",
        [
            {},
            {"count": -1},
            {"count": True},
            {"cpu": 0},
            {"memory": -5},
            {"count": 2, "min": 1},
            {"min": 3, "max": 1},
            {"count": 1, "timeout": -1},
        ],
    )
    def test_invalid_arguments_send_nothing(self, rack: FakeRack, options: dict[str, Any]) -> None:
        with pytest.raises(ConvoxInputError):
            self.scale(rack, **options)
        assert rack.sent == []
