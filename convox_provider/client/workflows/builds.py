"""Builds from a directory or an uploaded object, followed and waited on (docs/rack-api.md §7.1).

The CLI's sequence: upload the source tarball through the objects API, create the build from the
returned ``object://`` URL, copy the build-log stream to the output, poll the build every second
until it ends, then re-open the log (now served from the stored log object) and pass on only what
the first stream had not delivered. The poll is authoritative: a log stream that breaks is
reported as an event and the wait goes on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from convox_provider.client.archive import ArchiveEvent, SourceArchive, upload
from convox_provider.client.encoding import object_key, segment
from convox_provider.client.errors import (
    ConvoxBuildFailedError,
    ConvoxError,
    ConvoxNotFoundError,
    ConvoxStreamError,
    ConvoxWorkflowError,
)
from convox_provider.client.models import Build
from convox_provider.client.operation import Call, D, Flow, Resource, call, now, operation, stream
from convox_provider.client.resources import apps as app_routes
from convox_provider.client.resources import builds as build_routes
from convox_provider.client.resources import processes as process_routes
from convox_provider.client.resources import streams as stream_routes
from convox_provider.client.status import BuildStatus, ProcessStatus
from convox_provider.client.waiting import BUILD_WAIT, WaitOptions, wait_options
from convox_provider.client.workflows.diagnosis import build_pod_diagnosis, diagnosed
from convox_provider.client.workflows.events import (
    BuildCreated,
    BuildLogProgress,
    BuildStatusChanged,
    EventCallback,
    PreviousBuildChecked,
    SourceUploaded,
    StreamInterrupted,
)
from convox_provider.client.workflows.waits import Deadline, Poller, emit, is_transient

__all__ = [
    "LOST_POD_GRACE",
    "MARKER_SEARCH",
    "BuildWorkflows",
    "follow_build",
    "resumable_build",
]

LOST_POD_GRACE = 60.0
"""Seconds a build may still read ``running`` after its pod was seen gone or finished."""

LOG_PAUSE_IDLE = 15.0
"""Seconds a followed build log may stay silent before the build is polled (then the log is
opened again): a build whose pod died keeps a silent log stream open on some racks."""

LOG_PAUSE_AFTER = 300.0
"""Seconds a followed build log may stay open in all before the build is polled: a bound on
how long the stream alone stands for the build's state, at the cost of one re-read."""

_POD_CHECK_INTERVAL = 5.0
_TAIL_BYTES = 16 * 1024
_TAIL_LINES = 30

OutputCallback = Callable[[bytes], None]


class _BuildLog:
    """A build's log as delivered so far: a byte count (for the catch-up read) and a tail."""

    def __init__(
        self, resource: Resource[Any], app: str, build_id: str, on_output: OutputCallback | None
    ) -> None:
        self.resource = resource
        self.app = app
        self.build_id = build_id
        self.on_output = on_output
        self.delivered = 0
        self.tail = bytearray()
        self.error: str | None = None

    def read(
        self,
        on_event: EventCallback | None,
        *,
        timeout: float | None = None,
        pause: bool = False,
    ) -> Flow[bool]:
        """Flow: stream the log, passing on only the bytes beyond those already delivered;
        False when ``pause`` handed the stream back still open (see :data:`LOG_PAUSE_IDLE`).

        A stream that breaks, or ends with an ``ERROR:`` frame, is reported, not raised: the
        build status decides. A failed build's stored log ends with ``ERROR: <reason>``, which
        cannot be told from the server's error frame (§6.5); it is kept for the failure report.
        ``timeout`` bounds a live stream (the build's own deadline): past it the wait fails.
        """
        skip, seen = self.delivered, 0
        ended = True

        def on_data(chunk: bytes) -> None:
            nonlocal seen
            start, seen = max(0, skip - seen), seen + len(chunk)
            if start < len(chunk):
                self._deliver(chunk[start:] if start else chunk)

        pauses: dict[str, float] = (
            {"pause_after": LOG_PAUSE_AFTER, "pause_idle": LOG_PAUSE_IDLE} if pause else {}
        )
        try:
            spec = stream_routes.build_logs(self.app, self.build_id)
            result = yield from stream(spec, on_data, timeout=timeout, **pauses)
            ended = result.ended
        except ConvoxError as exc:
            # A transient answer to the handshake (502 from a proxy) is no worse than a broken
            # stream: the poll decides.
            if not (isinstance(exc, ConvoxStreamError) or is_transient(exc)):
                raise
            if isinstance(exc, ConvoxStreamError):
                self.error = str(exc)
            emit(on_event, StreamInterrupted(f"build {self.build_id} logs", str(exc)))
        emit(on_event, BuildLogProgress(self.app, self.build_id, self.delivered))
        return ended

    def _deliver(self, data: bytes) -> None:
        self.delivered += len(data)
        self.tail += data
        if len(self.tail) > _TAIL_BYTES:
            del self.tail[: len(self.tail) - _TAIL_BYTES]
        if self.on_output is not None:
            self.on_output(data)

    def tail_text(self) -> str:
        """The last lines of the log, the stream's final ``ERROR:`` line included."""
        lines = bytes(self.tail).decode("utf-8", "replace").splitlines()[-_TAIL_LINES:]
        if self.error and not (lines and lines[-1].endswith(self.error)):
            lines.append(f"ERROR: {self.error}")
        return "\n".join(lines)


class _BuildWatch:
    """Polls one build until it is ``complete`` or ``failed``, watching its pod as well.

    Raises for an unrecognised status, for a build whose pod is gone or finished while the
    build still reads ``running`` for ``lost_pod_grace`` seconds (nothing on the rack ever ends
    such a build, §4.3), and at the deadline.
    """

    def __init__(
        self,
        resource: Resource[Any],
        app: str,
        build_id: str,
        deadline: Deadline,
        follow: Following,
    ) -> None:
        self.resource = resource
        self.app = app
        self.build_id = build_id
        self.lost_pod_grace = follow.lost_pod_grace
        self.on_event = follow.waiting.on_event
        self.poller = Poller(f"build {build_id} of app {app}", deadline, follow.waiting)
        self.status: str | None = None
        self.next_pod_check = 0.0
        self.lost_since: float | None = None

    def until_ended(self) -> Flow[Build]:
        """Flow: poll every interval until the build ended; return it, either way."""
        while True:
            ended = yield from self.poll()
            if ended is not None:
                return ended
            yield from self.poller.pause()

    def poll(self) -> Flow[Build | None]:
        """Flow: one look at the build (and, every few seconds, its pod): the build once it
        ended, else None."""
        yield from self.poller.check()
        app, build_id = self.app, self.build_id
        build = yield from self.poller.fetch(lambda: call(build_routes.get(app, build_id)))
        if build is None:
            return None
        if build.status != self.status:
            emit(self.on_event, BuildStatusChanged(app, build_id, build.status, self.status))
            self.status = build.status
            self.poller.state = f"status {build.status!r}"
        state = build.build_status
        if state in (BuildStatus.COMPLETE, BuildStatus.FAILED):
            return build
        if not state.is_active:
            raise ConvoxWorkflowError(
                f"build {build_id} of app {app} has the unexpected status {build.status!r}"
            )
        clock = yield from now()
        if state is BuildStatus.RUNNING and build.process and clock >= self.next_pod_check:
            self.next_pod_check = clock + _POD_CHECK_INTERVAL
            pod = yield from _pod_state(self.resource, app, build.process)
            if pod is None:
                self.lost_since = None
            elif self.lost_since is None:
                self.lost_since = clock
            elif clock - self.lost_since >= self.lost_pod_grace:
                raise ConvoxBuildFailedError(
                    f"build {build_id} of app {app} still reads 'running', but its build pod"
                    f" {build.process} is {pod} since {clock - self.lost_since:.0f}s; the rack"
                    " never finishes such a build (docs/rack-api.md §4.3). Start a new build",
                    build_id=build_id,
                )
        return None


def _pod_state(resource: Resource[Any], app: str, pid: str) -> Flow[str | None]:
    """Flow: ``None`` while the build pod may still report, else why it cannot (gone, ended)."""
    try:
        pod = yield from call(process_routes.get(app, pid))
    except ConvoxNotFoundError:
        return "gone"
    except ConvoxError as exc:
        if is_transient(exc):
            return None  # unknown: look again at the next check
        raise
    if pod.process_status in (ProcessStatus.FAILED, ProcessStatus.COMPLETE):
        return pod.status
    return None


def _settle(app: str, build: Build, log: _BuildLog, pod: str = "") -> Build:
    """Return a ``complete`` build; raise :class:`ConvoxBuildFailedError` for a failed one
    (``pod``: a line on its build pod, :func:`~.diagnosis.build_pod_diagnosis`)."""
    if build.build_status is BuildStatus.COMPLETE:
        return build
    tail = log.tail_text()
    reason = (
        build.reason
        or log.error
        or next(
            (line[7:] for line in reversed(tail.splitlines()) if line.startswith("ERROR: ")), ""
        )
    )
    message = f"build {build.id} of app {app} failed" + (f": {reason}" if reason else "")
    if pod:
        message = f"{message}.\n{pod}"
    raise ConvoxBuildFailedError(message, build_id=build.id, logs_tail=tail)


@dataclass(frozen=True)
class Following:
    """How a started build is seen through: its wait's options, whether to wait at all, its log
    copied to ``on_output`` (``follow_logs``), and how long its lost pod is given."""

    waiting: WaitOptions = BUILD_WAIT
    wait: bool = True
    follow_logs: bool = False
    lost_pod_grace: float = LOST_POD_GRACE
    on_output: OutputCallback | None = None


def follow_build(
    resource: Resource[Any], app: str, build_id: str, follow: Following
) -> Flow[Build]:
    """Flow: the CLI's steps 6 to 8 (§7.1): follow the log, wait for the end, catch up, settle.

    The poll is authoritative: a log stream still open after :data:`LOG_PAUSE_IDLE` silent
    seconds (or :data:`LOG_PAUSE_AFTER` in all) is closed, the build polled, and the stream
    opened again (only new bytes passed on), so that a build whose pod died, whose log socket
    may stay open and silent, is still found out. Without ``follow_logs`` the log is read only
    when the build failed, for the error's tail.
    """
    follow_logs, on_event = follow.follow_logs, follow.waiting.on_event
    deadline = yield from Deadline.start(follow.waiting.timeout)
    log = _BuildLog(resource, app, build_id, follow.on_output if follow_logs else None)
    watch = _BuildWatch(resource, app, build_id, deadline, follow)
    ended: Build | None = None
    if follow_logs:
        while ended is None:
            remaining = yield from deadline.remaining()
            if (yield from log.read(on_event, timeout=remaining, pause=True)):
                break
            ended = yield from watch.poll()
    if ended is None:
        ended = yield from watch.until_ended()
    if follow_logs or ended.build_status is BuildStatus.FAILED:
        yield from log.read(on_event)
    pod = ""
    if ended.build_status is BuildStatus.FAILED:
        what = f"build pod {ended.process}"
        pod = yield from diagnosed(build_pod_diagnosis(app, ended.process), what)
    return _settle(app, ended, log, pod)


def _given(url: str) -> Flow[str]:
    return url
    yield  # a flow that sends nothing


class _Counted:
    """Chunks of a re-iterable source, counting the bytes of the latest pass."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = chunks
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        self.size = 0
        for chunk in self.chunks:
            self.size += len(chunk)
            yield chunk


def _uploaded(
    resource: Resource[Any],
    app: str,
    archive: SourceArchive,
    key: str | None,
    on_event: EventCallback | None,
) -> Flow[str]:
    """Flow: stream the archive into the objects API; the ``object://`` URL it answers.

    The app is read first (one GET): the upload of a whole source tree for an app that does not
    exist would otherwise end in a 404 only once sent (:class:`ConvoxNotFoundError` here)."""
    yield from call(app_routes.get(app))
    counted = _Counted(archive)
    stored = yield from upload(resource, app, counted, key=key)
    emit(on_event, SourceUploaded(app, stored.url, counted.size))
    return stored.url


_CREATE_OPTIONS = ("description", "manifest", "build_args", "no_cache", "development", "git_sha")
"""The build-create options of ``build_from_object`` and ``build_from_directory``."""


class _Build:
    """A build to start: its create options, checked at once, and how to follow it."""

    def __init__(
        self, resource: Resource[Any], app: str, options: dict[str, Any], follow: Following
    ) -> None:
        self.resource = resource
        self.app = app
        self.options = options
        self.follow = follow

    @classmethod
    def from_arguments(
        cls, resource: Resource[Any], app: str, arguments: Mapping[str, Any]
    ) -> _Build:
        """The plan of ``build_from_object`` or ``build_from_directory``, from the arguments
        they were called with (their signatures are the one typed declaration of them)."""
        follow = Following(
            wait_options(arguments, BUILD_WAIT),
            wait=arguments["wait"],
            follow_logs=arguments["follow_logs"],
            lost_pod_grace=arguments["lost_pod_grace"],
            on_output=arguments["on_output"],
        )
        return cls(resource, app, {name: arguments[name] for name in _CREATE_OPTIONS}, follow)

    def create(self, url: str) -> Call[Build]:
        """The build-create call (raises ``ConvoxInputError`` for a bad option or URL)."""
        return build_routes.create(self.app, url, **self.options)

    def run(self, source: Flow[str]) -> Flow[Build]:
        """Flow: the source URL, then the build (created once), followed when ``wait``."""
        url = yield from source
        build = yield from call(self.create(url))
        emit(self.follow.waiting.on_event, BuildCreated(self.app, build.id, build.process))
        if not self.follow.wait:
            return build
        return (yield from follow_build(self.resource, self.app, build.id, self.follow))


MARKER_SEARCH = 50
"""Newest builds searched for a marker in their description (:meth:`BuildWorkflows.resumable`)."""


def resumable_build(
    resource: Resource[Any],
    app: str,
    build_id: str | None,
    marker: str | None,
    on_event: EventCallback | None,
) -> Flow[Build | None]:
    """Flow: :meth:`BuildWorkflows.resumable`."""
    if build_id is None and marker is not None:
        newest = yield from call(build_routes.list(app, limit=MARKER_SEARCH))
        build_id = next((b.id for b in newest if marker in b.description), None)
    if build_id is None:
        return None
    try:
        build = yield from call(build_routes.get(app, build_id))
    except ConvoxNotFoundError:
        return None
    state = build.build_status
    verdict = ""
    if state is BuildStatus.COMPLETE:
        verdict = "complete: using it"
    elif not state.is_active:
        verdict = f"{build.status}: building again"
    elif state is BuildStatus.RUNNING and build.process:
        pod = yield from _pod_state(resource, app, build.process)
        if pod is not None:
            verdict = (
                f"its build pod {build.process} is {pod}, so it can never finish (§4.3):"
                " building again"
            )
    usable = not verdict or state is BuildStatus.COMPLETE
    emit(
        on_event,
        PreviousBuildChecked(app, build.id, build.status, usable, verdict or "re-attaching"),
    )
    return build if usable else None


def _cancel_build(app: str, build_id: str) -> Flow[bool]:
    build = yield from call(build_routes.get(app, build_id))
    if not build.build_status.is_active or not build.process:
        return False
    yield from call(process_routes.delete(app, build.process))
    return True


def _poll_build(
    resource: Resource[Any], app: str, build_id: str, waiting: WaitOptions
) -> Flow[Build]:
    build = yield from call(build_routes.get(app, build_id))
    if build.build_status.is_active:
        return build
    return (yield from follow_build(resource, app, build_id, Following(waiting)))


class BuildWorkflows(Resource[D]):
    """Workflows of ``client.builds``."""

    @operation
    def cancel(self, app: str, build_id: str) -> Flow[bool]:
        """Stop build ``build_id`` if it is still going; whether it was.

        Deleting its build pod is the only way to stop a build (docs/rack-api.md §4.3): the pod
        named in ``process`` is deleted when the build is active. The build record then reads
        ``running`` forever; :meth:`wait_for_build` gives up on it once its pod is gone.
        """
        segment(app, kind="app name")
        segment(build_id, kind="build id")
        return _cancel_build(app, build_id)

    @operation
    def poll(
        self,
        app: str,
        build_id: str,
        *,
        max_errors: int = BUILD_WAIT.max_errors,
        waiting: WaitOptions | None = None,
    ) -> Flow[Build]:
        """One look at a build: as read while it is active; once it ended, settled as
        :meth:`wait_for_build` settles it (``complete``, or :class:`ConvoxBuildFailedError` with
        the tail of its log; an unknown status raises :class:`ConvoxWorkflowError`)."""
        options = wait_options(locals(), BUILD_WAIT)
        segment(app, kind="app name")
        segment(build_id, kind="build id")
        return _poll_build(self, app, build_id, options)

    @operation
    def resumable(
        self,
        app: str,
        *,
        build_id: str | None = None,
        marker: str | None = None,
        on_event: EventCallback | None = None,
    ) -> Flow[Build | None]:
        """The build an earlier attempt started, if it can still be used; else None.

        The build is ``build_id``, or else the newest of the last :data:`MARKER_SEARCH` builds
        whose description contains ``marker`` (what a retried task uses when the answer to its
        build create was lost). It is returned ``complete`` (use its release), or active with a
        build pod that still runs (wait for it). None when there is no such build, when it
        failed, and when its pod is gone or ended while it reads ``running``: such a build
        never finishes (§4.3), so only a new build can. A
        :class:`~.events.PreviousBuildChecked` event says which, and why.
        """
        segment(app, kind="app name")
        if build_id is not None:
            segment(build_id, kind="build id")
        return resumable_build(self, app, build_id, marker, on_event)

    @operation
    def wait_for_build(
        self,
        app: str,
        build_id: str,
        *,
        poll_interval: float = BUILD_WAIT.poll_interval,
        timeout: float = BUILD_WAIT.timeout,
        max_errors: int = BUILD_WAIT.max_errors,
        lost_pod_grace: float = LOST_POD_GRACE,
        follow_logs: bool = False,
        on_output: OutputCallback | None = None,
        on_event: EventCallback | None = None,
        waiting: WaitOptions | None = None,
    ) -> Flow[Build]:
        """Wait for a build to end; return it ``complete`` (its ``release`` is the new release).

        Polls every ``poll_interval`` seconds up to ``timeout`` seconds from now
        (:class:`ConvoxWaitTimeoutError`). ``failed`` raises :class:`ConvoxBuildFailedError`
        with the tail of the build log. An unrecognised status raises
        :class:`ConvoxWorkflowError`. The build pod named in ``process`` is checked too: a build
        stays ``running`` forever when its pod died without reporting (§4.3), so a pod gone or
        finished for ``lost_pod_grace`` seconds while the build still runs fails the wait. With
        ``follow_logs`` the log is copied to ``on_output`` as it comes, as the CLI does.
        ``waiting`` gives the wait's options as one :class:`~..waiting.WaitOptions` instead.
        """
        follow = Following(
            wait_options(locals(), BUILD_WAIT),
            follow_logs=follow_logs,
            lost_pod_grace=lost_pod_grace,
            on_output=on_output,
        )
        segment(app, kind="app name")
        segment(build_id, kind="build id")
        return follow_build(self, app, build_id, follow)

    @operation
    def build_from_object(
        self,
        app: str,
        url: str,
        *,
        description: str | None = None,
        manifest: str | None = None,
        build_args: Mapping[str, str] | Iterable[str] | None = None,
        no_cache: bool | None = None,
        development: bool | None = None,
        git_sha: str | None = None,
        follow_logs: bool = True,
        wait: bool = True,
        poll_interval: float = BUILD_WAIT.poll_interval,
        timeout: float = BUILD_WAIT.timeout,
        max_errors: int = BUILD_WAIT.max_errors,
        lost_pod_grace: float = LOST_POD_GRACE,
        on_output: OutputCallback | None = None,
        on_event: EventCallback | None = None,
        waiting: WaitOptions | None = None,
    ) -> Flow[Build]:
        """Build the source already stored at ``url`` (an ``object://`` URL from
        ``objects.store``); follow and wait as :meth:`build_from_directory` does."""
        plan = _Build.from_arguments(self, app, locals())
        plan.create(url)
        return plan.run(_given(url))

    @operation
    def build_from_directory(
        self,
        app: str,
        path: str | os.PathLike[str],
        *,
        description: str | None = None,
        manifest: str | None = None,
        build_args: Mapping[str, str] | Iterable[str] | None = None,
        no_cache: bool | None = None,
        development: bool | None = None,
        git_sha: str | None = None,
        key: str | None = None,
        follow_logs: bool = True,
        wait: bool = True,
        poll_interval: float = BUILD_WAIT.poll_interval,
        timeout: float = BUILD_WAIT.timeout,
        max_errors: int = BUILD_WAIT.max_errors,
        lost_pod_grace: float = LOST_POD_GRACE,
        on_output: OutputCallback | None = None,
        on_progress: Callable[[ArchiveEvent], None] | None = None,
        on_event: EventCallback | None = None,
        waiting: WaitOptions | None = None,
    ) -> Flow[Build]:
        """Build the directory ``path`` as ``convox build`` does; return the ``complete`` build
        (its ``release`` is the new release), or the ``running`` one without ``wait``.

        The directory is streamed as a ``.tgz`` honouring ``.dockerignore`` (constant memory;
        ``on_progress`` receives the archive's progress events) into the objects API under
        ``key`` (default ``tmp/<30 hex>.tgz``); the build is created from the returned
        ``object://`` URL, never from an http(s) URL, which build pods cannot fetch (§4.3).
        ``no_cache=True`` really disables the layer cache (the rack reads the flag inverted;
        ``builds.create`` sends it the right way round). With ``follow_logs`` the build log is
        copied to ``on_output`` while the build runs, and once it ended the log is read again
        and only the bytes not yet delivered are passed on (§7.1 step 8). The build is polled
        every ``poll_interval`` seconds for ``timeout`` seconds (see :meth:`wait_for_build`):
        ``failed`` raises :class:`ConvoxBuildFailedError` with the log's tail. The upload and
        the build create are never sent twice.
        """
        plan = _Build.from_arguments(self, app, locals())
        plan.create(f"object://{app}/tmp/check.tgz")  # every option checked before the upload
        archive = SourceArchive(path, progress=on_progress)
        if key is not None:
            object_key(key)
        return plan.run(_uploaded(self, app, archive, key, plan.follow.waiting.on_event))
