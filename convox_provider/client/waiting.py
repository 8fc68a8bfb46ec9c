"""How long and how often a wait polls: :class:`WaitOptions`, and the defaults of every wait.

One value carries a wait's options from the caller (an Airflow operator, a trigger, a user's
script) to the workflow that polls, instead of a list of keywords restated at every step. DAG
files import this module at parse time (through the operators), so it imports nothing of the
client at module level: :mod:`.errors` only when an option is refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from convox_provider.client.errors import ConvoxInputError
    from convox_provider.client.workflows.events import WorkflowEvent

__all__ = [
    "BUILD_TIMEOUT",
    "BUILD_WAIT",
    "MAX_ERRORS",
    "RAMP",
    "ROLLOUT_TIMEOUT",
    "ROLLOUT_WAIT",
    "RUN_TIMEOUT",
    "START_TIMEOUT",
    "START_WAIT",
    "WaitOptions",
    "wait_options",
]

BUILD_TIMEOUT = 60 * 60.0
"""The CLI's limit for a build wait, in seconds (docs/rack-api.md §7.9)."""

ROLLOUT_TIMEOUT = 35 * 60.0
"""The CLI's limit for a rollout wait, in seconds (docs/rack-api.md §7.9)."""

START_TIMEOUT = 5 * 60.0
"""The CLI's limit for a one-off pod to start running, in seconds (docs/rack-api.md §7.9)."""

RUN_TIMEOUT = 3600
"""Whole seconds a one-off command may run (its pod's ``sleep``), as ``convox run``'s default."""

MAX_ERRORS = 5
"""Consecutive failed polls that end a wait, in every client wait, operator and trigger.

Each failed poll was already retried by the HTTP driver (:mod:`.retry`: backoff over several
seconds), so 5 failures in a row mean the rack has been unreachable for minutes, not a blip;
fewer would end a long build or rollout over one gateway restart, more would only delay the
report of a real outage.
"""


@dataclass(frozen=True)
class WaitOptions:
    """The options of one wait, checked when made (:class:`ConvoxInputError` naming the option).

    :param timeout: seconds the wait may take in all; its deadline is fixed when it starts.
    :param poll_interval: seconds from the start of one poll to the start of the next.
    :param initial_delay: seconds before the first poll of a rollout (the app's status lags a
        promote, docs/rack-api.md §5.1); builds and processes are polled at once. A wait for the
        rollout of a known release polls sooner (``first_interval``) and takes this as the lag
        instead: until it has passed, the app read on its old release is "not yet", not a
        rollback (``workflows.waits.app_running``).
    :param max_errors: consecutive transiently failed polls that end the wait.
    :param first_interval: seconds to the first poll of a rollout onto a known release; each
        pause after it is 1.5 times the one before, up to ``poll_interval`` (the end of a short
        rollout is seen within a fraction of its length, a long one costs a few more polls).
    :param on_event: receives the workflow's progress events (:mod:`.workflows.events`).
    """

    timeout: float = ROLLOUT_TIMEOUT
    poll_interval: float = 5.0
    initial_delay: float = 5.0
    max_errors: int = MAX_ERRORS
    on_event: Callable[[WorkflowEvent], None] | None = None
    first_interval: float = 0.25

    def __post_init__(self) -> None:
        if not _seconds(self.timeout) or not self.timeout >= 0:
            raise _invalid(f"invalid timeout {self.timeout!r}: give seconds >= 0")
        if not _seconds(self.poll_interval) or not self.poll_interval > 0:
            raise _invalid(f"invalid poll_interval {self.poll_interval!r}: give seconds > 0")
        if not _seconds(self.initial_delay) or not self.initial_delay >= 0:
            raise _invalid(f"invalid initial_delay {self.initial_delay!r}: give seconds >= 0")
        limit = self.max_errors
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise _invalid(f"invalid max_errors {limit!r}: give an int >= 1")
        if not _seconds(self.first_interval) or not self.first_interval > 0:
            raise _invalid(f"invalid first_interval {self.first_interval!r}: give seconds > 0")
        if self.on_event is not None and not callable(self.on_event):
            raise _invalid(f"invalid on_event {self.on_event!r}: give a callable")


def _invalid(message: str) -> ConvoxInputError:
    from convox_provider.client.errors import ConvoxInputError  # noqa: PLC0415 - module doc

    return ConvoxInputError(message)


def _seconds(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


BUILD_WAIT = WaitOptions(timeout=BUILD_TIMEOUT, poll_interval=1.0, initial_delay=0.0)
"""The defaults of a build wait: polled every second, as the CLI does (§7.1)."""

ROLLOUT_WAIT = WaitOptions()
"""The defaults of a rollout wait: every 5 s, the first poll after 5 s (§7.9); a rollout onto a
known release is first polled after 0.25 s, then 1.5 times later each time, up to every 5 s."""

RAMP = 1.5
"""Each pause of a ramped rollout wait is this many times the one before (``first_interval``)."""

START_WAIT = WaitOptions(timeout=START_TIMEOUT, poll_interval=1.0, initial_delay=0.0)
"""The defaults of the wait for a one-off pod to run: polled every second."""


_FIELDS = tuple(field.name for field in dataclasses.fields(WaitOptions))


def wait_options(
    arguments: Mapping[str, Any], defaults: WaitOptions, *, timeout: str = "timeout"
) -> WaitOptions:
    """The wait of a public client method, from the arguments it was called with
    (its ``locals()``: the signature is the one typed declaration of them).

    That is its ``waiting`` argument when given, else its wait keywords (named as the fields of
    :class:`WaitOptions`; the wait's timeout under the name ``timeout``) over ``defaults``. A
    wait keyword whose value differs from its default alongside ``waiting`` is refused
    (:class:`ConvoxInputError` naming it): which one should win is not for the client to guess.
    """
    names = {field: timeout if field == "timeout" else field for field in _FIELDS}
    given = {field: arguments[name] for field, name in names.items() if name in arguments}
    waiting = arguments.get("waiting")
    if waiting is None:
        return dataclasses.replace(defaults, **given)
    if not isinstance(waiting, WaitOptions):
        raise _invalid(f"waiting must be a WaitOptions, not {type(waiting).__name__}")
    clash = sorted(
        names[field] for field, value in given.items() if value != getattr(defaults, field)
    )
    if clash:
        raise _invalid(
            f"give the wait's options either as waiting= or as {', '.join(clash)}, not both"
        )
    return waiting
