"""ConvoxRunProcessOperator against the rack emulator: output, exit codes, pod clean-up."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import jinja2
import pytest
from airflow.sdk.execution_time.task_runner import _serialize_rendered_fields
from airflow_compat import AirflowException, AirflowTaskTimeout
from convox_support import APP, FAST, MANIFEST, RecordingTI, connect, context, seed, wait_until

from convox_provider.client.errors import ConvoxInputError
from convox_provider.operators.environment import MaskedEnvironment
from convox_provider.operators.processes import ConvoxRunProcessOperator
from convox_provider.testing import CommandResult, Invocation, RackEmulator, Timing

RackFactory = Callable[..., RackEmulator]
PROCESSES = f"/apps/{APP}/services/web/processes"
SECRET = "s3cr3t-9d81f7a2c4"


class StateStore(dict[str, Any]):
    """Airflow 3.3's task state store, kept across tries, without the API server."""

    def set(self, key: str, value: Any) -> None:
        self[key] = value


@pytest.fixture
def rack(convox_rack_factory: RackFactory, monkeypatch: pytest.MonkeyPatch) -> RackEmulator:
    rack = convox_rack_factory(timing=Timing(process_start=0.02, process_run=0.02))
    connect(monkeypatch, rack)
    seed(rack)
    return rack


def run_op(command: str | list[str] = "echo hi", **options: Any) -> ConvoxRunProcessOperator:
    return ConvoxRunProcessOperator(
        task_id="run", app=APP, service="web", command=command, poll_interval=FAST, **options
    )


def one_offs(rack: RackEmulator) -> list[dict[str, Any]]:
    """The app's one-off pods (not its service pods)."""
    return [p for p in rack.processes(APP) if p["command"].startswith("sleep ")]


def recorded(rack: RackEmulator, command: str) -> list[Invocation]:
    """Run ``command`` as scripted (exit 0), keeping each invocation."""
    seen: list[Invocation] = []

    def handler(invocation: Invocation) -> CommandResult:
        seen.append(invocation)
        return CommandResult(output=b"done\n")

    rack.scripts.on_command(command, handler)
    return seen


# --- arguments ------------------------------------------------------------------------------------


def test_templated_fields() -> None:
    assert set(ConvoxRunProcessOperator.template_fields) == {
        "convox_conn_id",
        "app",
        "service",
        "command",
        "release_id",
        "environment",
    }


@pytest.mark.parametrize("timeout", [0, 1.5, True])
def test_timeout_is_whole_seconds(timeout: Any) -> None:
    with pytest.raises(ValueError, match="timeout must be whole seconds"):
        run_op(timeout=timeout)


def test_runs_are_not_deferred(rack: RackEmulator) -> None:
    with pytest.warns(UserWarning, match="cannot move to the triggerer") as warned:
        op = run_op(deferrable=True)
    assert warned[0].filename == __file__  # names the DAG file's line
    assert op.execute(context()) == 0  # in the worker, no TaskDeferred


# --- running --------------------------------------------------------------------------------------


def test_success_streams_output_and_deletes_the_pod(
    rack: RackEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    ti = RecordingTI()
    assert run_op("sh -c 'echo migrating; echo done'").execute(context(ti)) == 0
    output = capfd.readouterr().out
    assert output.index("migrating") < output.index("done")
    (pod,) = [value for key, value in ti.pushed if key == "process_id"]
    assert ti.pushed == [("process_id", pod), ("exit_code", 0)]
    assert rack.requests.count("DELETE", f"/apps/{APP}/processes/{pod}") == 1
    assert one_offs(rack) == []
    (execd,) = rack.execs
    assert (execd.process, execd.command, execd.tty) == (
        pod,
        "sh -c 'echo migrating; echo done'",
        False,
    )


def test_a_list_command_is_quoted_for_the_rack(rack: RackEmulator) -> None:
    seen = recorded(rack, "python manage.py migrate --plan")
    run_op(["python", "manage.py", "migrate", "--plan"]).execute(context())
    assert [i.argv for i in seen] == [("python", "manage.py", "migrate", "--plan")]


def test_non_zero_exit_fails_the_task_with_the_code(rack: RackEmulator) -> None:
    ti = RecordingTI()
    with pytest.raises(AirflowException, match="exited with code 3") as failure:
        run_op("sh -c 'echo boom; exit 3'").execute(context(ti))
    assert "service web of app demo" in str(failure.value)
    assert ti.xcoms["exit_code"] == 3
    assert rack.requests.count("DELETE", f"/apps/{APP}/processes/{ti.xcoms['process_id']}") == 1
    assert one_offs(rack) == []


def test_runs_on_the_given_release_with_masked_environment(rack: RackEmulator) -> None:
    _, release = rack.add_release(APP, MANIFEST, promote=False)
    seen = recorded(rack, "migrate")
    op = run_op("migrate", release_id="{{ params.release }}", environment={"DB": "{{ params.db }}"})
    op.render_template_fields(
        {"params": {"release": release["id"], "db": SECRET}},  # type: ignore[typeddict-unknown-key]
        jinja2.Environment(),
    )
    assert isinstance(op.environment, MaskedEnvironment)
    assert _serialize_rendered_fields(op)["environment"] == {"DB": "***"}  # type: ignore[arg-type]
    op.execute(context())
    (created,) = rack.requests.find("POST", PROCESSES)
    assert created.header("Release") == release["id"]
    assert created.header("Command") == "sleep 3600"
    assert seen[0].environment["DB"] == SECRET


def test_invalid_environment_fails_before_any_request(rack: RackEmulator) -> None:
    rack.requests.clear()
    with pytest.raises(ConvoxInputError, match="'BAD KEY'") as failure:
        run_op(environment={"BAD KEY": SECRET}).execute(context())
    assert SECRET not in str(failure.value)
    assert len(rack.requests) == 0


def test_output_reaches_the_log_as_it_arrives(rack: RackEmulator) -> None:
    chunks = ((0.0, b"step 1\n"), (0.6, b"step 2\n"))
    rack.scripts.on_command("slow", CommandResult(chunks=chunks, duration=0.7))
    op = run_op("slow")
    logged: list[tuple[float, str]] = []
    op._log_line = lambda line: logged.append((time.monotonic(), line))  # type: ignore[method-assign]
    op.execute(context())
    assert [line for _, line in logged] == ["step 1", "step 2"]
    assert logged[1][0] - logged[0][0] >= 0.4  # the first line did not wait for the second


# --- the pod is removed in every case -----------------------------------------------------------


def test_execution_timeout_mid_stream_still_deletes_the_pod(rack: RackEmulator) -> None:
    rack.scripts.on_command("long", CommandResult(chunks=((0.0, b"working\n"),), duration=30))
    op = run_op("long")

    def time_out(line: str) -> None:
        raise AirflowTaskTimeout("Timeout, PID: 1")  # what execution_timeout raises, mid-call

    op._log_line = time_out  # type: ignore[method-assign]
    ti = RecordingTI()
    with pytest.raises(AirflowTaskTimeout):
        op.execute(context(ti))
    assert rack.requests.count("DELETE", f"/apps/{APP}/processes/{ti.xcoms['process_id']}") == 1
    wait_until(lambda: one_offs(rack) == [])


def test_on_kill_deletes_the_pod_of_the_running_command(rack: RackEmulator) -> None:
    """Airflow calls ``on_kill`` from the task's SIGTERM handler while ``execute`` is blocked on
    the command's output; the pod must be gone right after it (the task process then ends)."""
    rack.scripts.on_command("long", CommandResult(chunks=((0.0, b"working\n"),), duration=1.5))
    op = run_op("long")
    ti = RecordingTI()
    worker = threading.Thread(target=lambda: op.execute(context(ti)), daemon=True)
    worker.start()
    wait_until(lambda: len(rack.execs) == 1)
    pod = ti.xcoms["process_id"]
    assert [p["id"] for p in one_offs(rack)] == [pod]
    op.on_kill()
    assert one_offs(rack) == []
    assert rack.requests.count("DELETE", f"/apps/{APP}/processes/{pod}") == 1
    worker.join(10)


def test_on_kill_before_a_pod_exists_does_nothing(rack: RackEmulator) -> None:
    run_op().on_kill()
    assert rack.requests.count("DELETE", "/apps/**") == 0


# --- retries --------------------------------------------------------------------------------------


def test_a_retry_deletes_the_pod_left_by_the_previous_try(
    rack: RackEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    from convox_provider.client.client import ConvoxClient

    with ConvoxClient(rack.url, "password") as client:
        left = client.processes.run_detached(APP, "web", command="sleep 3600").id
    store = StateStore(process_id=left)
    ti = RecordingTI()
    assert run_op().execute({"ti": ti, "task_state_store": store}) == 0  # type: ignore[arg-type]
    assert rack.requests.count("DELETE", f"/apps/{APP}/processes/{left}") == 1
    assert "Deleted process" in capfd.readouterr().out
    assert store["process_id"] == ti.xcoms["process_id"] != left
    assert one_offs(rack) == []


def test_a_retry_after_a_finished_try_just_runs_again(rack: RackEmulator) -> None:
    store = StateStore()
    run_op().execute({"ti": RecordingTI(), "task_state_store": store})  # type: ignore[arg-type]
    first = store["process_id"]
    run_op().execute({"ti": RecordingTI(), "task_state_store": store})  # type: ignore[arg-type]
    assert store["process_id"] != first
    assert rack.requests.count("POST", PROCESSES) == 2
    assert len(rack.execs) == 2
