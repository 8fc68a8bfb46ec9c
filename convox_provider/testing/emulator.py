"""``RackEmulator``: a local Convox v3 rack on 127.0.0.1, in a background thread or your loop.

Each emulator keeps its files (uploads being received, objects, imported image archives,
exports) in a temporary directory ``convox-emulator-*``. Every stop removes it: ``stop()``,
``stop_async()``, the end of ``serve()``, and the command line on SIGINT, SIGTERM or SIGHUP. A
process that is killed (SIGKILL, ``os._exit``) cannot remove its own, so the directory holds an
``owner`` file (pid and process start time), and each new emulator removes the directories whose
owner is gone (:func:`sweep_abandoned`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .admin import Admin
from .api import Console, RackApi
from .context import Ctx
from .environment import render_env
from .faults import FaultPlan, RequestLog
from .routes import Router, rack_routes
from .scripts import Scripts
from .server import RackServer
from .state import ExecRecord, RackState
from .timing import Timing

__all__ = ["PREFIX", "RackEmulator", "sweep_abandoned"]

PREFIX = "convox-emulator-"
"""The name prefix of an emulator's temporary directory."""
_OWNER = "owner"


def _started(pid: int) -> str | None:
    """The start time of process ``pid`` (``/proc/<pid>/stat`` field 22), None when it is gone;
    ``""`` where ``/proc`` cannot tell (the pid alone then decides)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


def _alive(pid: int, started: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    now = _started(pid)
    return now is not None and (not started or not now or now == started)


def sweep_abandoned(root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove the temporary directories of emulators whose process is gone (killed before it
    could stop them) from ``root`` (default: the temporary directory); return them.

    Only directories with an ``owner`` file naming a dead process are removed: those of
    running emulators, of other users, or without an owner file are left alone."""
    removed: list[Path] = []
    for folder in Path(root or tempfile.gettempdir()).glob(f"{PREFIX}*"):
        try:
            pid_text, _, started = (folder / _OWNER).read_text().partition(" ")
            pid = int(pid_text)
        except (OSError, ValueError):
            continue
        if not _alive(pid, started.strip()):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _claim(folder: Path) -> None:
    pid = os.getpid()
    (folder / _OWNER).write_text(f"{pid} {_started(pid) or ''}\n")


class RackEmulator:
    """A Convox v3 rack speaking the real HTTP and WebSocket protocol on a loopback port.

    :param password: the rack API password (Basic password, any username but ``jwt``);
        None accepts every request, like a rack started without a password.
    :param console: run as a Console: every request must carry ``Rack: <this org/rack>``;
        without it the answer is the console's HTML page (docs/rack-api.md §1.4).
    :param session: console session challenge: None, ``"challenge"`` (``token="false"``) or
        ``"token"`` (``token="true"``, which headless clients must refuse), §1.5.
    :param timing: durations of builds, rollouts and processes (default: instant).
    :param host: interface to listen on (loopback).
    :param port: port to listen on; 0 picks a free one.
    :param rack_name: the rack's name (``GET /system``, namespaces ``<rack>-<app>``).
    :param max_frame_bytes: split every WebSocket payload into frames of at most this many
        bytes, to exercise clients on lines and UTF-8 characters split across frames.
    """

    def __init__(
        self,
        *,
        password: str | None = "password",
        console: str | None = None,
        session: str | None = None,
        timing: Timing | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        rack_name: str = "emulator",
        version: str = "3.24.9",
        max_frame_bytes: int | None = None,
    ) -> None:
        if session not in (None, "challenge", "token"):
            raise ValueError(f"session must be None, 'challenge' or 'token', not {session!r}")
        if session is not None and console is None:
            raise ValueError("a session challenge needs console mode (console='org/rack')")
        self.password = password
        self.host = host
        self.port = port
        self.timing = timing or Timing()
        self.faults = FaultPlan()
        self.requests = RequestLog()
        self.scripts = Scripts()
        with contextlib.suppress(OSError):
            sweep_abandoned()
        self._tmp = tempfile.TemporaryDirectory(prefix=PREFIX)
        root = Path(self._tmp.name)
        _claim(root)
        spool = root / "spool"
        spool.mkdir()
        self.state = RackState(
            timing=self.timing,
            scripts=self.scripts,
            storage=root / "storage",
            password=password,
            name=rack_name,
            version=version,
        )
        self.console = Console(rack=console, session=session) if console is not None else None
        api = RackApi(Ctx(state=self.state, spool=spool), password=password, console=self.console)
        self._server = RackServer(
            api=api,
            router=Router(rack_routes()),
            faults=self.faults,
            requests=self.requests,
            spool=spool,
            max_frame_bytes=max_frame_bytes,
            admin=Admin(self.scripts, self.requests),
        )
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._started = False
        self._finished = False

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8085`` (valid once started)."""
        return f"http://{self.host}:{self.port}"

    @property
    def rack_url(self) -> str:
        """``RACK_URL`` form with credentials: ``http://convox:<password>@127.0.0.1:<port>``."""
        return f"http://convox:{self.password or ''}@{self.host}:{self.port}"

    async def start_async(self) -> RackEmulator:
        """Start listening on the running event loop."""
        if self._finished:
            raise RuntimeError("this rack emulator was stopped: create a new one")
        self.port = await self._server.start(self.host, self.port)
        self.state.rack_url = self.rack_url
        self._started = True
        return self

    async def stop_async(self) -> None:
        """Stop the server started with ``start_async`` (cuts open connections) and delete its
        temporary files. A stopped emulator cannot be started again."""
        if self._started:
            await self._server.stop()
            self._started = False
        self._finished = True
        self._tmp.cleanup()

    async def serve(self) -> None:
        """Serve on the running loop until cancelled (for use inside an existing loop)."""
        if not self._started:
            await self.start_async()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop_async()

    def start(self, timeout: float = 10.0) -> RackEmulator:
        """Run the server in a background thread; returns once it is listening."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        errors: list[BaseException] = []

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            try:
                await self.start_async()
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                return
            ready.set()
            try:
                await self._stopping.wait()
            finally:
                await self.stop_async()

        self._thread = threading.Thread(
            target=asyncio.run, args=(main(),), name="convox-rack-emulator", daemon=True
        )
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError("the rack emulator did not start in time")
        if errors:
            self._thread.join()
            self._thread = None
            raise errors[0]
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the background server, join its thread and delete its temporary files."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is not None and loop is not None and stopping is not None:
            loop.call_soon_threadsafe(stopping.set)
            thread.join(timeout)
        self._thread = None
        self._finished = True
        self._tmp.cleanup()

    def __enter__(self) -> RackEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- seeding (no HTTP) -----------------------------------------------------------------

    def create_app(self, name: str, *, running: bool = True) -> dict[str, Any]:
        """Create an app; ``running=True`` skips the initial ``updating`` rollout."""
        return self.state.app_create(name, settled=running)

    def add_release(
        self,
        app: str,
        manifest: str,
        *,
        env: Mapping[str, str] | str | None = None,
        description: str = "",
        promote: bool = True,
        entrypoint: str = "",
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A completed build of ``manifest`` plus its release; promoted and settled by default.

        Returns ``(build, release)`` as the API would render them. ``env`` replaces the forked
        environment (mapping or raw ``KEY=VALUE`` text).
        """
        env_text = render_env(dict(env)) if isinstance(env, Mapping) else env
        return self.state.seed_release(
            app,
            manifest,
            env=env_text,
            description=description,
            promote=promote,
            entrypoint=entrypoint,
        )

    def set_env(
        self, app: str, env: Mapping[str, str] | str, *, promote: bool = True
    ) -> dict[str, Any]:
        """A new release with this whole environment, forked from the newest release."""
        env_text = render_env(dict(env)) if isinstance(env, Mapping) else env
        return self.state.seed_env(app, env_text, promote=promote)

    def put_object(self, app: str, key: str, data: bytes) -> str:
        """Store an object; returns its ``object://`` URL."""
        return self.state.object_store_bytes(app, key, data)

    def put_file(self, app: str, pid: str, path: str, data: bytes | str) -> None:
        """Seed a file into a process (what ``convox cp`` and its shell then see)."""
        raw = data.encode() if isinstance(data, str) else data
        self.state.files.put_file(app, pid, path, raw)

    def files(self, app: str, pid: str) -> dict[str, bytes]:
        """A process's files (absolute path -> content): copied in, or written by its shell."""
        return self.state.files.files(app, pid)

    def emit_log(self, app: str, message: str | bytes, *, service: str = "", pod: str = "") -> None:
        """Append a line to the app's logs (stream ``service/<service>/<pod>``)."""
        self.state.emit_log(app, message, service=service, pod=pod)

    # --- observation -----------------------------------------------------------------------

    def app(self, name: str) -> dict[str, Any]:
        """The app as ``GET /apps/{name}`` renders it."""
        return self.state.app_get(name)

    def processes(self, app: str) -> list[dict[str, Any]]:
        """The app's processes as ``GET /apps/{app}/processes`` renders them."""
        return self.state.process_list(app)

    def releases(self, app: str, limit: int = 100) -> list[dict[str, Any]]:
        """The app's releases, newest first."""
        return self.state.release_list(app, limit)

    def builds(self, app: str, limit: int = 100) -> list[dict[str, Any]]:
        """The app's builds, newest first."""
        return self.state.build_list(app, limit)

    @property
    def execs(self) -> list[ExecRecord]:
        """Every exec received (command, argv, tty, stdin bytes, exit code)."""
        return list(self.state.execs)
