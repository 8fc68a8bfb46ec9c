"""Event payloads, build output as log lines, and progress messages (no rack needed)."""

from __future__ import annotations

import logging

import pytest

from convox_provider.client.errors import (
    ConvoxAuthError,
    ConvoxBuildFailedError,
    ConvoxGatewayError,
    ConvoxRollbackError,
    ConvoxWaitTimeoutError,
)
from convox_provider.client.workflows.events import (
    BuildCreated,
    EnvironmentConflict,
    ProcessStateChanged,
    WaitRetrying,
)
from convox_provider.triggers._events import (
    STATUSES,
    OutputLines,
    describe,
    event_for_error,
)


def collect(chunks: list[bytes], **options: int) -> list[str]:
    lines: list[str] = []
    output = OutputLines(lines.append, **options)
    for chunk in chunks:
        output.feed(chunk)
    output.close()
    return lines


def test_lines_split_across_chunks_are_joined() -> None:
    assert collect([b"Buil", b"ding: .\nStep 1/", b"3\n", b"\nlast"]) == [
        "Building: .",
        "Step 1/3",
        "",
        "last",
    ]


def test_a_character_split_across_chunks_stays_whole() -> None:
    data = "naïve → done\n".encode()
    assert collect([data[:3], data[3:12], data[12:]]) == ["naïve → done"]


def test_invalid_utf8_is_replaced_and_carriage_returns_dropped() -> None:
    assert collect([b"bad \xff byte\r\n"]) == ["bad \ufffd byte"]


def test_nothing_is_emitted_before_a_line_is_complete() -> None:
    lines: list[str] = []
    output = OutputLines(lines.append)
    output.feed(b"partial")
    assert lines == []
    output.feed(b" line\n")
    assert lines == ["partial line"]


def test_a_partial_line_is_held_only_up_to_the_limit() -> None:
    lines: list[str] = []
    output = OutputLines(lines.append, max_line_bytes=4)
    output.feed(b"x" * 10)
    assert lines == ["xxxx", "xxxx"]
    output.feed(b"y\n")
    assert lines == ["xxxx", "xxxx", "xxy"]


def test_line_limit_counts_what_it_leaves_out() -> None:
    lines = collect([b"".join(b"%d\n" % n for n in range(10))], max_lines=3)
    assert lines[:3] == ["0", "1", "2"]
    assert lines[3:] == ["... 7 more line(s) of output not logged here (limit 3 lines)"]


def test_failed_build_event() -> None:
    exc = ConvoxBuildFailedError("build B1 of app demo failed: oops", build_id="B1", logs_tail="x")
    assert event_for_error(exc) == {
        "status": "failed",
        "message": "build B1 of app demo failed: oops",
        "build_id": "B1",
        "logs_tail": "x",
    }


def test_rollback_event() -> None:
    exc = ConvoxRollbackError("rolled back", app="demo", release_id="R2", active_release="R1")
    assert event_for_error(exc) == {
        "status": "rollback",
        "message": "rolled back",
        "app": "demo",
        "release_id": "R2",
        "active_release": "R1",
    }


def test_timeout_and_error_events() -> None:
    assert event_for_error(ConvoxWaitTimeoutError("too slow")) == {
        "status": "timeout",
        "message": "too slow",
    }
    auth = event_for_error(ConvoxAuthError("invalid authentication", status_code=401))
    assert auth == {"status": "error", "message": "ConvoxAuthError: 401: invalid authentication"}
    gateway = event_for_error(ConvoxGatewayError("Bad Gateway", status_code=502))
    assert gateway["status"] == "error"
    assert {e["status"] for e in (auth, gateway)} <= STATUSES


@pytest.mark.parametrize(
    ("event", "level", "message"),
    [
        (
            BuildCreated("demo", "B1", "build-x"),
            logging.INFO,
            "Build B1 of app demo started (build pod build-x)",
        ),
        (
            WaitRetrying("build B1 of app demo", "502: Bad Gateway", 1, 5),
            logging.WARNING,
            "Waiting for build B1 of app demo: transient error 1 of 5 in a row: 502: Bad Gateway",
        ),
        (
            ProcessStateChanged("demo", "web-1", "web", "running", None, "R1"),
            logging.INFO,
            "Process web-1 (web) of app demo: (none) -> running",
        ),
        (
            EnvironmentConflict("demo", 1, "R2", "R3", ("KEY",)),
            logging.INFO,
            "EnvironmentConflict: app='demo', attempt=1, release_id='R2', "
            "newest_release='R3', keys=('KEY',)",
        ),
    ],
)
def test_describe(event: object, level: int, message: str) -> None:
    assert describe(event) == (level, message)  # type: ignore[arg-type]
