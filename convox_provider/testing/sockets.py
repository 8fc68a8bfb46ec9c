"""WebSocket route handlers: logs, build logs, exec and shells (docs/rack-api.md §6).

Their routes are in ``routes``.

Handlers raise ``RackError`` for the ``ERROR: <message>`` frame; the dispatcher then sends the
empty binary frame, exactly like stdapi. Options come from headers only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .encoding import format_time, format_time_seconds, shell_split
from .errors import RackError
from .messages import Request
from .models import LogEntry
from .scripts import Invocation, reads_stdin
from .state import ExecRecord, RackState
from .websocket import OP_BINARY, OP_CLOSE, OP_TEXT, WebSocket

if TYPE_CHECKING:
    from .context import Ctx

__all__ = ["EXIT_MARKER"]

EXIT_MARKER = b"F1E49A85-0AD7-4AEF-A618-C249C6E6568D"
_NS = 1_000_000_000
_POLL = 0.05
_READ_CHUNK = 32 * 1024


@dataclass(frozen=True)
class LogOptions:
    """``LogsOptions`` read from headers (§6.2)."""

    filter: str | None
    follow: bool
    prefix: bool | None
    since: int
    tail: int | None

    @classmethod
    def parse(cls, req: Request) -> LogOptions:
        """Parse in struct order so the first bad header is the one reported."""
        filter_ = req.header("Filter")
        follow = req.as_bool(req.header("Follow"))
        req.as_int(req.header("Maxlogrequests"))
        prefix = req.as_bool(req.header("Prefix"))
        since = req.as_duration(req.header("Since") if req.header("Since") is not None else "2m")
        tail = req.as_int(req.header("Tail"))
        return cls(
            filter=filter_,
            follow=True if follow is None else follow,
            prefix=prefix,
            since=since or 0,
            tail=tail,
        )


async def _pause(state: RackState, ws: WebSocket) -> None:
    """Wait for the next poll (or the next due transition); raise once the peer is gone."""
    if ws.peer_gone.is_set():
        raise ConnectionResetError("client went away")
    due = state.next_due()
    wait = _POLL
    if due is not None:
        wait = min(max((due - state.now()) / _NS, 0.002), _POLL)
    try:
        await asyncio.wait_for(ws.peer_gone.wait(), timeout=wait)
    except asyncio.TimeoutError:
        return


async def _follow(
    ws: WebSocket,
    state: RackState,
    collect: Callable[[], tuple[list[bytes], bool]],
    follow: bool,
) -> None:
    """Send what ``collect`` returns until it reports the end (or once, without follow)."""
    reader = asyncio.create_task(ws.discard_incoming())
    try:
        await _rounds(ws, state, collect, follow)
    finally:
        await _stop(reader)


async def _rounds(
    ws: WebSocket,
    state: RackState,
    collect: Callable[[], tuple[list[bytes], bool]],
    follow: bool,
    done: Callable[[], bool] | None = None,
) -> None:
    """``_follow``'s loop, for a caller already reading the socket; ``done`` is asked after
    each round's chunks went out."""
    while True:
        chunks, finished = collect()
        for chunk in chunks:
            await ws.send_text(chunk)
        if finished or not follow or (done is not None and done()):
            return
        await _pause(state, ws)


def _tail(entries: list[LogEntry], tail: int | None) -> list[LogEntry]:
    if tail is None or tail < 0:
        return entries
    return entries[-tail:] if tail else []


class _LogReader:
    """Reads an app's log on from where it left off; the first read keeps only the last ``tail``."""

    def __init__(self, state: RackState, app: str, tail: int | None = None) -> None:
        self._state, self._app, self._tail = state, app, tail
        self._cursor = 0
        self._first = True

    def read(self, keep: Callable[[LogEntry], bool]) -> list[LogEntry] | None:
        """The new entries ``keep`` accepts; None once the app is gone."""
        try:
            entries, self._cursor = self._state.log_entries(self._app, self._cursor)
        except RackError:
            return None
        selected = [e for e in entries if keep(e)]
        if self._first:
            selected, self._first = _tail(selected, self._tail), False
        return selected


# --- logs ----------------------------------------------------------------------------------


async def app_logs(req: Request, ctx: Ctx, ws: WebSocket) -> None:
    """App logs, AWS style: service output and ``system/k8s/...`` rollout events (§6.7)."""
    app = req.params["name"]
    options = LogOptions.parse(req)
    ctx.state.app_get(app)
    cutoff = ctx.state.now() - options.since
    reader = _LogReader(ctx.state, app, options.tail)
    wanted = options.filter.encode() if options.filter else None

    def render(entry: LogEntry) -> bytes:
        if options.prefix:
            return (
                f"{format_time_seconds(entry.time)} {entry.stream} ".encode()
                + entry.message
                + b"\n"
            )
        return entry.message + b"\n"

    def collect() -> tuple[list[bytes], bool]:
        selected = reader.read(
            lambda e: e.time >= cutoff and (wanted is None or wanted in e.message)
        )
        return ([], True) if selected is None else ([render(e) for e in selected], False)

    await _follow(ws, ctx.state, collect, options.follow)


async def service_logs(req: Request, ctx: Ctx, ws: WebSocket) -> None:
    """Service logs, kubectl style: ``[pod/<pod>/<app>] <time> <message>`` unless Prefix false."""
    app, service = req.params["app"], req.params["service"]
    options = LogOptions.parse(req)
    pods = set(ctx.state.service_pods(app, service))
    if not pods:
        raise RackError(404, f"no resources found in {ctx.state.namespace(app)} namespace")
    cutoff = ctx.state.now() - options.since
    prefix = options.prefix is not False
    reader = _LogReader(ctx.state, app, options.tail)

    def collect() -> tuple[list[bytes], bool]:
        selected = reader.read(lambda e: e.pod in pods and e.time >= cutoff)
        if selected is None:
            return [], True
        lines = [
            (f"[pod/{e.pod}/{app}] {format_time(e.time)} ".encode() if prefix else b"")
            + e.message
            + b"\n"
            for e in selected
        ]
        alive = any(ctx.state.pod_status(app, pod) in ("pending", "running") for pod in pods)
        return lines, not alive

    await _follow(ws, ctx.state, collect, options.follow)


async def _pod_stream(
    ws: WebSocket,
    ctx: Ctx,
    app: str,
    pid: str,
    *,
    cutoff: int | None,
    prefix: bool,
) -> None:
    """Follow one pod's output until it ends, with the rack's pending-pod heartbeats."""
    state = ctx.state
    waited = 0.0
    loop = asyncio.get_running_loop()
    reader = asyncio.create_task(ws.discard_incoming())
    try:
        last_beat = loop.time()
        while True:
            status = state.pod_status(app, pid)
            if status not in (None, "pending"):
                break
            now = loop.time()
            if status is None and now - last_beat >= 1.0:
                await ws.send_text(b"waiting for build pod...\n")
                last_beat = now
            elif status == "pending" and now - last_beat >= 15.0:
                await ws.send_text(b"waiting for build pod to be scheduled...\n")
                last_beat = now
            if waited > 600:
                await ws.send_text(
                    b"build pod did not start within 10 minutes -- "
                    b"check cluster resources and node availability\n"
                )
                return
            await _pause(state, ws)
            waited += _POLL
        log = _LogReader(state, app)

        def collect() -> tuple[list[bytes], bool]:
            selected = log.read(lambda e: e.pod == pid and (cutoff is None or e.time >= cutoff))
            if selected is None:
                return [], True
            return [
                (
                    f"{format_time_seconds(e.time)} service/{e.service}/{pid} ".encode()
                    if prefix
                    else b""
                )
                + e.message
                + b"\n"
                for e in selected
            ], False

        def ended() -> bool:
            return state.pod_status(app, pid) not in ("pending", "running")

        await _rounds(ws, state, collect, True, ended)
    finally:
        await _stop(reader)


async def process_logs(req: Request, ctx: Ctx, ws: WebSocket) -> None:
    """One pod's logs; ``Since`` is *added* to now, as the k8s provider does (§6.2)."""
    app, pid = req.params["app"], req.params["pid"]
    options = LogOptions.parse(req)
    cutoff = ctx.state.now() + options.since
    await _pod_stream(ws, ctx, app, pid, cutoff=cutoff, prefix=bool(options.prefix))


async def build_logs(req: Request, ctx: Ctx, ws: WebSocket) -> None:
    """Build output: live from the build pod while running, else the stored log object."""
    app, build_id = req.params["app"], req.params["id"]
    LogOptions.parse(req)
    state = ctx.state
    build = state.build_record(app, build_id)
    loop = asyncio.get_running_loop()
    if build.status == "created":
        started = last_beat = loop.time()
        while build.status == "created":
            if loop.time() - started > 300:
                await ws.send_text(f"build {build_id} did not start within 5 minutes\n".encode())
                return
            if loop.time() - last_beat >= 10:
                await ws.send_text(b"waiting for build to start...\n")
                last_beat = loop.time()
            await asyncio.sleep(_POLL)
            build = state.build_record(app, build_id)
    if build.status == "running" and not build.finished:
        sent = 0

        def collect() -> tuple[list[bytes], bool]:
            nonlocal build, sent
            build = state.build_record(app, build.id)
            chunks = [data for _, data in build.output[sent:]]
            sent = len(build.output)
            return chunks, build.finished or build.status not in ("created", "running")

        await _follow(ws, state, collect, True)
        return
    parts = urlsplit(build.logs)
    if parts.scheme != "object":
        raise RackError(500, f"unable to read logs for build: {build_id}")
    path = state.object_path(parts.hostname or "", parts.path)
    with path.open("rb") as handle:
        while chunk := handle.read(_READ_CHUNK):
            await ws.send_text(chunk)


# --- exec ----------------------------------------------------------------------------------


async def _marker(ws: WebSocket, code: int) -> None:
    await ws.send_text(EXIT_MARKER + f":{code}\n".encode())


async def _run_interactive(
    ws: WebSocket,
    ctx: Ctx,
    invocation: Invocation,
    record: ExecRecord,
) -> int:
    """Play a command's output over time, collecting stdin, and return its exit code.

    An unscripted command that reads stdin (``cat``, ``sh`` reading a script) runs once stdin
    has ended, with what was sent; anything else starts at once.
    """
    scripts = ctx.state.scripts
    stdin_ended = asyncio.Event()

    async def read_stdin() -> None:
        ws.answer_pings = True
        try:
            while True:
                message = await ws.read_message()
                if message is None:
                    return
                opcode, payload = message
                if opcode == OP_TEXT:
                    record.stdin.extend(payload)
                elif opcode == OP_BINARY:
                    record.stdin_closed = True
                    stdin_ended.set()
                    ws.answer_pings = False
                    await ws.discard_incoming()
                    return
                elif opcode == OP_CLOSE:
                    code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                    if code in (1000, 1001):
                        record.stdin_closed = True
                    ws.peer_gone.set()
                    return
        finally:
            stdin_ended.set()

    reader = asyncio.create_task(read_stdin() if record.stdin_enabled else ws.discard_incoming())
    try:
        if (
            record.stdin_enabled
            and reads_stdin(invocation.argv)
            and not scripts.scripted(invocation)
        ):
            await stdin_ended.wait()
            if ws.peer_gone.is_set():
                raise ConnectionResetError("client went away")
            invocation = replace(invocation, stdin=bytes(record.stdin))
        result = scripts.resolve(invocation)
    except BaseException:
        await _stop(reader)
        raise
    duration = ctx.state.timing.process_run if result.duration is None else result.duration

    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        for offset, data in result.timeline():
            delay = start + min(offset, duration) - loop.time()
            if delay > 0:
                await _sleep_unless_gone(ws, delay)
            if data:
                await ws.send_text(_crlf(data) if record.tty else data)
        remaining = start + duration - loop.time()
        if remaining > 0:
            await _sleep_unless_gone(ws, remaining)
    finally:
        await _stop(reader)
    return result.exit_code


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait until it has let go of the socket (its reads must not overlap)."""
    task.cancel()
    await asyncio.wait([task])


async def _sleep_unless_gone(ws: WebSocket, seconds: float) -> None:
    try:
        await asyncio.wait_for(ws.peer_gone.wait(), timeout=seconds)
    except asyncio.TimeoutError:
        return
    raise ConnectionResetError("client went away")


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


async def process_exec(req: Request, ctx: Ctx, ws: WebSocket) -> None:
    """Exec in a pod (or a random running pod of a service), ending with the exit marker (§6.6)."""
    app, pid = req.params["app"], req.params["pid"]
    ctx.state.app_get(app)
    if "w" not in req.role:
        raise RackError(403, "process exec requires write access")
    command = req.value("command")
    entrypoint = bool(req.as_bool(req.header("Entrypoint")))
    req.as_int(req.header("Height"))
    tty = req.as_bool(req.header("Tty") if req.header("Tty") is not None else "true")
    req.as_int(req.header("Width"))
    disable_stdin = bool(req.as_bool(req.header("Disable-Stdin")))
    try:
        pod, argv = ctx.state.exec_target(app, pid, command, entrypoint)
    except RackError:
        await _marker(ws, 0)
        raise
    if pod.status != "running":
        await _marker(ws, 1)
        raise RackError(500, f'unable to upgrade connection: container not found ("{app}")')
    record = ExecRecord(
        app=app,
        process=pod.id,
        command=command,
        argv=tuple(argv),
        tty=bool(tty),
        stdin_enabled=not disable_stdin,
    )
    ctx.state.execs.append(record)
    invocation = Invocation(
        command=command,
        argv=tuple(argv),
        app=app,
        service=pod.service,
        process=pod.id,
        mode="exec",
        environment=dict(pod.environment),
        files=ctx.state.file_store(app, pod.id),
    )
    record.exit_code = await _run_interactive(ws, ctx, invocation, record)
    await _marker(ws, record.exit_code)


async def instance_shell(req: Request, ctx: Ctx, ws: WebSocket) -> None:
    """A shell on a node: the command runs through the scripts, then the exit marker."""
    if "w" not in req.role:
        raise RackError(403, "instance shell requires write access")
    node = req.params["id"]
    command = req.header("Command") or "sh"
    req.as_int(req.header("Height"))
    req.as_int(req.header("Width"))
    if not ctx.state.instance_exists(node):
        raise RackError(500, f'nodes "{node}" not found')
    argv = tuple(shell_split(command))
    record = ExecRecord(
        app="", process=node, command=command, argv=argv, tty=True, stdin_enabled=True
    )
    ctx.state.execs.append(record)
    invocation = Invocation(
        command=command, argv=argv, app="", service="", process=node, mode="shell"
    )
    record.exit_code = await _run_interactive(ws, ctx, invocation, record)
    await _marker(ws, record.exit_code)


async def resource_console(req: Request, ctx: Ctx, ws: WebSocket) -> None:
    """Database consoles are not emulated: the resource is checked, then an error frame."""
    if "w" not in req.role:
        raise RackError(403, "resource console requires write access")
    req.as_int(req.header("Height"))
    req.as_int(req.header("Width"))
    resource = ctx.state.app_resource(req.params["app"], req.params["name"])
    raise RackError(400, f"console not available for resources of type: {resource['type']}")


async def unimplemented(_: Request, __: Ctx, ___: WebSocket) -> None:
    """Routes the generic k8s provider does not implement."""
    raise RackError(501, "unimplemented")
