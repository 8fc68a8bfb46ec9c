"""The tables of the fault matrix: one row per task class, one per fault, and the checks.

A *subject* is one operator or sensor as a DAG would use it: how the rack is seeded, how the task
is built, the routes it reads and writes, and what success looks like on the rack. A *fault* is
what the rack's :class:`~convox_provider.testing.faults.FaultPlan` is told to do, on the reads or
on one write of the subject. ``test_fault_matrix.py`` crosses the two.

Every cell ends with :func:`check_no_repeated_writes`: a request that creates or changes
something was sent at most once, unless the earlier sends were refused before the rack acted
(a status answered before the handler ran, e.g. a 429, or a 4xx from the rack itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast
from unittest import mock

import pytest
from airflow.providers.standard.operators import hitl
from airflow.sdk import BaseOperator, Context
from airflow_compat import TaskAwaitingInput, TaskDeferred
from convox_support import APP, FAST, MANIFEST, RecordingTI, context, sample_app, seed, wait_until

from convox_provider.client.client import ConvoxClient
from convox_provider.client.relay import ConvoxCopyError
from convox_provider.operators.approval import ConvoxApprovalOperator
from convox_provider.operators.apps import (
    ConvoxCreateAppOperator,
    ConvoxDeleteAppOperator,
    ConvoxRestartOperator,
)
from convox_provider.operators.builds import (
    ConvoxBuildOperator,
    ConvoxCopyBuildOperator,
    ConvoxDeployOperator,
)
from convox_provider.operators.environment import ConvoxEnvSetOperator
from convox_provider.operators.processes import ConvoxRunProcessOperator
from convox_provider.operators.releases import ConvoxPromoteReleaseOperator, ConvoxRollbackOperator
from convox_provider.operators.services import ConvoxScaleServiceOperator
from convox_provider.sensors.apps import ConvoxAppSensor
from convox_provider.sensors.builds import ConvoxBuildSensor
from convox_provider.sensors.processes import ConvoxProcessSensor
from convox_provider.sensors.releases import ConvoxReleaseSensor
from convox_provider.testing import RackEmulator, Timing
from convox_provider.testing.faults import RequestRecord
from convox_provider.triggers._base import ConvoxTrigger

__all__ = [
    "APP",
    "NEW_APP",
    "BUILD_LOGS",
    "EXEC",
    "CLIENT_TIMEOUT",
    "RETRY_AFTER",
    "SLOW_TIMEOUT",
    "SOURCE_CONN_ID",
    "SUBJECTS",
    "Armory",
    "Cell",
    "Subject",
    "Write",
    "add_source_rack",
    "check_no_repeated_writes",
    "check_source_untouched",
    "connect_retrying",
    "drive",
    "run_part_way",
    "run_to_event",
    "trigger_poll",
    "unwrapped",
    "wait_for_record",
    "writes_of",
]

RETRY_AFTER = 0.05
"""Seconds a 429 asks the client to wait."""

CLIENT_TIMEOUT = 5.0
"""The connection's ``timeout`` extra in every cell but the timeout cells."""

SLOW_TIMEOUT = 0.3
"""The connection's ``timeout`` extra in the timeout cells: a stall or delay outlasts it."""

BUILD_SECONDS = 0.2
"""How long a build runs where a wait must still be in progress (deferral, restart)."""

ROLLOUT_SECONDS = 0.2
"""How long a rollout runs where a wait must still be in progress (deferral, restart)."""

PREFIX = f"/apps/{APP}"

NEW_APP = "pr-7"
"""The app the create subject makes (beside the seeded ``APP``)."""


SOURCE_CONN_ID = "convox_source"
"""The connection of the source rack of a two-rack subject (the copy); ``convox_default`` is
its target."""


ACTOR = "fault-matrix"
"""The connection's fixed ``Convox-Actor`` (a task outside Airflow's runtime names no task)."""


def connect_retrying(
    monkeypatch: pytest.MonkeyPatch,
    rack: RackEmulator,
    *,
    timeout: float = CLIENT_TIMEOUT,
    conn_id: str = "convox_default",
) -> None:
    """Point ``conn_id`` at ``rack`` as a user would: the default 3 retries, and an audit actor
    (:data:`ACTOR`) that every request must carry, retried or deferred."""
    value = {
        "conn_type": "convox",
        "host": rack.url,
        "password": rack.password,
        "extra": {"timeout": timeout, "max_retries": 3, "actor": ACTOR},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(value))


def add_source_rack(
    cell: Cell,
    subject: Subject,
    factory: Callable[..., RackEmulator],
    monkeypatch: pytest.MonkeyPatch,
    **connection: Any,
) -> RackEmulator | None:
    """For a two-rack subject, start its source rack into ``cell.source`` and point
    :data:`SOURCE_CONN_ID` at it (``connection``: :func:`connect_retrying`'s options); call it
    before ``subject.seed``. None for one-rack subjects."""
    if not subject.two_racks:
        return None
    cell.source = factory()
    connect_retrying(monkeypatch, cell.source, conn_id=SOURCE_CONN_ID, **connection)
    return cell.source


def unwrapped(error: BaseException) -> BaseException:
    """The error a copy met on one rack (a :class:`ConvoxCopyError` names the rack and keeps
    it as its cause), else ``error`` itself."""
    if isinstance(error, ConvoxCopyError) and error.__cause__ is not None:
        return error.__cause__
    return error


# --- faults that remember whether the rack acted ------------------------------------------------


@dataclass(frozen=True)
class _Armed:
    kind: str
    method: str
    regex: re.Pattern[str]
    status: int | None
    acted: bool
    """Whether the rack handles a request this fault fires on (the client may not know)."""


def _glob(pattern: str) -> re.Pattern[str]:
    escaped = re.escape(pattern).replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
    return re.compile(escaped)


class Armory:
    """Arms faults on a rack and keeps, for each, whether the rack acts on the request."""

    def __init__(self, rack: RackEmulator) -> None:
        self.rack = rack
        self.armed: list[_Armed] = []

    def _keep(
        self, kind: str, method: str, path: str, *, acted: bool, status: int | None = None
    ) -> None:
        self.armed.append(_Armed(kind, method, _glob(path), status, acted))

    def status(
        self,
        method: str,
        path: str,
        status: int,
        *,
        after_handler: bool = False,
        retry_after: float | None = None,
    ) -> None:
        """Answer ``status`` once (after the handler ran: the rack did the work)."""
        self.rack.faults.respond(
            method, path, status, retry_after=retry_after, after_handler=after_handler
        )
        self._keep("status", method, path, acted=after_handler, status=status)

    def burst(self, method: str, path: str) -> None:
        """502, 503 and 504, in that order, to the next three matching requests."""
        for status in (502, 503, 504):
            self.status(method, path, status)

    def drop(
        self, method: str, path: str, *, stage: str = "headers", then_after_handler: bool = False
    ) -> None:
        """Close the connection without an answer, before or after (``handler``) the rack acts;
        ``then_after_handler``: the next matching request is dropped after the handler."""
        self.rack.faults.drop(method, path, stage=stage)
        self._keep("drop", method, path, acted=stage == "handler")
        if then_after_handler:
            self.drop(method, path, stage="handler")

    def stall(self, method: str, path: str, seconds: float) -> None:
        """Answer nothing for ``seconds``, then close; the rack never acts."""
        self.rack.faults.stall(method, path, seconds=seconds)
        self._keep("stall", method, path, acted=False)

    def delay(self, method: str, path: str, seconds: float) -> None:
        """Handle the request only after ``seconds`` (the client has given up by then)."""
        self.rack.faults.delay(method, path, seconds)
        self._keep("delay", method, path, acted=True)

    def truncate(self, path: str, after_bytes: int) -> None:
        """Cut a WebSocket stream after ``after_bytes`` payload bytes, without its end frame."""
        self.rack.faults.truncate("GET", path, after_bytes)

    def refused(self, record: RequestRecord) -> bool:
        """Whether the rack provably did not act on ``record``: a status fault answered before
        the handler, or the rack's own 4xx refusal (e.g. 403 ``app is currently updating``)."""
        if record.fault is None:
            return record.status is not None and 400 <= record.status < 500
        if record.fault != "status":
            return False
        matching = [
            a
            for a in self.armed
            if a.kind == "status"
            and a.status == record.status
            and a.method == record.method
            and a.regex.fullmatch(record.path) is not None
        ]
        return bool(matching) and not any(a.acted for a in matching)

    def all_fired(self) -> list[str]:
        """Faults armed on this rack that never fired (each should have)."""
        return [
            f"{f.kind} {f.method} {f.path}"
            for f in self.rack.faults.faults
            if f.fired < (f.times or 1)
        ]


# --- the subjects -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    """A route that creates or changes something on the rack."""

    label: str
    method: str
    path: str
    idempotent: bool = False
    """Repeating it changes nothing (absolute values; deleting what is gone): retried by design."""
    websocket: bool = False
    own_timeout: bool = False
    """Sent with its own long timeout (an upload: ``TRANSFER_TIMEOUT``, one hour), so a slow
    answer is waited for instead of timing out."""
    done: Callable[[Cell], bool] | None = None
    """Whether the rack did this write (checked after a failure)."""


@dataclass
class Cell:
    """One run of a subject: the rack, what the seeding produced, and the task's XCom."""

    rack: RackEmulator
    tmp_path: Path
    seeded: dict[str, Any] = field(default_factory=dict)
    ti: RecordingTI = field(default_factory=RecordingTI)
    deferrals: list[TaskDeferred] = field(default_factory=list)
    source: RackEmulator | None = None
    """The source rack of a two-rack subject (:func:`add_source_rack`)."""


@dataclass(frozen=True)
class Subject:
    """One operator or sensor, as the matrix runs it."""

    name: str
    cls: type[BaseOperator]
    reads: tuple[str, ...]
    """GET routes the task always calls in the worker (each read fault fires on each)."""
    deferrable: bool
    """Whether it can wait on the triggerer."""
    poll: str
    """The GET route its wait polls (stalled by the read-timeout cells)."""
    writes: tuple[Write, ...]
    seed: Callable[[Cell, bool], None]
    """Seeds the rack; the flag says whether the wait must still be in progress when the task
    first looks (deferred runs and restarts)."""
    make: Callable[[Cell, bool], BaseOperator]
    """Builds the task; the flag is ``deferrable``."""
    check: Callable[[Cell, Any], None]
    """Asserts the task's result and the rack's state after a success."""
    stream: str | None = None
    """A WebSocket route the task reads (build logs, exec output)."""
    slow_timing: Timing = field(default_factory=Timing)
    """The rack's timing where a wait must still be in progress when the task first looks
    (deferred cells, restarts); elsewhere every transition is instant."""
    two_racks: bool = False
    """The task reads from a second rack, ``cell.source`` (:func:`add_source_rack`): the
    rack of the cell is its target."""
    source_reads: tuple[str, ...] = ()
    """GET routes the task always calls on the source rack (read faults fire there too)."""

    def __str__(self) -> str:
        return self.name


def _client(rack: RackEmulator) -> ConvoxClient:
    """A client of ``rack`` for seeding (through its console, in console mode)."""
    return ConvoxClient(rack.url, rack.password, rack=rack.console.rack if rack.console else None)


def _new_builds(cell: Cell) -> list[dict[str, Any]]:
    return [b for b in cell.rack.builds(APP) if b["id"] not in cell.seeded["builds"]]


def _new_releases(cell: Cell) -> list[dict[str, Any]]:
    return [r for r in cell.rack.releases(APP) if r["id"] not in cell.seeded["releases"]]


def _env(release: dict[str, Any]) -> dict[str, str]:
    return dict(line.split("=", 1) for line in release["env"].splitlines() if line)


def _running(cell: Cell) -> str:
    app = cell.rack.app(APP)
    assert app["status"] == "running", app
    return str(app["release"])


def _seed_app(cell: Cell, releases: int = 1) -> None:
    seed(cell.rack, releases=releases)
    cell.seeded["builds"] = {b["id"] for b in cell.rack.builds(APP)}
    cell.seeded["releases"] = {r["id"] for r in cell.rack.releases(APP)}
    cell.seeded["objects"] = len(_objects(cell.rack))


def _objects(rack: RackEmulator) -> list[Path]:
    return list((rack.state._storage / "objects").iterdir())


def _one_offs(rack: RackEmulator) -> list[dict[str, Any]]:
    return [p for p in rack.processes(APP) if p["command"].startswith("sleep ")]


def _promoted_newest(cell: Cell) -> bool:
    return bool(cell.rack.app(APP)["release"] == cell.rack.releases(APP)[0]["id"])


# build ------------------------------------------------------------------------------------------


def _seed_build(cell: Cell, slow: bool) -> None:
    _seed_app(cell)
    cell.seeded["source"] = sample_app(cell.tmp_path)
    if slow:
        cell.rack.scripts.next_build(duration=BUILD_SECONDS)


def _make_build(cell: Cell, deferrable: bool) -> BaseOperator:
    return ConvoxBuildOperator(
        task_id="build",
        app=APP,
        source_dir=str(cell.seeded["source"]),
        poll_interval=FAST,
        timeout=60,
        deferrable=deferrable,
    )


def _check_build(cell: Cell, result: Any) -> None:
    (build,) = _new_builds(cell)  # one build, never two
    assert (result, build["status"]) == (build["id"], "complete")
    assert cell.ti.xcoms == {"build_id": build["id"], "release_id": build["release"]}


def _make_deploy(cell: Cell, deferrable: bool) -> BaseOperator:
    return ConvoxDeployOperator(
        task_id="deploy",
        app=APP,
        source_dir=str(cell.seeded["source"]),
        poll_interval=FAST,
        timeout=60,
        promote_timeout=60,
        deferrable=deferrable,
    )


def _check_deploy(cell: Cell, result: Any) -> None:
    (build,) = _new_builds(cell)
    assert build["status"] == "complete"
    assert result == build["release"] == _running(cell)
    assert cell.ti.xcoms == {"build_id": build["id"], "release_id": result}


# releases ---------------------------------------------------------------------------------------


def _seed_promote(cell: Cell, slow: bool) -> None:
    _seed_app(cell, releases=2)
    cell.seeded["target"] = cell.rack.add_release(APP, MANIFEST, promote=False)[1]["id"]
    cell.seeded["releases"].add(cell.seeded["target"])


def _make_promote(cell: Cell, deferrable: bool) -> BaseOperator:
    return ConvoxPromoteReleaseOperator(
        task_id="promote",
        app=APP,
        release_id=cell.seeded["target"],
        poll_interval=FAST,
        timeout=60,
        deferrable=deferrable,
    )


def _check_promote(cell: Cell, result: Any) -> None:
    assert result == cell.seeded["target"] == _running(cell)
    assert _new_releases(cell) == []
    assert cell.ti.xcoms == {"release_id": result}


def _seed_rollback(cell: Cell, slow: bool) -> None:
    _seed_app(cell, releases=2)
    oldest = cell.rack.releases(APP)[-1]
    cell.seeded["back_to"] = oldest["id"]
    cell.seeded["back_to_build"] = oldest["build"]


def _make_rollback(cell: Cell, deferrable: bool) -> BaseOperator:
    return ConvoxRollbackOperator(
        task_id="rollback", app=APP, poll_interval=FAST, timeout=60, deferrable=deferrable
    )


def _check_rollback(cell: Cell, result: Any) -> None:
    (new,) = _new_releases(cell)  # one release created, never two
    assert result == new["id"] == _running(cell)
    assert new["build"] == cell.seeded["back_to_build"]
    assert cell.ti.xcoms == {"rolled_back_to": cell.seeded["back_to"], "release_id": result}


# environment ------------------------------------------------------------------------------------


def _make_env(cell: Cell, deferrable: bool) -> BaseOperator:
    return ConvoxEnvSetOperator(
        task_id="env",
        app=APP,
        set={"FEATURE_FLAG": "on"},
        promote=True,
        poll_interval=FAST,
        timeout=60,
        deferrable=deferrable,
    )


def _check_env(cell: Cell, result: Any) -> None:
    (new,) = _new_releases(cell)
    assert result == new["id"] == _running(cell)
    assert _env(new)["FEATURE_FLAG"] == "on"
    assert cell.ti.xcoms == {"release_id": result}


# one-off run ------------------------------------------------------------------------------------


def _seed_run(cell: Cell, slow: bool) -> None:
    _seed_app(cell)
    cell.rack.scripts.on_command("python manage.py migrate", output="Applying 0001... OK\n")


def _make_run(cell: Cell, deferrable: bool) -> BaseOperator:
    return ConvoxRunProcessOperator(
        task_id="migrate",
        app=APP,
        service="web",
        command="python manage.py migrate",
        poll_interval=FAST,
        start_timeout=30,
    )


def _check_run(cell: Cell, result: Any) -> None:
    (run,) = cell.rack.execs  # the command ran once
    assert (result, run.exit_code) == (0, 0)
    pid = cell.ti.xcoms["process_id"]
    assert pid not in {p["id"] for p in cell.rack.processes(APP)}  # the pod was deleted


# scale ------------------------------------------------------------------------------------------


def _make_scale(cell: Cell, deferrable: bool) -> BaseOperator:
    return ConvoxScaleServiceOperator(
        task_id="scale",
        app=APP,
        service="web",
        count=3,
        poll_interval=FAST,
        timeout=60,
        deferrable=deferrable,
    )


def _check_scale(cell: Cell, result: Any) -> None:
    (web,) = [s for s in cell.rack.state.service_list(APP) if s["name"] == "web"]
    assert web["count"] == 3
    assert result == _running(cell)
    assert _new_releases(cell) == []  # scaling creates no release


# app lifecycle ----------------------------------------------------------------------------------


def _make_create_app(cell: Cell, deferrable: bool) -> BaseOperator:
    return ConvoxCreateAppOperator(
        task_id="create_app", app=NEW_APP, poll_interval=FAST, timeout=60, deferrable=deferrable
    )


def _check_create_app(cell: Cell, result: Any) -> None:
    assert result == NEW_APP
    assert cell.rack.app(NEW_APP)["status"] == "running"
    assert [a["name"] for a in cell.rack.state.app_list()] == [APP, NEW_APP]  # one, not two


def _make_delete_app(cell: Cell, deferrable: bool) -> BaseOperator:
    return ConvoxDeleteAppOperator(
        task_id="delete_app", app=APP, poll_interval=FAST, timeout=60, deferrable=deferrable
    )


def _check_delete_app(cell: Cell, result: Any) -> None:
    assert result is True
    assert cell.rack.state.app_list() == []  # nothing left on the rack


def _seed_restart(cell: Cell, slow: bool) -> None:
    _seed_app(cell)
    cell.seeded["pods"] = {p["id"] for p in cell.rack.processes(APP)}


def _make_restart(cell: Cell, deferrable: bool) -> BaseOperator:
    return ConvoxRestartOperator(
        task_id="restart", app=APP, poll_interval=FAST, timeout=60, deferrable=deferrable
    )


def _restarted(cell: Cell) -> bool:
    return not cell.seeded["pods"] <= {p["id"] for p in cell.rack.processes(APP)}


def _check_restart(cell: Cell, result: Any) -> None:
    assert result == ["web"]
    pods = cell.rack.processes(APP)
    assert pods
    assert cell.seeded["pods"].isdisjoint(p["id"] for p in pods)  # every pod replaced
    assert {p["status"] for p in pods} == {"running"}
    assert _new_releases(cell) == []  # a restart creates no release


# sensors ----------------------------------------------------------------------------------------


def _seed_build_sensor(cell: Cell, slow: bool) -> None:
    _seed_build(cell, slow)
    with _client(cell.rack) as client:
        build = client.builds.build_from_directory(
            APP, cell.seeded["source"], wait=False, follow_logs=False
        )
    cell.seeded["build"] = build.id


def _make_build_sensor(cell: Cell, deferrable: bool) -> BaseOperator:
    return ConvoxBuildSensor(
        task_id="built",
        app=APP,
        build_id=cell.seeded["build"],
        poke_interval=FAST,
        timeout=60,
        deferrable=deferrable,
    )


def _check_build_sensor(cell: Cell, result: Any) -> None:
    build = cell.rack.state.build_get(APP, cell.seeded["build"])
    assert (build["status"], result) == ("complete", build["release"])
    assert cell.ti.xcoms == {"release_id": result}


def _seed_release_sensor(cell: Cell, slow: bool) -> None:
    _seed_promote(cell, slow)
    with _client(cell.rack) as client:
        client.releases.promote(APP, cell.seeded["target"], wait=False)


def _make_release_sensor(cell: Cell, deferrable: bool) -> BaseOperator:
    return ConvoxReleaseSensor(
        task_id="rolled_out",
        app=APP,
        release_id=cell.seeded["target"],
        poke_interval=FAST,
        timeout=60,
        deferrable=deferrable,
    )


def _check_release_sensor(cell: Cell, result: Any) -> None:
    assert result == cell.seeded["target"] == _running(cell)


class _ApprovalUntilAsked(ConvoxApprovalOperator):
    """The approval as the matrix drives it: up to the request Airflow would write (kept here,
    not written to a metadata DB) and the wait Airflow would then start, which ends the run."""

    asked: list[dict[str, Any]]

    def execute(self, context: Context) -> Any:
        self.asked = []
        resumable = {**context, "task_instance": SimpleNamespace(id=uuid.uuid4())}
        with mock.patch.object(hitl, "upsert_hitl_detail", lambda **row: self.asked.append(row)):
            try:
                super().execute(cast(Context, resumable))
            except (TaskDeferred, TaskAwaitingInput):  # 3.1 defers; 3.3 awaits input
                return self.asked[-1]["body"]
        raise AssertionError("the approval did not wait for an answer")


def _make_approval(cell: Cell, deferrable: bool) -> BaseOperator:
    return _ApprovalUntilAsked(task_id="approve", app=APP, release_id=cell.seeded["target"])


def _check_approval(cell: Cell, result: Any) -> None:
    active = _running(cell)
    assert f"| Release | `{cell.seeded['target']}` | `{active}` |" in result
    pushed = cell.ti.xcoms
    assert (pushed["release_id"], pushed["active_release"]) == (cell.seeded["target"], active)
    assert set(pushed) == {"release_id", "active_release", "change"}


# copy across racks -----------------------------------------------------------------------------


def _seed_copy(cell: Cell, slow: bool) -> None:
    assert cell.source is not None, "a two-rack subject needs add_source_rack() first"
    _seed_app(cell)  # the target runs its own release
    cell.source.create_app(APP)
    build, _ = cell.source.add_release(APP, MANIFEST, description="tested on staging")
    cell.seeded["copied"] = build["id"]
    cell.seeded["source"] = {
        "builds": cell.source.builds(APP),
        "releases": cell.source.releases(APP),
        "app": cell.source.app(APP),
    }


def _make_copy(cell: Cell, deferrable: bool) -> BaseOperator:
    return ConvoxCopyBuildOperator(
        task_id="copy",
        source_conn_id=SOURCE_CONN_ID,
        source_app=APP,
        build_id=cell.seeded["copied"],
        target_conn_id="convox_default",
        promote=True,
        poll_interval=FAST,
        timeout=60,
        deferrable=deferrable,
    )


def _check_copy(cell: Cell, result: Any) -> None:
    (imported,) = _new_builds(cell)  # one import, never two
    (release,) = _new_releases(cell)
    assert imported["status"] == "complete"
    assert result == imported["id"]
    assert imported["release"] == release["id"] == _running(cell)
    assert f"/{APP}/{cell.seeded['copied']}]" in imported["description"]  # the marker
    assert cell.ti.xcoms == {"build_id": imported["id"], "release_id": release["id"]}


JOB_SECONDS = 0.3
"""How long the detached process of the process sensor runs where its wait must still be in
progress (deferral, restart); the rack keeps it 5 s after it ends (``Timing.reap``)."""


def _seed_process_sensor(cell: Cell, slow: bool) -> None:
    _seed_app(cell)
    cell.rack.scripts.on_command("bin/job", duration=JOB_SECONDS if slow else 0.0)
    with _client(cell.rack) as client:
        cell.seeded["process"] = client.processes.run(APP, "web", command="bin/job").id


def _make_process_sensor(cell: Cell, deferrable: bool) -> BaseOperator:
    return ConvoxProcessSensor(
        task_id="job_done",
        app=APP,
        process_id=cell.seeded["process"],
        poke_interval=FAST,
        timeout=60,
        deferrable=deferrable,
    )


def _check_process_sensor(cell: Cell, result: Any) -> None:
    pid = cell.seeded["process"]
    assert result == {"process_id": pid, "status": "complete", "exit_code": 0}
    assert cell.ti.xcoms == {"exit_code": 0, "process_status": "complete"}


def _make_app_sensor(cell: Cell, deferrable: bool) -> BaseOperator:
    return ConvoxAppSensor(
        task_id="app_idle",
        app=APP,
        release_id=cell.seeded["target"],
        poke_interval=FAST,
        timeout=60,
        deferrable=deferrable,
    )


# the table --------------------------------------------------------------------------------------

UPLOAD = Write(
    "source upload",
    "POST",
    f"{PREFIX}/objects/**",
    own_timeout=True,
    done=lambda cell: len(_objects(cell.rack)) > cell.seeded["objects"],
)
BUILD_CREATE = Write(
    "build create", "POST", f"{PREFIX}/builds", done=lambda cell: bool(_new_builds(cell))
)
RELEASE_CREATE = Write(
    "release create", "POST", f"{PREFIX}/releases", done=lambda cell: bool(_new_releases(cell))
)
PROMOTE = Write("promote", "POST", f"{PREFIX}/releases/*/promote", done=_promoted_newest)
PROCESS_CREATE = Write(
    "process create",
    "POST",
    f"{PREFIX}/services/web/processes",
    done=lambda cell: bool(_one_offs(cell.rack)),
)
EXEC = Write(
    "exec",
    "GET",
    f"{PREFIX}/processes/*/exec",
    websocket=True,
    done=lambda cell: bool(cell.rack.execs),
)
PROCESS_DELETE = Write("process delete", "DELETE", f"{PREFIX}/processes/*", idempotent=True)
SCALE = Write("service scale", "PUT", f"{PREFIX}/services/web", idempotent=True)
APP_CREATE = Write(
    "app create",
    "POST",
    "/apps",
    done=lambda cell: NEW_APP in [a["name"] for a in cell.rack.state.app_list()],
)
APP_MARK = Write("app marker", "PUT", f"/apps/{NEW_APP}/configs/*", idempotent=True)
APP_DELETE = Write("app delete", "DELETE", PREFIX, idempotent=True)
RESTART = Write("service restart", "POST", f"{PREFIX}/services/web/restart", done=_restarted)

IMPORT = Write(
    "build import",
    "POST",
    f"{PREFIX}/builds/import",
    own_timeout=True,
    done=lambda cell: bool(_new_builds(cell)),
)

BUILD_POLL = f"{PREFIX}/builds/*"
BUILD_LOGS = f"{PREFIX}/builds/*/logs"
APP_POLL = PREFIX
PROCESS_POLL = f"{PREFIX}/processes/*"
ROLLOUT_TIMING = Timing(rollout=ROLLOUT_SECONDS)

SUBJECTS: tuple[Subject, ...] = (
    Subject(
        name="build",
        cls=ConvoxBuildOperator,
        reads=(BUILD_POLL,),
        deferrable=True,
        poll=BUILD_POLL,
        writes=(UPLOAD, BUILD_CREATE),
        seed=_seed_build,
        make=_make_build,
        check=_check_build,
        stream=BUILD_LOGS,
    ),
    Subject(
        name="deploy",
        cls=ConvoxDeployOperator,
        reads=(BUILD_POLL, APP_POLL),
        deferrable=True,
        poll=APP_POLL,
        writes=(UPLOAD, BUILD_CREATE, PROMOTE),
        seed=_seed_build,
        make=_make_deploy,
        check=_check_deploy,
        stream=BUILD_LOGS,
        slow_timing=ROLLOUT_TIMING,
    ),
    Subject(
        name="promote",
        cls=ConvoxPromoteReleaseOperator,
        reads=(APP_POLL,),
        deferrable=True,
        poll=APP_POLL,
        writes=(PROMOTE,),
        seed=_seed_promote,
        make=_make_promote,
        check=_check_promote,
        slow_timing=ROLLOUT_TIMING,
    ),
    Subject(
        name="rollback",
        cls=ConvoxRollbackOperator,
        reads=(APP_POLL, f"{PREFIX}/releases", f"{PREFIX}/releases/*"),
        deferrable=True,
        poll=APP_POLL,
        writes=(RELEASE_CREATE, PROMOTE),
        seed=_seed_rollback,
        make=_make_rollback,
        check=_check_rollback,
        slow_timing=ROLLOUT_TIMING,
    ),
    Subject(
        name="env-set",
        cls=ConvoxEnvSetOperator,
        reads=(APP_POLL, f"{PREFIX}/releases", f"{PREFIX}/releases/*"),
        deferrable=True,
        poll=APP_POLL,
        writes=(RELEASE_CREATE, PROMOTE),
        seed=lambda cell, slow: _seed_app(cell),
        make=_make_env,
        check=_check_env,
        slow_timing=ROLLOUT_TIMING,
    ),
    Subject(
        name="run",
        cls=ConvoxRunProcessOperator,
        reads=(PROCESS_POLL,),
        deferrable=False,
        poll=PROCESS_POLL,
        writes=(PROCESS_CREATE, EXEC, PROCESS_DELETE),
        seed=_seed_run,
        make=_make_run,
        check=_check_run,
        stream=EXEC.path,
    ),
    Subject(
        name="scale",
        cls=ConvoxScaleServiceOperator,
        reads=(APP_POLL,),
        deferrable=True,
        poll=APP_POLL,
        writes=(SCALE,),
        seed=lambda cell, slow: _seed_app(cell),
        make=_make_scale,
        check=_check_scale,
        slow_timing=ROLLOUT_TIMING,
    ),
    Subject(
        name="create-app",
        cls=ConvoxCreateAppOperator,
        reads=(f"/apps/{NEW_APP}",),
        deferrable=True,
        poll=f"/apps/{NEW_APP}",
        writes=(APP_CREATE, APP_MARK),
        seed=lambda cell, slow: _seed_app(cell),
        make=_make_create_app,
        check=_check_create_app,
        slow_timing=ROLLOUT_TIMING,
    ),
    Subject(
        name="delete-app",
        cls=ConvoxDeleteAppOperator,
        reads=(APP_POLL,),
        deferrable=True,
        poll=APP_POLL,
        writes=(APP_DELETE,),
        seed=lambda cell, slow: _seed_app(cell),
        make=_make_delete_app,
        check=_check_delete_app,
        slow_timing=Timing(app_delete=ROLLOUT_SECONDS),
    ),
    Subject(
        name="restart",
        cls=ConvoxRestartOperator,
        reads=(APP_POLL, f"{PREFIX}/services", f"{PREFIX}/processes"),
        deferrable=True,
        poll=APP_POLL,
        writes=(RESTART,),
        seed=_seed_restart,
        make=_make_restart,
        check=_check_restart,
        slow_timing=Timing(process_start=ROLLOUT_SECONDS),
    ),
    Subject(
        name="copy",
        cls=ConvoxCopyBuildOperator,
        reads=(APP_POLL, f"{PREFIX}/builds", f"{PREFIX}/releases/*"),
        deferrable=True,
        poll=APP_POLL,
        writes=(IMPORT, PROMOTE),
        seed=_seed_copy,
        make=_make_copy,
        check=_check_copy,
        slow_timing=ROLLOUT_TIMING,
        two_racks=True,
        source_reads=(BUILD_POLL, f"{PREFIX}/builds/*.tgz"),  # the build, then its export
    ),
    Subject(
        name="build-sensor",
        cls=ConvoxBuildSensor,
        reads=(BUILD_POLL,),
        deferrable=True,
        poll=BUILD_POLL,
        writes=(),
        seed=_seed_build_sensor,
        make=_make_build_sensor,
        check=_check_build_sensor,
    ),
    Subject(
        name="release-sensor",
        cls=ConvoxReleaseSensor,
        reads=(APP_POLL,),
        deferrable=True,
        poll=APP_POLL,
        writes=(),
        seed=_seed_release_sensor,
        make=_make_release_sensor,
        check=_check_release_sensor,
        slow_timing=ROLLOUT_TIMING,
    ),
    Subject(
        name="approval",
        cls=ConvoxApprovalOperator,
        reads=(APP_POLL, f"{PREFIX}/releases/*", BUILD_POLL),
        deferrable=False,  # its wait is Airflow's own (awaiting_input, or HITLTrigger on 3.1)
        poll=APP_POLL,
        writes=(),
        seed=_seed_promote,
        make=_make_approval,
        check=_check_approval,
    ),
    Subject(
        name="process-sensor",
        cls=ConvoxProcessSensor,
        reads=(PROCESS_POLL,),
        deferrable=True,
        poll=PROCESS_POLL,
        writes=(),
        seed=_seed_process_sensor,
        make=_make_process_sensor,
        check=_check_process_sensor,
    ),
    Subject(
        name="app-sensor",
        cls=ConvoxAppSensor,
        reads=(APP_POLL,),
        deferrable=True,
        poll=APP_POLL,
        writes=(),
        seed=_seed_release_sensor,
        make=_make_app_sensor,
        check=_check_promote,
        slow_timing=ROLLOUT_TIMING,
    ),
)


# --- running a task and checking the request log ------------------------------------------------


def drive(
    task: BaseOperator,
    cell: Cell,
    *,
    on_defer: Callable[[TaskDeferred], None] | None = None,
    run_trigger: Callable[[ConvoxTrigger], dict[str, Any]] | None = None,
) -> Any:
    """Run ``task`` as Airflow would: ``execute``, then for each deferral the trigger to its
    event and the method it names, until the task returns."""
    ctx = cast(Context, context(cell.ti))  # a dict, as convox_support's tests use
    step: Callable[[], Any] = functools.partial(task.execute, ctx)
    while True:
        try:
            return step()
        except TaskDeferred as deferred:
            cell.deferrals.append(deferred)
            if on_defer is not None:
                on_defer(deferred)
            trigger = deferred.trigger
            assert isinstance(trigger, ConvoxTrigger)
            event = (run_trigger or run_to_event)(trigger)
            step = functools.partial(getattr(task, deferred.method_name), ctx, event=event)


def run_to_event(trigger: ConvoxTrigger) -> dict[str, Any]:
    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(first())


def run_part_way(trigger: ConvoxTrigger, rack: RackEmulator) -> None:
    """Run ``trigger`` until it has sent its first request, then cancel it: what a triggerer
    restart does to the triggers it was running."""
    before = len(rack.requests)

    async def interrupted() -> None:
        task = asyncio.ensure_future(_anext(trigger))
        deadline = time.monotonic() + 10
        while len(rack.requests) <= before and not task.done():
            assert time.monotonic() < deadline, "the trigger sent nothing"
            await asyncio.sleep(0.002)
        assert not task.done(), f"the trigger ended before the restart: {task.result()}"
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(interrupted())


async def _anext(trigger: ConvoxTrigger) -> Any:
    async for event in trigger.run():
        return event
    return None


def writes_of(records: list[RequestRecord]) -> list[RequestRecord]:
    """The requests that may create or change something (every verb but GET, and exec)."""
    return [r for r in records if r.method != "GET" or r.path.endswith("/exec")]


def check_no_repeated_writes(subject: Subject, armory: Armory) -> None:
    """No write was sent twice unless the earlier sends were refused before the rack acted,
    and nothing was written that the subject does not declare."""
    records = list(armory.rack.requests)
    unnamed = [f"{r.method} {r.path}" for r in records if r.header("Convox-Actor") != ACTOR]
    assert unnamed == [], f"{subject} sent requests without the actor {ACTOR!r}: {unnamed}"
    unknown = [
        f"{r.method} {r.path}"
        for r in writes_of(records)
        if not any(w.method == r.method and _glob(w.path).fullmatch(r.path) for w in subject.writes)
    ]
    assert unknown == [], f"{subject} sent writes it does not declare: {unknown}"
    for write in subject.writes:
        if write.idempotent:
            continue
        regex = _glob(write.path)
        by_path: dict[str, list[RequestRecord]] = {}
        for record in records:
            if record.method == write.method and regex.fullmatch(record.path):
                by_path.setdefault(record.path, []).append(record)
        for path, sent in by_path.items():
            maybe_acted = [r for r in sent if not armory.refused(r)]
            assert len(maybe_acted) <= 1, (
                f"{subject}: {write.label} {write.method} {path} was sent "
                f"{len(maybe_acted)} times where the rack may have acted: "
                f"{[(r.status, r.fault) for r in sent]}"
            )


def check_source_untouched(cell: Cell) -> None:
    """A two-rack subject's source rack got no write and is as it was seeded (nothing left
    there, whatever happened on the target)."""
    if cell.source is None:
        return
    assert writes_of(list(cell.source.requests)) == []
    after = {
        "builds": cell.source.builds(APP),
        "releases": cell.source.releases(APP),
        "app": cell.source.app(APP),
    }
    assert after == cell.seeded["source"]


def wait_for_record(rack: RackEmulator, write: Write) -> None:
    """Wait until a delayed write has been handled (the rack records it after its handler)."""
    wait_until(
        lambda: any(r.status is not None for r in rack.requests.find(write.method, write.path)),
        timeout=10,
    )


def trigger_poll(trigger: ConvoxTrigger) -> str:
    """The GET route ``trigger`` polls."""
    if hasattr(trigger, "process_id"):
        return PROCESS_POLL
    return BUILD_POLL if hasattr(trigger, "build_id") else f"/apps/{trigger.app}"
