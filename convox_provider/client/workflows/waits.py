"""Waiting on the rack: absolute deadlines, polls that survive transient errors, app rollouts.

Every wait follows the same rules: its deadline is computed once, from the flow's clock, when it
starts; a poll that fails with a transient error (5xx other than "not found", 429, a broken or
timed-out connection) is reported as :class:`~.events.WaitRetrying` and the wait goes on, and
only ``max_errors`` consecutive failures end it. The HTTP driver has already retried each GET
(:mod:`convox_provider.client.retry`); this is the second line, for outages longer than that.
"""

from __future__ import annotations

import builtins
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from convox_provider.client.encoding import segment
from convox_provider.client.errors import (
    ConvoxConnectionError,
    ConvoxError,
    ConvoxNotImplementedError,
    ConvoxRateLimitError,
    ConvoxRollbackError,
    ConvoxServerError,
    ConvoxSupersededError,
    ConvoxWaitTimeoutError,
    ConvoxWorkflowError,
)
from convox_provider.client.models import App, Process
from convox_provider.client.operation import D, Flow, Resource, call, now, operation, sleep
from convox_provider.client.resources import apps as app_routes
from convox_provider.client.resources import processes as process_routes
from convox_provider.client.resources import releases as release_routes
from convox_provider.client.resources import services as service_routes
from convox_provider.client.status import AppStatus, ProcessStatus
from convox_provider.client.waiting import RAMP, ROLLOUT_WAIT, WaitOptions, wait_options
from convox_provider.client.workflows.diagnosis import diagnosed, release_diagnosis
from convox_provider.client.workflows.events import (
    AppStatusChanged,
    EventCallback,
    ProcessStateChanged,
    WaitRetrying,
    WorkflowEvent,
)

__all__ = [
    "AppWorkflows",
    "Deadline",
    "RolloutReading",
    "Poller",
    "app_running",
    "emit",
    "is_newer_release",
    "is_replica",
    "is_transient",
    "release_ready",
    "rollout_error",
    "rollout_onto",
    "rollout_reading",
]

T = TypeVar("T")


def emit(on_event: EventCallback | None, event: WorkflowEvent) -> None:
    """Hand ``event`` to the caller's callback, if any."""
    if on_event is not None:
        on_event(event)


def is_transient(exc: BaseException) -> bool:
    """Whether a failed poll may succeed if asked again: a connection failure or timeout, 429,
    or a 5xx other than 501 (a 500 "… not found" is a :class:`ConvoxNotFoundError`, not this)."""
    if isinstance(exc, ConvoxNotImplementedError):
        return False
    return isinstance(exc, (ConvoxConnectionError, ConvoxServerError, ConvoxRateLimitError))


@dataclass(frozen=True)
class Deadline:
    """An absolute point on the flow's monotonic clock, fixed when a wait starts."""

    at: float
    timeout: float

    @classmethod
    def start(cls, timeout: float) -> Flow[Deadline]:
        """Flow: the deadline ``timeout`` seconds from now."""
        started = yield from now()
        return cls(started + timeout, timeout)

    def remaining(self) -> Flow[float]:
        """Flow: seconds left (0 when passed)."""
        current = yield from now()
        return max(0.0, self.at - current)


@dataclass
class Poller:
    """One wait's polling: the deadline, the options, and the run of consecutive failures."""

    waiting_for: str
    deadline: Deadline
    options: WaitOptions
    failures: int = 0
    state: str = field(default="not yet seen")
    #: When the current poll started (:meth:`check`), on the flow's clock; ``None`` before.
    started: float | None = None
    #: Seconds of the next pause while it is shorter than ``poll_interval``; each default
    #: :meth:`pause` makes it :data:`~convox_provider.client.waiting.RAMP` times longer.
    ramp: float | None = None

    @property
    def interval(self) -> float:
        """Seconds from the start of one poll to the start of the next."""
        if self.ramp is not None:
            return min(self.ramp, self.options.poll_interval)
        return self.options.poll_interval

    @property
    def on_event(self) -> EventCallback | None:
        """The wait's event callback."""
        return self.options.on_event

    def fetch(self, op: Callable[[], Flow[T]]) -> Flow[T | None]:
        """Flow: run ``op``; ``None`` when it failed transiently and the wait may go on.

        The ``max_errors``-th consecutive transient failure, and any other error, is raised.
        """
        try:
            result = yield from op()
        except ConvoxError as exc:
            if not is_transient(exc):
                raise
            self.failures += 1
            limit = self.options.max_errors
            if self.failures >= limit:
                raise
            emit(self.on_event, WaitRetrying(self.waiting_for, str(exc), self.failures, limit))
            return None
        self.failures = 0
        return result

    def check(self) -> Flow[None]:
        """Flow: raise :class:`ConvoxWaitTimeoutError` once the deadline has passed; else a
        poll starts now (the default :meth:`pause` counts from here)."""
        self.started = yield from now()
        if self.started >= self.deadline.at:
            raise ConvoxWaitTimeoutError(
                f"gave up waiting for {self.waiting_for} after {self.deadline.timeout:g}s"
                f" (last seen: {self.state})"
            )

    def pause(self, seconds: float | None = None) -> Flow[None]:
        """Flow: sleep ``seconds``, never past the deadline; by default until ``interval`` after
        the last poll started, so polls start ``interval`` apart however long each took (a
        slower poll is followed at once, never sooner and with no catch-up)."""
        current = yield from now()
        left = max(0.0, self.deadline.at - current)
        if seconds is not None:
            wanted = seconds
        elif self.started is None:
            wanted = self.interval
        else:
            wanted = self.interval - (current - self.started)
        if seconds is None and self.ramp is not None:
            self.ramp *= RAMP
        if wanted > 0 and left > 0:
            yield from sleep(min(wanted, left))


class _PodWatch:
    """Reports pod status transitions seen in ``GET /apps/{app}/processes`` (advisory only)."""

    def __init__(self, resource: Resource[Any], app: str, on_event: EventCallback | None) -> None:
        self.resource = resource
        self.app = app
        self.on_event = on_event
        self.seen: dict[str, str] = {}

    def poll(self) -> Flow[None]:
        """Flow: list the pods and report changes; errors are ignored (the app status decides)."""
        try:
            found = yield from call(process_routes.list(self.app))
        except ConvoxError:
            return
        self.update(found)

    def update(self, processes: builtins.list[Process]) -> None:
        current = {p.id: p for p in processes}
        for pid, proc in current.items():
            previous = self.seen.get(pid)
            if proc.status == previous:
                continue
            if previous is not None or proc.status != "running":
                emit(
                    self.on_event,
                    ProcessStateChanged(
                        self.app, pid, proc.name, proc.status, previous, proc.release
                    ),
                )
            self.seen[pid] = proc.status
        for pid in [pid for pid in self.seen if pid not in current]:
            emit(self.on_event, ProcessStateChanged(self.app, pid, "", "gone", self.seen[pid], ""))
            del self.seen[pid]


def _observe(
    app: str,
    found: App,
    *,
    last: App | None,
    on_event: EventCallback | None,
) -> None:
    """Report a new app reading; raise when the app is being deleted."""
    if last is None or (found.status, found.release) != (last.status, last.release):
        previous = None if last is None else last.status
        emit(on_event, AppStatusChanged(app, found.status, previous, found.release))
    if found.app_status is AppStatus.DELETING:
        raise ConvoxWorkflowError(f"app {app} is being deleted")


def is_newer_release(resource: Resource[Any], app: str, release_id: str, than: str) -> Flow[bool]:
    """Flow: whether release ``release_id`` of ``app`` was created after release ``than``.

    Releases are ordered by ``created`` (docs/rack-api.md §5.3, §5.10: lists are newest first);
    a release without a creation time is taken as the older one.
    """
    if release_id == than:
        return False
    one = yield from call(release_routes.get(app, release_id))
    other = yield from call(release_routes.get(app, than))
    if one.created is None:
        return False
    return other.created is None or one.created > other.created


def rollout_error(
    resource: Resource[Any], app: str, release_id: str, found: App, *, newer: bool | None = None
) -> Flow[ConvoxWorkflowError]:
    """Flow: why the rollout of ``release_id`` did not end on it, as the error to raise.

    The app on a *newer* release means someone promoted over this rollout
    (:class:`ConvoxSupersededError`: nothing was rolled back); otherwise the app went back to
    an older release (:class:`ConvoxRollbackError`): status ``rollback``, or a ``running``
    reading on another release (Reverted and Failure both read ``running``, §5.1). A rollback's
    message ends with what the rack shows of the release's pods that did not become ready
    (:func:`~.diagnosis.release_diagnosis`: bounded, redacted, never raising).
    """
    active = found.release
    if newer is None:
        newer = bool(active) and (yield from is_newer_release(resource, app, active, release_id))
    if newer:
        return ConvoxSupersededError(
            f"release {release_id} of app {app} was superseded: release {active}, created after"
            f" it, was promoted while it rolled out (app status {found.status!r}). Nothing was"
            " rolled back; rolling back now would undo that newer deploy",
            app=app,
            release_id=release_id,
            active_release=active,
        )
    diagnosis = yield from diagnosed(release_diagnosis(resource, app, release_id), "its processes")
    if found.app_status is AppStatus.ROLLBACK:
        reason = (
            f"release {release_id} of app {app} was rolled back: its rollout failed (status"
            f" 'rollback'), and the app goes back on release {active or '(none)'}"
        )
    else:
        reason = (
            f"release {release_id} of app {app} was rolled back: the app is back on release"
            f" {active or '(none)'}"
        )
    return ConvoxRollbackError(
        f"{reason}.\n{diagnosis}",
        app=app,
        release_id=release_id,
        active_release=active,
    )


@dataclass(frozen=True)
class RolloutReading:
    """One look at the rollout of ``release_id`` (``releases.rollout_state``).

    ``state`` is :attr:`RUNNING` (the app runs the release: done), :attr:`ROLLING_OUT` (the app
    is on the release, not yet running: its rollout has started), :attr:`PENDING` (not yet on
    it: the promote may not be registered yet, status and ``release`` lag, §5.1), or one that
    will never end on the release: :attr:`OLDER` (the release is older than the active one,
    which the rack refuses to promote, §4.4) or :attr:`DELETING` (the app is being deleted);
    ``message`` then says so.
    """

    RUNNING = "running"
    ROLLING_OUT = "rolling out"
    PENDING = "pending"
    OLDER = "older"
    DELETING = "deleting"

    app: App
    release_id: str
    state: str
    message: str = ""


def rollout_reading(
    resource: Resource[Any], app: str, release_id: str, *, seen: bool
) -> Flow[RolloutReading]:
    """Flow: ``releases.rollout_state``."""
    found = yield from call(app_routes.get(app))
    status = found.app_status
    if status is AppStatus.DELETING:
        return RolloutReading(
            found, release_id, RolloutReading.DELETING, f"app {app} is being deleted"
        )
    if found.release == release_id:
        if status is AppStatus.RUNNING:
            return RolloutReading(found, release_id, RolloutReading.RUNNING)
        if status is AppStatus.ROLLBACK:
            raise (yield from rollout_error(resource, app, release_id, found, newer=False))
        return RolloutReading(found, release_id, RolloutReading.ROLLING_OUT)
    if status in (AppStatus.RUNNING, AppStatus.ROLLBACK):
        newer = bool(found.release) and (
            yield from is_newer_release(resource, app, found.release, release_id)
        )
        if newer and not seen and status is AppStatus.RUNNING:
            return RolloutReading(
                found,
                release_id,
                RolloutReading.OLDER,
                f"release {release_id} of app {app} is older than the active release"
                f" {found.release}: the rack cannot promote it, so it will never be running",
            )
        if newer or status is AppStatus.ROLLBACK or seen:
            raise (yield from rollout_error(resource, app, release_id, found, newer=newer))
    return RolloutReading(found, release_id, RolloutReading.PENDING)


class _AppReadings:
    """One wait's polls of ``GET /apps/{app}`` (and of its pods, with ``watch_processes``):
    each reading reported (:func:`_observe`) and kept as ``last``."""

    def __init__(
        self, resource: Resource[Any], app: str, poller: Poller, *, watch_processes: bool
    ) -> None:
        self.app = app
        self.poller = poller
        self.pods = _PodWatch(resource, app, poller.on_event) if watch_processes else None
        self.last: App | None = None

    def read(self) -> Flow[App | None]:
        """Flow: one poll (raising at the deadline); the app, or None after a transient error."""
        poller, app = self.poller, self.app
        yield from poller.check()
        found = yield from poller.fetch(lambda: call(app_routes.get(app)))
        if self.pods is not None:
            yield from self.pods.poll()
        if found is not None:
            _observe(app, found, last=self.last, on_event=poller.on_event)
            self.last = found
            poller.state = f"status {found.status!r}, release {found.release!r}"
        return found


def app_running(
    resource: Resource[Any],
    app: str,
    deadline: Deadline,
    options: WaitOptions,
    *,
    release_id: str | None = None,
    watch_processes: bool = False,
    fail_on_rollback: bool = True,
) -> Flow[App]:
    """Flow: the CLI's WaitForAppRunning (docs/rack-api.md §7.9) against an existing deadline.

    Without ``release_id``: the first poll after ``initial_delay``, then every
    ``poll_interval``, done at ``running`` twice in a row; ``fail_on_rollback=False`` waits
    through someone else's rollback (the pre-wait of a promote), otherwise ``rollback`` raises
    at once. With ``release_id``, :func:`rollout_onto` (fast polls, the same guarantee).
    """
    if release_id is not None:
        return (
            yield from rollout_onto(
                resource, app, release_id, deadline, options, watch_processes=watch_processes
            )
        )
    poller = Poller(f"app {app} to be running", deadline, options)
    readings = _AppReadings(resource, app, poller, watch_processes=watch_processes)
    yield from poller.pause(options.initial_delay)
    streak = 0
    while True:
        found = yield from readings.read()
        if found is not None:
            if found.app_status is AppStatus.ROLLBACK and fail_on_rollback:
                raise ConvoxRollbackError(
                    f"the rollout on app {app} failed and is being rolled back (status"
                    " 'rollback'); the app returns to its previous release. The app's logs"
                    " (system/k8s lines) tell why",
                    app=app,
                    release_id=found.release,
                    active_release=found.release,
                )
            streak = streak + 1 if found.app_status is AppStatus.RUNNING else 0
            if streak >= 2:
                return found
        yield from poller.pause()


def is_replica(pod: Process) -> bool:
    """Whether ``pod`` is a service replica, not a one-off process of the service: a replica is
    named ``<service>-<template hash>-<suffix>``, a one-off ``<service>-<suffix>``
    (docs/rack-api.md §5.11). A one-off sleeping on the new release (a migration before the
    promote) must not count as a ready replica."""
    rest = pod.id.removeprefix(f"{pod.name}-")
    return rest != pod.id and "-" in rest


def release_ready(resource: Resource[Any], app: str, release_id: str) -> Flow[bool]:
    """Flow: whether the pods of ``release_id`` are all there and ready: for every service of
    the app with a count, at least that many of its pods of the release read ``running``
    (docs/rack-api.md §5.5, §5.11). False when the app has no such service
    (no evidence either way) or when either listing fails (the caller's other rule decides)."""
    try:
        services = yield from call(service_routes.list(app))
        pods = yield from call(process_routes.list(app, release=release_id))
    except ConvoxError:
        return False
    wanted = {service.name: service.count for service in services if service.count > 0}
    ready = Counter(
        pod.name
        for pod in pods
        if pod.release == release_id
        and pod.process_status is ProcessStatus.RUNNING
        and is_replica(pod)
    )
    return bool(wanted) and all(ready[name] >= count for name, count in wanted.items())


def rollout_onto(
    resource: Resource[Any],
    app: str,
    release_id: str,
    deadline: Deadline,
    options: WaitOptions,
    *,
    watch_processes: bool = False,
) -> Flow[App]:
    """Flow: wait until the rollout of ``release_id`` is done; the last reading of the app.

    Polls after ``first_interval`` seconds, then 1.5 times later each time up to
    ``poll_interval`` (:data:`~convox_provider.client.waiting.RAMP`). Right after a promote the
    app can still read its old status and release (the lag, docs/rack-api.md §5.1), for which
    ``initial_delay`` is allowed. Success is a reading of ``running`` on ``release_id`` that is
    not that lag, confirmed (§5.11) by either

    * the release's pods: every service runs its full count of ``running`` (ready) pods of the
      release (:func:`release_ready`), the reading being past the lag: taken after the rollout
      was seen (the app on ``release_id`` and not ``running``) or after ``initial_delay``; or
    * the CLI's rule: ``running`` on ``release_id`` at two polls in a row, the first past the
      lag in the same sense (an app without services, or with pods that never all read ready).

    A rolled-back rollout never reaches either: its pods never all become ready (that is why it
    rolls back), and the app reads ``rollback`` and then its old release (§5.1), which raises
    :func:`rollout_error` at once: :class:`ConvoxRollbackError`, or :class:`ConvoxSupersededError`
    when the app went on to a newer release. The app on another release and ``running`` within
    ``initial_delay`` of the start, before the rollout was seen, is the lag and is polled again.
    """
    poller = Poller(f"app {app} to be running", deadline, options, ramp=options.first_interval)
    readings = _AppReadings(resource, app, poller, watch_processes=watch_processes)
    lag_ends = (yield from now()) + options.initial_delay
    yield from poller.pause(min(options.first_interval, options.initial_delay))
    seen = False
    streak = 0
    while True:
        found = yield from readings.read()
        if found is not None:
            status = found.app_status
            past_lag = seen or (poller.started is not None and poller.started >= lag_ends)
            if status is AppStatus.ROLLBACK or (
                found.release != release_id and status is AppStatus.RUNNING and past_lag
            ):
                raise (yield from rollout_error(resource, app, release_id, found))
            if found.release == release_id and status is not AppStatus.RUNNING:
                seen = True
            ours = found.release == release_id and status is AppStatus.RUNNING and past_lag
            streak = streak + 1 if ours else 0
            if streak >= 2 or (ours and (yield from release_ready(resource, app, release_id))):
                return found
        yield from poller.pause()


class AppWorkflows(Resource[D]):
    """Workflows of ``client.apps``."""

    @operation
    def cancel_rollout(self, app: str, release_id: str) -> Flow[bool]:
        """Cancel the rollout of ``release_id`` if it is the one in progress; whether it was.

        ``POST /apps/{app}/cancel`` is sent only when the app reads ``updating`` on that
        release: the rack refuses to cancel a settled app (403), and another release's rollout
        is not this caller's to stop. A cancelled rollout rolls back to the previous release
        (docs/rack-api.md §4.1).
        """
        segment(app, kind="app name")
        segment(release_id, kind="release id")
        return _cancel_rollout(app, release_id)

    @operation
    def wait_for_app_running(
        self,
        app: str,
        *,
        release_id: str | None = None,
        initial_delay: float = ROLLOUT_WAIT.initial_delay,
        poll_interval: float = ROLLOUT_WAIT.poll_interval,
        timeout: float = ROLLOUT_WAIT.timeout,
        max_errors: int = ROLLOUT_WAIT.max_errors,
        watch_processes: bool = False,
        on_event: EventCallback | None = None,
        waiting: WaitOptions | None = None,
    ) -> Flow[App]:
        """Wait until the app is ``running`` (on ``release_id`` when given); the last reading.

        Without ``release_id``, like the CLI's WaitForAppRunning (§7.9): the first check after
        ``initial_delay`` seconds (the rack's status annotation lags a promote,
        docs/rack-api.md §5.1), then every ``poll_interval`` seconds, done at ``running`` twice
        in a row. With ``release_id``, the rollout of that release (§5.11): polled after 0.25 s
        (``WaitOptions.first_interval``), each pause 1.5 times longer up to ``poll_interval``,
        done at ``running`` on it confirmed by its ready pods or by the next reading; the app on
        another release raises once ``initial_delay`` has passed or the rollout was seen (a
        rollback that finished between polls reads as ``running``; so keep ``initial_delay`` at
        a few seconds on a real rack). ``rollback`` raises :class:`ConvoxRollbackError` at
        once. ``timeout`` (seconds) is absolute:
        :class:`ConvoxWaitTimeoutError` when it passes. Transient errors are tolerated up to
        ``max_errors`` consecutive failed polls. ``watch_processes`` also lists the app's pods
        on each poll and reports their status changes as events. ``waiting`` gives the five
        wait options as one :class:`~convox_provider.client.waiting.WaitOptions` instead.
        """
        options = wait_options(locals(), ROLLOUT_WAIT)
        segment(app, kind="app name")
        return _wait_for_app_running(
            self, app, options, release_id=release_id, watch_processes=watch_processes
        )


def _cancel_rollout(app: str, release_id: str) -> Flow[bool]:
    found = yield from call(app_routes.get(app))
    if found.app_status is not AppStatus.UPDATING or found.release != release_id:
        return False
    yield from call(app_routes.cancel(app))
    return True


def _wait_for_app_running(
    resource: Resource[Any], app: str, options: WaitOptions, **how: Any
) -> Flow[App]:
    deadline = yield from Deadline.start(options.timeout)
    return (yield from app_running(resource, app, deadline, options, **how))
