"""Watching a rack for what someone else does: new active releases, an app settling, a process
ending.

Three decisions, each written once and used by a one-look reading (what a sensor's poke calls)
and by a polling wait over the same reading (what a trigger calls):

* :func:`new_active_release`: the release an app *settled on* (``running`` twice in a row on it,
  as the CLI's WaitForAppRunning, docs/rack-api.md §7.9) that is newer, by ``created``, than a
  cursor release (§5.3, §5.10). Whoever made it: a promote, a rollback, an env change, the CLI
  or the console all end with ``app.release`` switched to a new release (§5.1). A rollout that
  was rolled back ends on the release before it, which is not newer than the cursor, so it is
  never reported.
* :func:`app_reading`: the app idle (``running``), optionally on a given release.
* :func:`process_reading`: a pod in a given status, or finished (docs/rack-api.md §4.6, §5.5).

What the rack offers a watcher, and does not (no history of active releases; a finished pod's
outcome kept ~5 s): docs/rack-api.md §7.10.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

from convox_provider.client.encoding import segment
from convox_provider.client.errors import ConvoxInputError, ConvoxNotFoundError
from convox_provider.client.models import App, Process, Release
from convox_provider.client.operation import D, Flow, Resource, call, operation
from convox_provider.client.resources import apps as app_routes
from convox_provider.client.resources import processes as process_routes
from convox_provider.client.resources import releases as release_routes
from convox_provider.client.status import AppStatus, ProcessStatus
from convox_provider.client.waiting import START_WAIT, WaitOptions, wait_options
from convox_provider.client.workflows.waits import Deadline, Poller

__all__ = [
    "BEFORE_FIRST_RELEASE",
    "WATCH_WAIT",
    "AppReading",
    "AppWatch",
    "ProcessReading",
    "ProcessWatch",
    "ReleaseWatch",
    "app_reading",
    "created_after",
    "new_active_release",
    "process_reading",
    "process_statuses",
]

T = TypeVar("T")

WATCH_WAIT = WaitOptions(timeout=3600.0, poll_interval=5.0, initial_delay=0.0)
"""The defaults of a release watch: a poll every 5 s, at most an hour per call (a watcher calls
again)."""

PROCESS_WAIT = WaitOptions(timeout=START_WAIT.timeout, poll_interval=2.0, initial_delay=0.0)
"""The defaults of a process wait: a poll every 2 s, so that a finished pod is seen in the ~5 s
the rack keeps it (§4.6)."""


# --- new active releases ------------------------------------------------------------------------

BEFORE_FIRST_RELEASE = ""
"""The cursor of a watch that began before the app had a release (it did not exist yet, or had
just been created): every release the app settles on is new, its first one included."""


def created_after(one: Release, other: Release) -> bool:
    """Whether release ``one`` was created after release ``other`` (releases are ordered by
    ``created``, §5.3, §5.10); a release without a creation time is taken as the older one, as
    ``releases.is_newer`` does."""
    if one.id == other.id or one.created is None:
        return False
    return other.created is None or one.created > other.created


def new_active_release(
    resource: Resource[Any], app: str, since: str | None, poller: Poller
) -> Flow[Release]:
    """Flow: :meth:`ReleaseWatch.wait_for_new_release`, polled by ``poller``."""
    verdicts: dict[str, bool] = {}  # release id -> newer than the cursor
    previous: str | None = None
    cursor: Release | None = None
    while True:
        yield from poller.check()
        found = yield from _app_if_made(poller, app, since)
        if found is not None:
            poller.state = f"status {found.status!r}, release {found.release or '(none)'}"
            candidate = _settled_candidate(found, since)
            settled = candidate is not None and candidate == previous
            previous = candidate
            if settled and candidate is not None and verdicts.get(candidate, True):
                if since == BEFORE_FIRST_RELEASE:
                    cursor = _MISSING
                elif since is not None and cursor is None:
                    cursor = yield from _find_release(poller, app, since)
                release = yield from poller.fetch(functools.partial(_get_release, app, candidate))
                if release is not None and (since is None or cursor is not None):
                    verdicts[candidate] = _newer_than(release, cursor)
                    if verdicts[candidate]:
                        return release
        yield from poller.pause()


_MISSING = Release(id="", created=None)
"""Stands for a cursor release the rack no longer has (an app deleted and created again)."""


def _app_if_made(poller: Poller, app: str, since: str | None) -> Flow[App | None]:
    """Flow: the app; None after a transient failure, or while an app watched from before its
    first release does not exist yet (for any other watch its absence is raised)."""
    try:
        return (yield from poller.fetch(lambda: call(app_routes.get(app))))
    except ConvoxNotFoundError:
        if since != BEFORE_FIRST_RELEASE:
            raise
        poller.state = "the app does not exist yet"
        return None


def _get_release(app: str, release_id: str) -> Flow[Release]:
    return call(release_routes.get(app, release_id))


def _settled_candidate(found: App, since: str | None) -> str | None:
    """The release ``found`` runs idle when it is not the cursor (else None)."""
    if found.app_status is not AppStatus.RUNNING or not found.release:
        return None
    return None if found.release == since else found.release


def _find_release(poller: Poller, app: str, release_id: str) -> Flow[Release | None]:
    """Flow: the release, :data:`_MISSING` when the rack has none by that id, None after a
    transient failure."""
    try:
        return (yield from poller.fetch(lambda: call(release_routes.get(app, release_id))))
    except ConvoxNotFoundError:
        return _MISSING


def _newer_than(release: Release, since: Release | None) -> bool:
    """Whether ``release`` comes after the cursor release (any release after a missing one)."""
    if since is None or since is _MISSING:
        return True
    return created_after(release, since)


class ReleaseWatch(Resource[D]):
    """The release watch of ``client.releases``."""

    @operation
    def watch_origin(self, app: str) -> Flow[str | None]:
        """One look at where a new watch of ``app`` (one with no cursor yet) starts:
        :data:`BEFORE_FIRST_RELEASE` when the app does not exist yet (404) or has no release
        (just created, §5.1), so that its first release is reported; None when it has one,
        so that the release it settles on is the starting point and not reported
        (``wait_for_new_release(since=None)``). Other errors are raised."""
        _check_ids(app)
        try:
            found = yield from call(app_routes.get(app))
        except ConvoxNotFoundError:
            return BEFORE_FIRST_RELEASE
        return None if found.release else BEFORE_FIRST_RELEASE

    @operation
    def wait_for_new_release(
        self, app: str, *, since: str | None, waiting: WaitOptions = WATCH_WAIT
    ) -> Flow[Release]:
        """Wait until ``app`` has settled on a release newer than release ``since``; return it.

        Settled: the app reads ``running`` on that release twice in a row (a promote is only
        registered after a moment, and a rollout that fails goes back to the release before it,
        §5.1, §7.9). Newer: created after ``since`` (§5.3; releases are ordered by
        ``created``, §5.10); a ``since`` the rack no longer has makes any settled release new.
        With ``since=None`` the first release the app settles on is returned: what a watcher
        records as its starting point. With ``since=``:data:`BEFORE_FIRST_RELEASE` (what
        :meth:`watch_origin` answers for an app with no release yet) every settled release is
        new, and an app that does not exist yet is waited for; any other watch raises its
        absence (:class:`~convox_provider.client.errors.ConvoxNotFoundError`). Who made the
        release does not matter (promote, rollback, env change, CLI, console): this reads the
        app, never a release list, so a
        release that was created but never promoted is not reported. Several deploys between
        two polls are seen as the last one (§7.10). ``waiting`` (a
        :class:`~convox_provider.client.waiting.WaitOptions`, default :data:`WATCH_WAIT`): as
        in every wait, transient errors are tolerated up to ``max_errors`` polls in a row, and
        its ``timeout`` raises :class:`~convox_provider.client.errors.ConvoxWaitTimeoutError`
        (a watcher calls again).
        """
        options = wait_options({"waiting": waiting}, WATCH_WAIT)
        _check_ids(app, release_id=since or None)
        return _polled(
            options,
            f"a new active release of app {app}",
            lambda poller: new_active_release(self, app, since, poller),
        )


def _check_ids(app: str, *, release_id: str | None = None, pid: str | None = None) -> None:
    """Refuse, before any request, ids that are not one path segment."""
    segment(app, kind="app name")
    if release_id is not None:
        segment(release_id, kind="release id")
    if pid is not None:
        segment(pid, kind="process id")


def _polled(options: WaitOptions, waiting_for: str, run: Callable[[Poller], Flow[T]]) -> Flow[T]:
    """Flow: ``run`` with a poller whose deadline starts now, after ``initial_delay``."""
    deadline = yield from Deadline.start(options.timeout)
    poller = Poller(waiting_for, deadline, options)
    yield from poller.pause(options.initial_delay)
    return (yield from run(poller))


# --- the app idle ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AppReading:
    """One look at an app waited on to be idle (``apps.app_state``).

    ``state`` is :attr:`RUNNING` (done: the app is ``running``, on ``release_id`` when one was
    asked for), :attr:`WAITING` (a rollout or a rollback is under way, the app has no release
    yet, or it runs another release that may still be replaced) or :attr:`NEVER` (it cannot
    happen: the app is being deleted, or it runs a release newer than the one asked for, which
    the rack will never promote over it, §4.4); ``message`` then says why.
    """

    RUNNING = "running"
    WAITING = "waiting"
    NEVER = "never"

    app: App
    release_id: str | None
    state: str
    message: str = ""


def app_reading(resource: Resource[Any], app: str, release_id: str | None) -> Flow[AppReading]:
    """Flow: ``apps.app_state``."""
    found = yield from call(app_routes.get(app))
    return (yield from _app_verdict(resource, app, release_id, found))


def _app_verdict(
    resource: Resource[Any], app: str, release_id: str | None, found: App
) -> Flow[AppReading]:
    status = found.app_status
    if status is AppStatus.DELETING:
        message = f"app {app} is being deleted, so it will never be running again"
        return AppReading(found, release_id, AppReading.NEVER, message)
    if status is not AppStatus.RUNNING or not found.release:  # no release yet: nothing runs
        return AppReading(found, release_id, AppReading.WAITING)
    if release_id is None or found.release == release_id:
        return AppReading(found, release_id, AppReading.RUNNING)
    active = yield from call(release_routes.get(app, found.release))
    wanted = yield from call(release_routes.get(app, release_id))
    if created_after(active, wanted):
        message = (
            f"app {app} runs release {found.release}, created after release {release_id}:"
            " the rack never promotes an older release over a newer one, so the app will"
            " not run it (roll back to it instead)"
        )
        return AppReading(found, release_id, AppReading.NEVER, message)
    return AppReading(found, release_id, AppReading.WAITING)


def _until(
    poller: Poller,
    look: Callable[[], Flow[T]],
    needed: Callable[[T], int],
    describe: Callable[[T], str],
) -> Flow[T]:
    """Flow: poll ``look`` until a reading is done; return it. ``needed(reading)`` is 0 for
    "not yet", else how many such readings in a row end the wait (the same number each time)."""
    streak = 0
    while True:
        yield from poller.check()
        reading = yield from poller.fetch(look)
        if reading is not None:
            poller.state = describe(reading)
            wanted = needed(reading)
            streak = streak + 1 if wanted else 0
            if wanted and streak >= wanted:
                return reading
        yield from poller.pause()


class AppWatch(Resource[D]):
    """The idle-app reading and wait of ``client.apps``."""

    @operation
    def app_state(self, app: str, *, release_id: str | None = None) -> Flow[AppReading]:
        """One look at whether ``app`` is idle (``running``), on ``release_id`` if given; see
        :class:`AppReading`. Unlike ``releases.rollout_state`` this is about the app, not about
        one rollout: a rollback, or the app running another release, is "not yet"; only what
        can never end in the state asked for (the app being deleted, or running a release
        newer than ``release_id``) is :attr:`AppReading.NEVER`."""
        _check_ids(app, release_id=release_id)
        return app_reading(self, app, release_id)

    @operation
    def wait_until_idle(
        self, app: str, *, release_id: str | None = None, waiting: WaitOptions = WATCH_WAIT
    ) -> Flow[AppReading]:
        """Poll :meth:`app_state` until it reads :attr:`~AppReading.RUNNING` twice in a row (the
        status lags a promote, §5.1) or :attr:`~AppReading.NEVER` once; return that reading.
        ``waiting`` as for ``releases.wait_for_new_release``."""
        options = wait_options({"waiting": waiting}, WATCH_WAIT)
        _check_ids(app, release_id=release_id)
        needed = {AppReading.WAITING: 0, AppReading.NEVER: 1, AppReading.RUNNING: 2}
        return _polled(
            options,
            f"app {app} to be running",
            lambda poller: _until(
                poller,
                lambda: app_reading(self, app, release_id),
                lambda reading: needed[reading.state],
                lambda reading: f"status {reading.app.status!r}, release {reading.app.release!r}",
            ),
        )


# --- a process -----------------------------------------------------------------------------------

_KNOWN = frozenset(str(s) for s in ProcessStatus if s is not ProcessStatus.UNKNOWN)


Statuses: TypeAlias = "str | Iterable[str] | None"
"""The ``statuses`` of a process wait: one, several, or None (the process ending)."""


def process_statuses(statuses: Statuses) -> frozenset[str] | None:
    """The statuses a process wait waits for, checked (None: waits for the process to end)."""
    if statuses is None:
        return None
    given = [statuses] if isinstance(statuses, str) else list(statuses)
    unknown = sorted({str(s) for s in given} - _KNOWN) if given else ["(none)"]
    if unknown or not all(isinstance(s, str) for s in given):
        raise ConvoxInputError(
            f"invalid process status {', '.join(map(repr, unknown))}: give one or more of"
            f" {', '.join(sorted(_KNOWN))} (docs/rack-api.md §5.5), or none to wait for the"
            " process to end"
        )
    return frozenset(given)


@dataclass(frozen=True)
class ProcessReading:
    """One look at a process (``processes.process_state``).

    ``state`` is :attr:`DONE` (in a status waited for; or, waiting for the end, ``complete``,
    or an outcome accepted: ``failed``, ``gone``), :attr:`WAITING`, or :attr:`FAILED` with
    ``message``: it ended with a non-zero status, ended before reaching a status waited for,
    or is gone.
    ``status`` is the rack's, or ``"gone"`` once the rack no longer has the pod. ``exit_code``
    is 0 for ``complete``; the rack reports no exit code for a ``failed`` pod (non-zero exit,
    eviction…), nor for one that is gone, so it is None then (§4.6, §5.5).
    """

    DONE = "done"
    WAITING = "waiting"
    FAILED = "failed"
    GONE = "gone"

    app: str
    process_id: str
    status: str
    state: str
    exit_code: int | None = None
    message: str = ""
    release: str = ""


def process_reading(
    app: str, pid: str, statuses: frozenset[str] | None, accept: frozenset[str] = frozenset()
) -> Flow[ProcessReading]:
    """Flow: ``processes.process_state``."""
    try:
        pod: Process | None = yield from call(process_routes.get(app, pid))
    except ConvoxNotFoundError as exc:
        if exc.status_code != 500:  # 404 "app not found": not about the pod (§3.3)
            raise
        pod = None  # 500 pods "…" not found: the rack deleted it (§4.6)
    if pod is None:
        yield from call(app_routes.get(app))  # an app that does not exist raises (404)
    return _process_verdict(app, pid, pod, statuses, accept)


def _process_verdict(
    app: str, pid: str, pod: Process | None, statuses: frozenset[str] | None, accept: frozenset[str]
) -> ProcessReading:
    name = f"process {pid} of app {app}"
    if pod is None:
        gone = ProcessReading.GONE
        if "gone" in accept and statuses is None:
            return ProcessReading(app, pid, gone, ProcessReading.DONE)
        return ProcessReading(
            app,
            pid,
            gone,
            ProcessReading.FAILED,
            message=(
                f"{name} is gone: the rack deletes a pod about 5 s after it ends, so it ended"
                " (or was stopped) between two looks and its exit status is unknown, unless"
                " there never was such a process. Poll more often than every 5 s to see it end"
                + ("" if statuses is None else f" (it was waited on to be {_either(statuses)})")
            ),
        )
    status = pod.process_status
    code = 0 if status is ProcessStatus.COMPLETE else None
    reading = ProcessReading(app, pid, pod.status, ProcessReading.DONE, code, "", pod.release)
    if statuses is not None:
        if pod.status in statuses:
            return reading
        if not status.is_terminal:
            return _replace_state(reading, ProcessReading.WAITING)
        return _replace_state(
            reading,
            ProcessReading.FAILED,
            f"{name} ended ({pod.status}) before it was {_either(statuses)}",
        )
    if not status.is_terminal:
        return _replace_state(reading, ProcessReading.WAITING)
    if status.is_success or "failed" in accept:
        return reading
    return _replace_state(
        reading,
        ProcessReading.FAILED,
        f"{name} failed: it exited with a non-zero status or was evicted (the rack reports"
        " 'failed', not the exit code); its logs tell why (client.processes.logs, while the"
        " rack keeps it)",
    )


def _either(statuses: frozenset[str]) -> str:
    return " or ".join(sorted(statuses))


def _replace_state(reading: ProcessReading, state: str, message: str = "") -> ProcessReading:
    return ProcessReading(
        reading.app,
        reading.process_id,
        reading.status,
        state,
        reading.exit_code,
        message,
        reading.release,
    )


class ProcessWatch(Resource[D]):
    """The process reading and wait of ``client.processes``."""

    @operation
    def process_state(
        self, app: str, pid: str, *, statuses: Statuses = None, accept: Iterable[str] = ()
    ) -> Flow[ProcessReading]:
        """One look at process ``pid``, waited on to be in one of ``statuses`` (e.g.
        ``"running"``) or, without them, to end; see :class:`ProcessReading`.

        Waiting for the end, ``failed`` is :attr:`~ProcessReading.FAILED` unless ``accept``
        holds ``"failed"``, and a pod the rack no longer has (it deletes finished pods ~5 s
        after they end, §4.6, §7.10) is :attr:`~ProcessReading.FAILED` unless ``accept`` holds
        ``"gone"``: its exit status is unknown then. Waiting for statuses, a pod that ended or
        is gone first is :attr:`~ProcessReading.FAILED`.
        """
        wanted, accepted = process_statuses(statuses), _accepted(accept)
        _check_ids(app, pid=pid)
        return process_reading(app, pid, wanted, accepted)

    @operation
    def wait_for_process(
        self,
        app: str,
        pid: str,
        *,
        statuses: Statuses = None,
        accept: Iterable[str] = (),
        waiting: WaitOptions = PROCESS_WAIT,
    ) -> Flow[ProcessReading]:
        """Poll :meth:`process_state` until it is not :attr:`~ProcessReading.WAITING`; return
        that reading (:attr:`~ProcessReading.DONE` or :attr:`~ProcessReading.FAILED`, never
        raised). ``waiting`` as for ``releases.wait_for_new_release`` (default
        :data:`PROCESS_WAIT`): keep its ``poll_interval`` under 5 s to see a pod end before the
        rack deletes it."""
        options = wait_options({"waiting": waiting}, PROCESS_WAIT)
        wanted, accepted = process_statuses(statuses), _accepted(accept)
        _check_ids(app, pid=pid)
        return _polled(
            options,
            f"process {pid} of app {app}",
            lambda poller: _until(
                poller,
                lambda: process_reading(app, pid, wanted, accepted),
                lambda reading: 0 if reading.state == ProcessReading.WAITING else 1,
                lambda reading: f"status {reading.status!r}",
            ),
        )


_OUTCOMES = frozenset({"failed", "gone"})


def _accepted(accept: Iterable[str]) -> frozenset[str]:
    """The outcomes a process wait takes as done besides ``complete``, checked."""
    given = frozenset([accept] if isinstance(accept, str) else accept)
    if not given <= _OUTCOMES:
        unknown = ", ".join(sorted(map(repr, given - _OUTCOMES)))
        raise ConvoxInputError(
            f"invalid accept {unknown}: a process wait accepts 'failed' (a non-zero exit) and"
            " 'gone' (a pod the rack deleted) as done, or neither"
        )
    return given
