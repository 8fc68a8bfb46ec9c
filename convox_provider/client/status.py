"""Status values of apps, builds and processes as typed constants with terminal-state helpers.

Models keep the rack's raw ``status`` string; these enums interpret it. ``parse`` never raises:
a value the rack may add in a later version maps to the ``UNKNOWN`` member, and the raw string
stays available on the model. Values and meanings: docs/rack-api.md §5.1 (app), §5.2 (build),
§5.5 (process).
"""

from __future__ import annotations

from enum import Enum
from typing import TypeVar, cast

__all__ = ["AppStatus", "BuildStatus", "ProcessStatus"]

_S = TypeVar("_S", bound="_Status")


class _Status(str, Enum):
    """A status enum whose members compare equal to the rack's strings and print as them."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, format_spec: str) -> str:
        return format(str(self.value), format_spec)

    @classmethod
    def parse(cls: type[_S], value: str | None) -> _S:
        """Return the member for ``value``; ``UNKNOWN`` for anything unrecognised or ``None``."""
        member = cls._value2member_map_.get(value) if isinstance(value, str) else None
        return cls("unknown") if member is None else cast("_S", member)


class AppStatus(_Status):
    """``App.status`` (docs/rack-api.md §5.1).

    ``RUNNING`` means idle, **not** that the last deploy succeeded: after a rolled-back rollout
    the app is ``running`` again with ``release`` pointing back at the previous release. Confirm
    a promote by comparing ``app.release`` with the promoted id (§7.4). ``UNKNOWN`` is also a value
    the rack itself reports.
    """

    RUNNING = "running"
    UPDATING = "updating"
    ROLLBACK = "rollback"
    DELETING = "deleting"
    UNKNOWN = "unknown"

    @property
    def is_rolling_out(self) -> bool:
        """A rollout is in flight (``updating`` or ``rollback``).

        Wait for ``RUNNING`` before promoting: in any other status the rack answers a promote
        without ``force`` with 403 ``app is currently updating`` (docs/rack-api.md §4.4).
        """
        return self is AppStatus.UPDATING or self is AppStatus.ROLLBACK


class BuildStatus(_Status):
    """``Build.status`` (docs/rack-api.md §5.2).

    ``UNKNOWN`` is not a value the rack sends; ``parse`` returns it for anything unrecognised.
    """

    CREATED = "created"
    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"
    UNKNOWN = "unknown"

    @property
    def is_active(self) -> bool:
        """``created`` or ``running``: keep waiting."""
        return self is BuildStatus.CREATED or self is BuildStatus.RUNNING

    @property
    def is_terminal(self) -> bool:
        """Waiting is over: ``complete``, ``failed``, or an unrecognised status.

        Like the CLI (docs/rack-api.md §7.1 step 7), an unrecognised status ends the wait; it is
        not a success. A build whose pod died stays ``running`` forever (§4.3): watch its
        process too.
        """
        return not self.is_active

    @property
    def is_success(self) -> bool:
        """``complete``. Source builds and imports then carry ``release``; image imports do not."""
        return self is BuildStatus.COMPLETE


class ProcessStatus(_Status):
    """``Process.status`` (docs/rack-api.md §5.5).

    Finished pods (``complete``/``failed``) are deleted by the rack about 5 s later, after which a
    GET answers 500 ``pods "…" not found``. ``UNKNOWN`` is also a value the rack itself reports
    (any other pod phase); it is not terminal.
    """

    PENDING = "pending"
    STARTING = "starting"
    RUNNING = "running"
    UNHEALTHY = "unhealthy"
    CRASHED = "crashed"
    COMPLETE = "complete"
    FAILED = "failed"
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        """The pod has finished: ``complete`` or ``failed``."""
        return self is ProcessStatus.COMPLETE or self is ProcessStatus.FAILED

    @property
    def is_success(self) -> bool:
        """The pod exited 0 (``complete``)."""
        return self is ProcessStatus.COMPLETE
