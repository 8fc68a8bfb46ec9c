"""A real Airflow on loopback: PostgreSQL, Redis and Airflow's own processes, each one by its PID.

Everything lives in one temporary directory: the PostgreSQL cluster (Debian's binaries, started
on a free port as the ``postgres`` user when run as root), Redis (Debian's ``redis-server``, on a
free port, no persistence), ``AIRFLOW_HOME`` and one log file per process. Every process this
module starts is a :class:`Service`; :meth:`Service.stop` ends it and every process below it (found
through ``/proc`` before the first signal), SIGTERM first and SIGKILL after a grace period.
Services also die with the test process (``PR_SET_PDEATHSIG``), so a killed pytest leaves nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
DAGS = Path(__file__).resolve().parent / "dags"
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl


def _die_with_parent() -> None:
    """preexec_fn: SIGKILL this child when the process that started it dies. (Only a call
    into libc, looked up before any fork: safe in a child of a threaded process.)"""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def children_of(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from /proc), deepest last."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            parents.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def rss_kib(pids: list[int]) -> int:
    """Summed VmRSS of ``pids`` in KiB (processes gone meanwhile count 0)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> list[int]:
    """Send ``sig`` to ``pid`` and all its descendants at once; the PIDs signalled."""
    pids = [pid, *children_of(pid)]
    for one in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(one, sig)
    return pids


class Service:
    """One process started by the harness, its output in ``log``; stopped by its PID, always."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        env: Mapping[str, str],
        log: Path,
        user: str | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.log = log
        self.output = log.open("ab")
        self.process = subprocess.Popen(
            argv,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=self.output,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            user=user,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - see _die_with_parent
        )
        self.pid = self.process.pid
        #: Set by a scenario that kills this process on purpose.
        self.expected_dead = False

    def alive(self) -> bool:
        return self.process.poll() is None

    def tree(self) -> list[int]:
        """This process and its live descendants."""
        return [self.pid, *children_of(self.pid)] if self.alive() else []

    def kill(self) -> list[int]:
        """SIGKILL the whole process tree at once, as a lost machine would; reap it."""
        self.expected_dead = True
        pids = kill_tree(self.pid)
        self.process.wait(timeout=30)
        self.output.close()
        return pids

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM, then SIGKILL whatever of the tree is left after ``grace`` seconds."""
        self.expected_dead = True
        if self.alive():
            below = children_of(self.pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            for pid in below:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.output.close()

    def tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


def stop_all(services: list[Service], grace: float = 10.0) -> None:
    """Stop ``services`` together (SIGTERM to each, one shared grace period, then SIGKILL)."""
    below = {service.pid: children_of(service.pid) for service in services if service.alive()}
    for service in services:
        if service.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(service.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for service in services:
        try:
            service.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait(timeout=10)
        service.output.close()
    for pids in below.values():
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def wait_until(
    check: Callable[[], Any], *, timeout: float, interval: float = 0.25, what: str = "condition"
) -> Any:
    """Call ``check`` until it returns something truthy, and return that (or TimeoutError)."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except (httpx.HTTPError, OSError) as error:
            last_error = error
        else:
            if value:
                return value
        time.sleep(interval)
    raise TimeoutError(f"{what}: not reached within {timeout:.0f} s (last error: {last_error})")


def _pg_bin() -> Path:
    found = sorted(Path("/").glob(PG_BIN_GLOB.lstrip("/")))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql (see .ci/run)")
    return found[-1]


class Postgres:
    """A throwaway PostgreSQL cluster on 127.0.0.1:``port``, database ``airflow``, trust auth."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.user = "postgres" if os.geteuid() == 0 else None
        data = root / "pgdata"
        data.mkdir()
        if self.user:
            shutil.chown(data, self.user)
        bin_dir = _pg_bin()
        subprocess.run(
            [
                str(bin_dir / "initdb"),
                *("-D", str(data), "-U", "airflow", "--auth=trust", "-E", "UTF8"),
                *("--no-sync", "--no-instructions"),
            ],
            check=True,
            capture_output=True,
            user=self.user,
        )
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(data),
            "max_connections": "300",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        args = [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
        self.service = Service(
            "postgres",
            [str(bin_dir / "postgres"), "-D", str(data), *args],
            env={"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"},
            log=root / "postgres.log",
            user=self.user,
        )
        wait_until(self._ready, timeout=30, what="PostgreSQL accepting connections")
        subprocess.run(
            [
                str(bin_dir / "createdb"),
                *("-h", "127.0.0.1", "-p", str(self.port), "-U", "airflow", "airflow"),
            ],
            check=True,
            capture_output=True,
        )

    def _ready(self) -> bool:
        with socket.socket() as sock:
            sock.settimeout(1)
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://airflow@127.0.0.1:{self.port}/airflow"


class Redis:
    """Debian's redis-server on 127.0.0.1:``port``, nothing saved to disk."""

    def __init__(self, root: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: apt-get install redis-server")
        self.port = free_port()
        self.service = Service(
            "redis",
            [
                binary,
                *("--port", str(self.port), "--bind", "127.0.0.1", "--save", ""),
                *("--appendonly", "no", "--dir", str(root)),
            ],
            env={"PATH": os.environ.get("PATH", "")},
            log=root / "redis.log",
        )

        def ready() -> bool:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")

        wait_until(ready, timeout=20, what="Redis answering PING")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


class Api:
    """The Airflow REST API (v2) as the admin user; every call raises on an HTTP error."""

    def __init__(self, base: str, password: str) -> None:
        self.base = base
        self._password = password
        self._client = httpx.Client(base_url=base, timeout=60)
        self._token: str | None = None

    def login(self) -> None:
        answer = self._client.post(
            "/auth/token", json={"username": "admin", "password": self._password}
        )
        answer.raise_for_status()
        self._token = answer.json()["access_token"]
        self._client.headers["Authorization"] = f"Bearer {self._token}"

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self._client.request(method, f"/api/v2{path}", **kwargs)

    def get(self, path: str, **params: Any) -> Any:
        answer = self.request("GET", path, params=params or None)
        answer.raise_for_status()
        return answer.json()

    def post(self, path: str, body: Any) -> Any:
        answer = self.request("POST", path, json=body)
        answer.raise_for_status()
        return answer.json()

    def patch(self, path: str, body: Any) -> Any:
        answer = self.request("PATCH", path, json=body)
        answer.raise_for_status()
        return answer.json()

    def close(self) -> None:
        self._client.close()


class Airflow:
    """Airflow's processes on one metadata DB: scheduler, dag-processor, triggerer(s),
    api-server and (on demand) Celery workers, sharing one configuration (``env``)."""

    def __init__(self, root: Path, *, db_url: str, broker_url: str, extra_env: Mapping[str, str]):
        self.root = root
        self.home = root / "airflow-home"
        self.home.mkdir()
        self.logs = root / "process-logs"
        self.logs.mkdir()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.password = secrets.token_urlsafe(16)
        passwords = self.home / "passwords.json"
        passwords.write_text(json.dumps({"admin": self.password}))
        from cryptography.fernet import Fernet

        self.env: dict[str, str] = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
            "PYTHONPATH": str(REPO),
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor,CeleryExecutor",
            "AIRFLOW__CORE__PARALLELISM": "48",
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "48",
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__API__WORKERS": "1",
            # A dead triggerer's triggers move to a live one after this many seconds.
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "6",
            # A task whose worker vanished (no heartbeat) fails, and is retried, this soon.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "15",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "3",
            # The supervisor reports a deferred try's exit up to this long after the deferral.
            # Airflow 3.3.2 fails a task whose trigger fired and which was queued again before
            # that report came ("finished with state success, but the task instance's state
            # attribute is queued"): waits shorter than the default 5 s would hit that race.
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "120",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__CELERY__BROKER_URL": broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + db_url,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            **extra_env,
        }
        self.services: list[Service] = []
        self.api = Api(self.url, self.password)
        self._airflow = str(Path(sys.executable).with_name("airflow"))

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """An ``airflow`` CLI command, to completion."""
        done = subprocess.run(
            [self._airflow, *args],
            env=self.env,
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"airflow {' '.join(args)} exited {done.returncode}:\n{done.stderr[-4000:]}"
            )
        return done

    def start(self, name: str, *args: str, env: Mapping[str, str] | None = None) -> Service:
        """``airflow <args>`` as a :class:`Service` logging to ``process-logs/<name>.log``."""
        service = Service(
            name,
            [self._airflow, *args],
            env={**self.env, **(env or {})},
            log=self.logs / f"{name}.log",
            cwd=self.root,
        )
        self.services.append(service)
        return service

    def start_all(self) -> None:
        self.run("db", "migrate")
        self.start("api-server", "api-server", "-H", "127.0.0.1", "-p", str(self.port), "-w", "1")
        self.start("scheduler", "scheduler", "--skip-serve-logs")
        self.start("dag-processor", "dag-processor")
        self.start("triggerer-1", "triggerer", "--skip-serve-logs")

    def wait_healthy(self, timeout: float = 120) -> None:
        """Until the API server reports the scheduler, triggerer and dag-processor healthy."""

        def healthy() -> bool:
            self.check_alive()
            answer = httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5)
            if answer.status_code != 200:
                return False
            health = answer.json()
            parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
            return all((health.get(part) or {}).get("status") == "healthy" for part in parts)

        wait_until(healthy, timeout=timeout, interval=0.5, what="Airflow healthy")
        self.api.login()

    def service(self, name: str) -> Service:
        (found,) = [service for service in self.services if service.name == name]
        return found

    def triggerers(self) -> list[Service]:
        return [s for s in self.services if s.name.startswith("triggerer") and s.alive()]

    def check_alive(self) -> None:
        for service in self.services:
            if not service.alive() and not service.expected_dead:
                raise RuntimeError(f"{service.name} exited:\n{service.tail()}")

    def stop(self) -> None:
        """Every service at once: SIGTERM to all, then SIGKILL what is left after the grace."""
        self.api.close()
        stop_all(self.services)

    def process_logs(self) -> Iterator[Path]:
        yield from sorted(self.logs.glob("*.log"))
