"""The WebSocket routes: app, service, process and build logs, and exec.

Routes of docs/rack-api.md §4.6-§4.7.

Each route is a module-level function building its stream (or, for exec, the flow reading its
exit code), which workflows yield directly; each group is a mixin for the resource it belongs to
(``client.apps.logs``, ``client.builds.logs``, ``client.services.logs``,
``client.processes.logs`` and ``client.processes.exec``). Logs are iterators of raw output bytes
on ``ConvoxClient`` and async iterators on ``AsyncConvoxClient``; wrap them in
:func:`~convox_provider.client.websocket.lines` for text lines.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from convox_provider.client.encoding import Fields, segment
from convox_provider.client.errors import ConvoxInputError, ConvoxStreamError
from convox_provider.client.operation import (
    D,
    Flow,
    Pairs,
    Resource,
    StreamSpec,
    route,
    stream,
    stream_route,
)
from convox_provider.client.resources._common import app_path, header_pairs

__all__ = [
    "AppLogs",
    "BuildLogs",
    "ProcessStreams",
    "ServiceLogs",
    "app_logs",
    "build_logs",
    "process_exec",
    "process_logs",
    "service_logs",
]

Duration = timedelta | int | float | str


def _log_headers(  # noqa: PLR0917 - positional, in the order of the headers
    follow: bool,
    since: Duration | None,
    prefix: bool | None,
    filter: str | None,
    tail: int | None,
    previous: bool | None,
    max_log_requests: int | None,
) -> Pairs:
    if tail is not None and (isinstance(tail, bool) or tail < 0):
        raise ConvoxInputError(f"invalid tail {tail!r}: expected a number of lines, 0 or more")
    fields = (
        Fields()
        .add("Follow", follow)
        .add_duration("Since", since)
        .add("Prefix", prefix)
        .add("Filter", filter)
        .add("Tail", tail)
        .add("Previous", previous)
        .add("Maxlogrequests", max_log_requests)
    )
    return header_pairs(fields)


def app_logs(
    app: str,
    *,
    follow: bool = True,
    since: Duration | None = None,
    prefix: bool | None = None,
    filter: str | None = None,
    tail: int | None = None,
    previous: bool | None = None,
    max_log_requests: int | None = None,
) -> StreamSpec:
    """The app's logs as raw bytes; with ``follow`` (the rack's default) they never end.

    ``since`` (seconds, timedelta or Go duration; rack default 2 minutes) starts that far
    back. ``prefix=True`` prefixes lines with time and source as ``convox logs`` does; on
    AWS racks ``system/…`` sources are rack events such as rollout progress (§6.7).
    ``filter`` is a CloudWatch filter pattern (AWS racks only); ``tail``, ``previous`` and
    ``max_log_requests`` apply to kubectl-style racks (§6.2).
    """
    return StreamSpec(
        app_path(app, "logs"),
        _log_headers(follow, since, prefix, filter, tail, previous, max_log_requests),
    )


class AppLogs(Resource[D]):
    """``client.apps.logs``."""

    logs = stream_route(app_logs)


def service_logs(
    app: str,
    service: str,
    *,
    follow: bool = True,
    since: Duration | None = None,
    prefix: bool | None = None,
    tail: int | None = None,
    previous: bool | None = None,
    max_log_requests: int | None = None,
) -> StreamSpec:
    """One service's logs as raw bytes (kubectl-style on every rack, §4.7).

    Options as for ``apps.logs``. Without ``prefix`` the rack prefixes each line with
    ``[pod/<pod>/<container>] <time>``; ``prefix=False`` removes it.
    """
    return StreamSpec(
        app_path(app, "services", segment(service, kind="service name"), "logs"),
        _log_headers(follow, since, prefix, None, tail, previous, max_log_requests),
    )


class ServiceLogs(Resource[D]):
    """``client.services.logs``."""

    logs = stream_route(service_logs)


def build_logs(app: str, build_id: str) -> StreamSpec:
    """A build's output from its start: live while it runs, then the stored log (§4.7).

    The stream can end before the build does (an interrupted pod log), so poll the build for
    its status; a stored log of a failed build ends with a line ``ERROR: <reason>``, which is
    build output, not a stream error, unless it is the rack's final frame (§6.5, §6.7).
    """
    return StreamSpec(app_path(app, "builds", segment(build_id, kind="build id"), "logs"))


class BuildLogs(Resource[D]):
    """``client.builds.logs``."""

    logs = stream_route(build_logs)


def _discard(chunk: bytes) -> None:
    """Output sink of an exec whose caller wants only the exit code."""


def _exit_code(spec: StreamSpec, on_output: Callable[[bytes], None]) -> Flow[int]:
    result = yield from stream(spec, on_output)
    if result.exit_code is None:
        raise ConvoxStreamError(
            "the exec stream ended without an exit code; the rack did not report how the "
            "command ended"
        )
    return result.exit_code


def process_logs(
    app: str,
    pid: str,
    *,
    follow: bool = True,
    since: Duration | None = 0,
    prefix: bool | None = None,
    tail: int | None = None,
    previous: bool | None = None,
) -> StreamSpec:
    """One process's (pod's) logs as raw bytes.

    ``since`` defaults to ``0``, the moment of connection: the Kubernetes provider *adds*
    ``since`` to the current time for this route, so the rack's own default (2 minutes)
    shows nothing for two minutes (§6.2). For a one-off command's complete output use
    :meth:`exec` instead.
    """
    return StreamSpec(
        app_path(app, "processes", segment(pid, kind="process id"), "logs"),
        _log_headers(follow, since, prefix, None, tail, previous, None),
    )


def process_exec(
    app: str,
    pid: str,
    command: str,
    *,
    on_output: Callable[[bytes], None] | None = None,
    entrypoint: bool | None = None,
    tty: bool = False,
    stdin: bytes | None = None,
    height: int | None = None,
    width: int | None = None,
) -> Flow[int]:
    """Run ``command`` in a running process and return its exit code (§6.6).

    ``pid`` may also be a service name (a random running pod of it is used). ``command`` is
    split shell-style by the rack and not run through a shell: use ``sh -c '…'`` for pipes.
    ``entrypoint=True`` prefixes the image's entrypoint (``convox run`` does). Output
    (stdout and stderr merged) goes to ``on_output`` chunk by chunk, raw bytes.

    ``tty`` defaults to ``False`` (plain output), unlike the rack's default. ``stdin`` needs
    ``tty=True``: the non-TTY exec with stdin is the combination the rack mishandles, and
    the rack never closes the command's stdin, so a command reading to EOF hangs. Raises
    ``ConvoxStreamError`` when the rack ends with an ``ERROR:`` frame, even after an exit
    code of 0. Never retried: the command may already have run.
    """
    if not isinstance(command, str) or not command.strip():
        raise ConvoxInputError("exec needs a non-empty command")
    if stdin is not None and not tty:
        raise ConvoxInputError(
            "exec with stdin needs tty=True: the rack mishandles a non-TTY exec with stdin "
            "(docs/rack-api.md §6.6)"
        )
    if stdin is not None and not isinstance(stdin, bytes):
        raise ConvoxInputError(f"stdin must be bytes, got {type(stdin).__name__}")
    headers = header_pairs(
        Fields()
        .add("Command", command)
        .add("Entrypoint", entrypoint)
        .add("Tty", tty)
        .add("Disable-Stdin", stdin is None)
        .add("Height", height)
        .add("Width", width)
    )
    path = app_path(app, "processes", segment(pid, kind="process id"), "exec")
    spec = StreamSpec(path, headers, exit_code=True, stdin=stdin)
    return _exit_code(spec, on_output or _discard)


class ProcessStreams(Resource[D]):
    """``client.processes.logs`` and ``client.processes.exec``."""

    logs = stream_route(process_logs)
    exec = route(process_exec)
