"""A real Airflow api-server and a real Chromium for the UI tests.

The api-server is ``airflow api-server`` in its own process group, with its own ``AIRFLOW_HOME``
(a fresh sqlite metadata DB from ``airflow db migrate``), ``[core] test_connection = Enabled``
(the Test button is disabled by default) and the simple auth manager, whose generated admin
password it writes to ``simple_auth_manager_passwords.json.generated``. The browser is Debian's
``/usr/bin/chromium`` driven by Playwright, which downloads no browser of its own. Both live for
one test module; the api-server's process group is stopped whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, StorageState, ViewportSize, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
#: As root on a machine without network: no sandbox, no GPU, nothing fetched in the background.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
#: Seconds for ``airflow db migrate`` and for the api-server to answer its health check.
MIGRATE_TIMEOUT = 300.0
STARTUP_TIMEOUT = 120.0
AIRFLOW_CLI = (sys.executable, "-m", "airflow")
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"
#: Tall enough to show the whole Add Connection dialog; Playwright's timeout for each step.
VIEWPORT: ViewportSize = {"width": 1100, "height": 1600}
TIMEOUT_MS = 20_000


@dataclass(frozen=True)
class AirflowUI:
    """A running ``airflow api-server``: its URL, home and admin login."""

    url: str
    home: Path
    log: Path
    username: str
    password: str = field(repr=False)

    def log_tail(self, lines: int = 40) -> str:
        """The end of the api-server's log, for failure messages."""
        return _tail(self.log, lines)


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Debian's Chromium; skipped without it outside CI (CI installs it and must run the tests)."""
    if not CHROMIUM.exists():
        if _ci():
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium first")
        pytest.skip(
            f"no {CHROMIUM}: the UI tests drive Debian's Chromium "
            "(apt-get install chromium); CI installs it and runs them"
        )
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Browser]:
    """Headless Chromium under Playwright."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def signed_in(browser: Browser, airflow_ui: AirflowUI) -> StorageState:
    """Sign in once through the login form; every test's page starts with that session."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        login = context.new_page()
        login.goto(f"{airflow_ui.url}/")
        login.wait_for_url("**/auth/login**")
        login.get_by_label("Username").fill(airflow_ui.username)
        login.get_by_label("Password").fill(airflow_ui.password)
        login.get_by_role("button", name="Sign in").click()
        login.wait_for_url(lambda url: "/auth/login" not in url)
        return context.storage_state()
    finally:
        context.close()


@pytest.fixture
def page(browser: Browser, airflow_ui: AirflowUI, signed_in: StorageState) -> Iterator[Page]:
    """A page of a fresh browser context holding the admin's session, on Airflow's home page."""
    context = browser.new_context(viewport=VIEWPORT, storage_state=signed_in)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        home = context.new_page()
        home.goto(f"{airflow_ui.url}/")
        yield home
    finally:
        context.close()


@pytest.fixture(scope="module")
def airflow_ui(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowUI]:
    """``airflow api-server`` on a free loopback port, with a migrated DB of its own."""
    home = tmp_path_factory.mktemp("airflow-ui-home")
    (home / "dags").mkdir()
    env = _airflow_env(home)
    migrate = subprocess.run(
        [*AIRFLOW_CLI, "db", "migrate"],
        env=env,
        cwd=home,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=MIGRATE_TIMEOUT,
        check=False,
    )
    if migrate.returncode != 0:
        pytest.fail(f"airflow db migrate exited {migrate.returncode}:\n{migrate.stdout[-4000:]}")

    port = _free_port()
    log = home / "api-server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*AIRFLOW_CLI, "api-server", "-H", "127.0.0.1", "-p", str(port), "-w", "1"],
            env=env,
            cwd=home,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        password = _wait_until_ready(server, url, home / PASSWORDS_FILE, log)
        yield AirflowUI(url=url, home=home, log=log, username="admin", password=password)
    finally:
        _stop_process_group(server)


def _airflow_env(home: Path) -> dict[str, str]:
    """This process's environment without its Airflow settings, pointed at ``home``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))
    }
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__TEST_CONNECTION="Enabled",
    )
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _wait_until_ready(server: subprocess.Popen[bytes], url: str, passwords: Path, log: Path) -> str:
    """Wait for a healthy metadata DB and the generated admin password; return the password."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    with httpx.Client(trust_env=False, timeout=2.0) as http:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                pytest.fail(f"airflow api-server exited {server.returncode}:\n{_tail(log)}")
            with contextlib.suppress(httpx.TransportError, OSError, ValueError, KeyError):
                health = http.get(f"{url}/api/v2/monitor/health")
                if health.status_code == 200:
                    return str(json.loads(passwords.read_text())["admin"])
            time.sleep(0.25)
    pytest.fail(f"airflow api-server not ready after {STARTUP_TIMEOUT:.0f} s:\n{_tail(log)}")


def _stop_process_group(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM the api-server's process group, then SIGKILL whatever is left after 20 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline and _group_alive(server):
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)
    server.wait(timeout=10.0)


def _group_alive(server: subprocess.Popen[bytes]) -> bool:
    server.poll()  # reap the leader, or its zombie keeps the group alive
    try:
        os.killpg(server.pid, 0)
    except ProcessLookupError:
        return False
    return True


def _tail(log: Path, lines: int = 40) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])
