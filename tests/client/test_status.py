"""Status enums: the rack's values (docs/rack-api.md §5.1, §5.2, §5.5), parsing, helpers."""

from __future__ import annotations

import pytest

from convox_provider.client.status import AppStatus, BuildStatus, ProcessStatus


@pytest.mark.parametrize(
    ("enum", "values"),
    [
        (AppStatus, {"running", "updating", "rollback", "deleting", "unknown"}),
        (BuildStatus, {"created", "running", "complete", "failed", "unknown"}),
        (
            ProcessStatus,
            {
                "pending",
                "starting",
                "running",
                "unhealthy",
                "crashed",
                "complete",
                "failed",
                "unknown",
            },
        ),
    ],
)
def test_members_are_exactly_the_rack_values(enum: type[AppStatus], values: set[str]) -> None:
    assert {member.value for member in enum} == values
    for value in values:
        assert enum.parse(value) is enum(value)
        assert enum.parse(value) == value


@pytest.mark.parametrize("enum", [AppStatus, BuildStatus, ProcessStatus])
@pytest.mark.parametrize("raw", ["weird", "", "Running", " running", None])
def test_parse_never_raises_and_maps_anything_else_to_unknown(
    enum: type[AppStatus], raw: str | None
) -> None:
    assert enum.parse(raw) is enum("unknown")


def test_members_print_as_the_rack_string() -> None:
    assert str(BuildStatus.COMPLETE) == "complete"
    assert f"{AppStatus.ROLLBACK}" == "rollback"
    assert f"{ProcessStatus.RUNNING:>8}" == " running"
    as_str: str = BuildStatus.FAILED
    assert as_str == "failed"


@pytest.mark.parametrize(
    ("status", "active", "terminal", "success"),
    [
        (BuildStatus.CREATED, True, False, False),
        (BuildStatus.RUNNING, True, False, False),
        (BuildStatus.COMPLETE, False, True, True),
        (BuildStatus.FAILED, False, True, False),
        # like the CLI, an unexpected status ends the wait without success (§7.1 step 7)
        (BuildStatus.UNKNOWN, False, True, False),
    ],
)
def test_build_status_helpers(
    status: BuildStatus, active: bool, terminal: bool, success: bool
) -> None:
    assert status.is_active is active
    assert status.is_terminal is terminal
    assert status.is_success is success


@pytest.mark.parametrize(
    ("status", "terminal", "success"),
    [
        (ProcessStatus.PENDING, False, False),
        (ProcessStatus.STARTING, False, False),
        (ProcessStatus.RUNNING, False, False),
        (ProcessStatus.UNHEALTHY, False, False),
        (ProcessStatus.CRASHED, False, False),
        (ProcessStatus.COMPLETE, True, True),
        (ProcessStatus.FAILED, True, False),
        (ProcessStatus.UNKNOWN, False, False),
    ],
)
def test_process_status_helpers(status: ProcessStatus, terminal: bool, success: bool) -> None:
    assert status.is_terminal is terminal
    assert status.is_success is success


@pytest.mark.parametrize(
    ("status", "rolling_out"),
    [
        (AppStatus.RUNNING, False),
        (AppStatus.UPDATING, True),
        (AppStatus.ROLLBACK, True),
        (AppStatus.DELETING, False),
        (AppStatus.UNKNOWN, False),
    ],
)
def test_app_status_rolling_out(status: AppStatus, rolling_out: bool) -> None:
    assert status.is_rolling_out is rolling_out
