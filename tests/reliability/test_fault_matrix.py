"""The fault matrix: every operator and sensor against every fault of the rack emulator.

Rows are the subjects of :mod:`.matrix`; columns are the faults below. A read fault hits every
GET route the task always calls (in the worker, or, in ``deferred`` cells, in the trigger); a
write fault hits one write route. Each cell asserts its outcome (success with the right result
on the rack, or a failure whose message names the problem and what to do) and that no write
was repeated where the rack may already have acted.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from airflow_compat import TaskDeferred

from convox_provider.client.client import ConvoxClient
from convox_provider.client.errors import (
    ConvoxConnectionError,
    ConvoxGatewayError,
    ConvoxRateLimitError,
    ConvoxTimeoutError,
)
from convox_provider.client.relay import ConvoxCopyError
from convox_provider.client.retry import RetryConfig
from convox_provider.testing import RackEmulator

from .matrix import (
    ACTOR,
    APP,
    BUILD_LOGS,
    EXEC,
    RETRY_AFTER,
    SLOW_TIMEOUT,
    SUBJECTS,
    Armory,
    Cell,
    Subject,
    Write,
    add_source_rack,
    check_no_repeated_writes,
    check_source_untouched,
    connect_retrying,
    drive,
    trigger_poll,
    unwrapped,
    wait_for_record,
)

RackFactory = Callable[..., RackEmulator]
STALL = 5.0
"""Seconds a stalled request goes unanswered (far beyond ``SLOW_TIMEOUT``)."""
DELAY = SLOW_TIMEOUT + 0.3
"""Seconds a delayed request waits before the rack handles it (beyond ``SLOW_TIMEOUT``)."""


# --- read faults: always retried, the task succeeds -----------------------------------------------


@dataclass(frozen=True)
class ReadFault:
    name: str
    arm: Callable[[Armory, str], None]
    """Arm the fault on one GET route."""
    on_poll_only: bool = False
    slow: bool = False


READ_FAULTS = (
    ReadFault("429", lambda a, r: a.status("GET", r, 429, retry_after=RETRY_AFTER)),
    ReadFault("5xx-burst", lambda a, r: a.burst("GET", r)),
    ReadFault("drop", lambda a, r: a.drop("GET", r, stage="headers", then_after_handler=True)),
    ReadFault("read-timeout", lambda a, r: a.stall("GET", r, STALL), on_poll_only=True, slow=True),
)

READ_CELLS = [
    pytest.param(subject, fault, mode, id=f"{subject.name}-{fault.name}-{mode}")
    for subject in SUBJECTS
    for mode in (("worker", "deferred") if subject.deferrable else ("worker",))
    for fault in READ_FAULTS
]


@pytest.mark.parametrize(("subject", "fault", "mode"), READ_CELLS)
def test_read_fault(
    *,
    subject: Subject,
    fault: ReadFault,
    mode: str,
    convox_rack_factory: RackFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deferred = mode == "deferred"
    rack = convox_rack_factory(timing=subject.slow_timing if deferred else None)
    connect_retrying(monkeypatch, rack, **({"timeout": SLOW_TIMEOUT} if fault.slow else {}))
    cell = Cell(rack, tmp_path)
    source = add_source_rack(cell, subject, convox_rack_factory, monkeypatch)
    subject.seed(cell, deferred)
    rack.requests.clear()
    armory = Armory(rack)
    # The source rack is read before any wait: its faults fire in the worker, in both modes.
    source_armory = None if source is None else Armory(source)
    if source_armory is not None and not fault.on_poll_only:
        source_armory.rack.requests.clear()
        for route in subject.source_reads:
            fault.arm(source_armory, route)

    def arm(routes: tuple[str, ...], poll: str) -> None:
        for route in (poll,) if fault.on_poll_only else routes:
            fault.arm(armory, route)

    def on_defer(deferral: TaskDeferred) -> None:
        route = trigger_poll(deferral.trigger)
        arm((route,), route)

    if not deferred:
        arm(subject.reads, subject.poll)
    result = drive(subject.make(cell, deferred), cell, on_defer=on_defer if deferred else None)

    subject.check(cell, result)
    assert bool(cell.deferrals) == deferred
    assert armory.all_fired() == []  # every armed fault hit the task
    assert source_armory is None or source_armory.all_fired() == []
    check_no_repeated_writes(subject, armory)
    check_source_untouched(cell)


# --- write faults -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fails:
    """The task fails with ``error`` whose message matches ``message`` (a regex)."""

    error: type[Exception]
    message: str


@dataclass(frozen=True)
class WriteFault:
    name: str
    arm: Callable[[Armory, Write], None]
    acted: bool
    """Whether the rack did the work before the client lost the answer."""
    outcome: Fails
    """How a task fails when this hits a write that must not be repeated."""
    websocket: bool = True
    """Whether it applies to a WebSocket write (exec)."""
    socket_outcome: Fails | None = None
    """How a task fails when this hits an exec handshake (default: ``outcome``)."""
    socket_acted: bool | None = None
    """``acted`` for an exec handshake (default: ``acted``)."""
    slow: bool = False


EXEC_CUT = (
    "the stream ended without its end marker .the connection was cut.: the command may still "
    "be running or may have ended, and its exit code is lost. It was not run again: check its "
    "effect before repeating it"
)
MAY_HAVE_REACHED = re.escape(
    "the request may have reached the rack, so it was not retried: check its effect before "
    "repeating it"
)
EXEC_MAY_HAVE_STARTED = re.escape(
    "the command may have started on the rack, so it was not run again: check its effect "
    "before repeating it"
)
REFUSED = re.escape("the request was refused, and a write is never sent again automatically")

WRITE_FAULTS = (
    WriteFault(
        "429",
        lambda a, w: a.status(w.method, w.path, 429, retry_after=RETRY_AFTER),
        acted=False,
        outcome=Fails(ConvoxRateLimitError, r"^429: Too Many Requests \({method} .*; " + REFUSED),
    ),
    WriteFault(
        "5xx-burst",
        lambda a, w: a.burst(w.method, w.path),
        acted=False,
        outcome=Fails(ConvoxGatewayError, r"^502: Bad Gateway \({method} .*; " + MAY_HAVE_REACHED),
    ),
    WriteFault(
        "504-after-handler",
        lambda a, w: a.status(w.method, w.path, 504, after_handler=True),
        acted=True,
        outcome=Fails(
            ConvoxGatewayError, r"^504: Gateway Timeout \({method} .*; " + MAY_HAVE_REACHED
        ),
        websocket=False,
    ),
    WriteFault(
        "drop",
        lambda a, w: a.drop(w.method, w.path, stage="headers"),
        acted=False,
        outcome=Fails(ConvoxConnectionError, MAY_HAVE_REACHED),
        socket_outcome=Fails(
            ConvoxConnectionError, "closed during the handshake; " + EXEC_MAY_HAVE_STARTED
        ),
    ),
    WriteFault(
        "drop-after-handler",
        lambda a, w: a.drop(w.method, w.path, stage="handler"),
        acted=True,
        outcome=Fails(ConvoxConnectionError, MAY_HAVE_REACHED),
        # On an exec: the command ran and its output came, but the end frame (the exit code)
        # never did.
        socket_outcome=Fails(ConvoxConnectionError, EXEC_CUT),
    ),
    WriteFault(
        "read-timeout",
        lambda a, w: a.delay(w.method, w.path, DELAY),
        acted=True,
        outcome=Fails(ConvoxTimeoutError, r"timed out \(ReadTimeout\); " + MAY_HAVE_REACHED),
        socket_outcome=Fails(
            ConvoxTimeoutError, "timed out before the handshake; " + EXEC_MAY_HAVE_STARTED
        ),
        socket_acted=False,  # the run deletes its pod before the late handshake is served
        slow=True,
    ),
)

LEAVES_POD = {("process delete", "5xx-burst")}
"""Cells where the run succeeds but its pod is left behind: the workflow tries the DELETE twice
(the client never retries a DELETE), so a third gateway error in a row leaves the pod to end
when its ``sleep <timeout>`` runs out; a warning says so."""

WRITE_CELLS = [
    pytest.param(
        subject, write, fault, id=f"{subject.name}-{write.label.replace(' ', '-')}-{fault.name}"
    )
    for subject in SUBJECTS
    for write in subject.writes
    for fault in WRITE_FAULTS
    if fault.websocket or not write.websocket
]


@pytest.mark.parametrize(("subject", "write", "fault"), WRITE_CELLS)
def test_write_fault(
    *,
    subject: Subject,
    write: Write,
    fault: WriteFault,
    convox_rack_factory: RackFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rack = convox_rack_factory()
    connect_retrying(monkeypatch, rack, **({"timeout": SLOW_TIMEOUT} if fault.slow else {}))
    cell = Cell(rack, tmp_path)
    add_source_rack(cell, subject, convox_rack_factory, monkeypatch)
    subject.seed(cell, False)
    rack.requests.clear()
    armory = Armory(rack)
    fault.arm(armory, write)
    task = subject.make(cell, False)

    if (write.label, fault.name) in LEAVES_POD:
        assert drive(task, cell) == 0  # the command's outcome is not hidden by the clean-up
        assert len(rack.execs) == 1
        pid = cell.ti.xcoms["process_id"]
        assert pid in {p["id"] for p in rack.processes(APP)}  # ends when its sleep runs out
        assert f"could not delete process {pid} of app {APP}: 503" in caplog.text
        assert [f.fired for f in rack.faults.faults] == [1, 1, 0]  # tried twice, then left
        return
    if write.idempotent or (fault.slow and write.own_timeout):
        subject.check(cell, drive(task, cell))
    else:
        expected = (write.websocket and fault.socket_outcome) or fault.outcome
        with pytest.raises((expected.error, ConvoxCopyError)) as failure:
            drive(task, cell)
        error = unwrapped(failure.value)  # a copy's error names the rack; its cause is this
        assert isinstance(error, expected.error), repr(failure.value)
        if error is not failure.value:
            assert str(failure.value).startswith(f"target rack {rack.url}: "), failure.value
        message = str(error)
        assert re.search(expected.message.format(method=write.method), message), message
        shown = str(failure.value)
        assert str(pickle.loads(pickle.dumps(failure.value))) == shown  # crosses processes
        if fault.name == "read-timeout":
            wait_for_record(rack, write)
        assert write.done is not None
        acted = fault.acted
        if write.websocket and fault.socket_acted is not None:
            acted = fault.socket_acted
        assert write.done(cell) == acted  # the rack did the work iff the fault says so
    fired = [f.fired for f in rack.faults.faults]
    if write.idempotent or len(fired) == 1:
        assert fired == [1] * len(fired)
    else:  # a burst on a write that is not repeated: only its first status was ever sent
        assert fired == [1] + [0] * (len(fired) - 1)
    check_no_repeated_writes(subject, armory)
    check_source_untouched(cell)


# --- truncated streams: the poll is authoritative ---------------------------------------------

STREAM_CELLS = [
    pytest.param(subject, mode, id=f"{subject.name}-{mode}")
    for subject in SUBJECTS
    if subject.stream is not None or subject.name == "build-sensor"
    for mode in (("worker", "deferred") if subject.deferrable else ("worker",))
    if not (subject.name == "build-sensor" and mode == "worker")  # a poke reads no log
]


@pytest.mark.parametrize(("subject", "mode"), STREAM_CELLS)
def test_truncated_stream(
    *,
    subject: Subject,
    mode: str,
    convox_rack_factory: RackFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A build log cut short changes nothing: the build's status decides and the rest of the
    log is read again once it ended. An exec cut short loses the exit code: the run fails and
    the command is not run again."""
    deferred = mode == "deferred"
    rack = convox_rack_factory(timing=subject.slow_timing if deferred else None)
    connect_retrying(monkeypatch, rack)
    cell = Cell(rack, tmp_path)
    subject.seed(cell, deferred)
    rack.requests.clear()
    armory = Armory(rack)
    stream = subject.stream or BUILD_LOGS
    armory.truncate(stream, after_bytes=12)
    task = subject.make(cell, deferred)

    if stream == EXEC.path:
        with pytest.raises(ConvoxConnectionError) as failure:
            drive(task, cell)
        assert re.search(EXEC_CUT, str(failure.value)), str(failure.value)
        assert len(rack.execs) == 1  # the command ran once, and was not run again
        assert cell.ti.xcoms["process_id"] not in {p["id"] for p in rack.processes(APP)}
    else:
        subject.check(cell, drive(task, cell))
        assert bool(cell.deferrals) == deferred
        build_id = cell.seeded.get("build") or cell.ti.xcoms["build_id"]
        out = capfd.readouterr().out
        # the whole log reached the task (or triggerer) log once, cut or not
        push = f"Running: docker push {rack.state.registry(APP)}:web.{build_id}"
        for line in ("Building: .", "Step 1/", push):
            assert out.count(line) == 1, (line, out)
    assert [f.fired for f in rack.faults.faults] == [1]
    check_no_repeated_writes(subject, armory)


# --- the request-log check itself ---------------------------------------------------------------


def test_the_repeated_write_check_tells_refusals_from_repeats(
    convox_rack_factory: RackFactory,
) -> None:
    rack = convox_rack_factory()
    rack.create_app(APP)
    (env_set,) = [s for s in SUBJECTS if s.name == "env-set"]
    (sensor,) = [s for s in SUBJECTS if s.name == "release-sensor"]
    armory = Armory(rack)
    armory.status("POST", f"/apps/{APP}/releases", 429)
    with ConvoxClient(rack.url, rack.password, retry=RetryConfig(max_retries=0)) as plain:
        plain.apps.get(APP)  # a request without the actor is caught
        with pytest.raises(AssertionError, match=r"without the actor 'fault-matrix': \['GET /apps"):
            check_no_repeated_writes(env_set, armory)
        rack.requests.clear()
        client = plain.with_actor(ACTOR)
        with pytest.raises(ConvoxRateLimitError):
            client.releases.create(APP, env={"A": "1"})
        client.releases.create(APP, env={"A": "1"})  # sent again after a refusal: allowed
        check_no_repeated_writes(env_set, armory)
        with pytest.raises(AssertionError, match="does not declare"):
            check_no_repeated_writes(sensor, armory)  # a sensor writes nothing

        armory.status("POST", f"/apps/{APP}/releases", 504, after_handler=True)
        with pytest.raises(ConvoxGatewayError):
            client.releases.create(APP, env={"A": "2"})
        client.releases.create(APP, env={"A": "2"})  # sent again after the rack acted
    repeated = "was sent 3 times where the rack may have acted: [(429, 'status'), (200, None), (504"
    with pytest.raises(AssertionError, match=re.escape(repeated)):
        check_no_repeated_writes(env_set, armory)
