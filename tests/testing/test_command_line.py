"""``python -m convox_provider.testing`` as shell pipelines run it (issue 15, 6-7; request log)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from .conftest import DOCKERFILE, basic, tgz
from .wsraw import RawWebSocket, text

FAST = ("--build-seconds", "0", "--rollout-seconds", "0.05", "--process-seconds", "0.02")
MARKER = b"F1E49A85-0AD7-4AEF-A618-C249C6E6568D"
SCRIPTS = """\
commands:
  - command: bin/migrate
    output: "migrating\\n"
    exit_code: 3
    duration: 0
builds:
  - app: demo
    fail: compile error
promotes:
  - app: demo
    reason: Error
"""


@contextmanager
def _emulator(*args: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "convox_provider.testing", "--app", "demo", *args, *FAST],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().rsplit(" ", 1)[1].strip()
        assert process.stdout.readline().startswith("RACK_URL=")
        port = process.stdout.readline().strip()
        assert port == f"PORT={url.rsplit(':', 1)[1]}"  # --port 0: the chosen port is printed
        yield url, process
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def _exec(url: str, pid: str, command: str) -> tuple[bytes, int]:
    headers = {"Authorization": basic(), "Command": command, "Tty": "false"}
    with RawWebSocket(
        url, f"/apps/demo/processes/{pid}/exec", {**headers, "Disable-Stdin": "1"}
    ) as ws:
        body, _, code = text(ws.frames_until_end()).rpartition(MARKER + b":")
    return body, int(code)


def _wait(check: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _sleep_pod(http: httpx.Client) -> str:
    pid = str(
        http.post("/apps/demo/services/web/processes", headers={"Command": "sleep 60"}).json()["id"]
    )
    _wait(lambda: http.get(f"/apps/demo/processes/{pid}").json()["status"] == "running")
    return pid


def test_a_scripts_file_fails_builds_promotes_and_commands(tmp_path: Path) -> None:
    scripts = tmp_path / "scripts.yml"
    scripts.write_text(SCRIPTS)
    with (
        _emulator("--scripts", str(scripts)) as (url, _),
        httpx.Client(base_url=url, auth=("convox", "password"), timeout=10) as http,
    ):
        source = tgz(
            {"convox.yml": b"services:\n  web:\n    port: 3000\n", "Dockerfile": DOCKERFILE}
        )
        obj = http.post("/apps/demo/objects/tmp/s.tgz", content=source).json()["Url"]
        build = http.post("/apps/demo/builds", data={"url": obj}).json()
        _wait(lambda: http.get(f"/apps/demo/builds/{build['id']}").json()["status"] != "running")
        failed = http.get(f"/apps/demo/builds/{build['id']}").json()
        assert (failed["status"], failed["release"]) == ("failed", "")
        log = http.get(f"/apps/demo/objects/build/{build['id']}/logs").text
        assert log.endswith("ERROR: compile error\n")

        before = http.get("/apps/demo").json()["release"]
        newer = http.post("/apps/demo/releases", data={"env": "A=1"}).json()
        http.post(f"/apps/demo/releases/{newer['id']}/promote")
        _wait(lambda: http.get("/apps/demo").json()["status"] == "rollback")
        _wait(lambda: http.get("/apps/demo").json()["status"] == "running")
        assert http.get("/apps/demo").json()["release"] == before

        pid = _sleep_pod(http)
        assert _exec(url, pid, "bin/migrate") == (b"migrating\n", 3)
        assert _exec(url, pid, "sh -c 'bin/migrate || echo failed'") == (
            b"migrating\nfailed\n",
            0,
        )


def test_the_admin_route_arms_scripts_at_run_time_and_shows_requests(tmp_path: Path) -> None:
    log_file = tmp_path / "requests.jsonl"
    with (
        _emulator("--request-log", str(log_file)) as (url, _),
        httpx.Client(base_url=url, auth=("convox", "password"), timeout=10) as http,
    ):
        pid = _sleep_pod(http)
        assert (
            _exec(url, pid, "bin/seed")[0] == b"bin/seed: emulated command (no script registered)\n"
        )
        body = json.dumps(
            {"commands": [{"regex": "bin/seed .*", "output": "seeded\n", "times": 1}]}
        )
        armed = httpx.post(url + "/_emulator/scripts", content=body)  # no credentials needed
        assert (armed.status_code, armed.json()) == (200, {"armed": {"commands": 1}})
        assert _exec(url, pid, "bin/seed --all") == (b"seeded\n", 0)
        assert _exec(url, pid, "bin/seed --all")[0].endswith(
            b"emulated command (no script registered)\n"
        )
        bad = httpx.post(url + "/_emulator/scripts", content="commands:\n  - comand: x\n")
        assert (bad.status_code, bad.text) == (400, "scripts: commands[0]: unknown key 'comand'\n")
        httpx.post(
            url + "/_emulator/scripts", content="commands:\n  - command: bin/x\n    exit_code: 4\n"
        )
        assert httpx.delete(url + "/_emulator/scripts").text == "ok\n"
        assert _exec(url, pid, "bin/x")[1] == 0  # cleared

        records = httpx.get(url + "/_emulator/requests").json()
        assert not any(r["path"].startswith("/_emulator") for r in records)
        execs = httpx.get(
            url + "/_emulator/requests", params={"path": "/apps/demo/processes/*/exec"}
        )
        assert [(r["method"], r["status"], r["websocket"]) for r in execs.json()] == [
            ("GET", 101, True)
        ] * 4
        assert httpx.get(url + "/_emulator/nothing").status_code == 404
        assert httpx.put(url + "/_emulator/requests").status_code == 405
    written = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [r["path"] for r in written] == [r["path"] for r in records]
    assert set(written[0]) == {
        "time",
        "method",
        "path",
        "query",
        "status",
        "fault",
        "websocket",
        "request_id",
    }


def _other_address() -> str | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this picks the outgoing address
            address = str(probe.getsockname()[0])
    except OSError:
        return None
    return None if address.startswith("127.") else address


def test_the_admin_route_answers_loopback_only() -> None:
    address = _other_address()
    if address is None:
        pytest.skip("no non-loopback address on this machine")
    with _emulator("--host", "0.0.0.0") as (url, _):
        port = url.rsplit(":", 1)[1]
        remote = httpx.get(f"http://{address}:{port}/_emulator/requests")
        assert (remote.status_code, remote.text) == (
            403,
            "the emulator's admin routes answer loopback clients only\n",
        )
        assert httpx.get(f"http://127.0.0.1:{port}/_emulator/requests").status_code == 200


def _fails(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "convox_provider.testing", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr  # one line, no traceback
    return done.stderr


def test_a_busy_port_is_one_clear_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert _fails("--port", str(port)) == (
            f"convox-emulator: error: port {port} on 127.0.0.1 is already in use\n"
        )


def test_a_bad_scripts_file_is_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("builds:\n  - fail: x\n    ap: demo\n")
    assert _fails("--scripts", str(bad)) == (
        "convox-emulator: error: scripts: builds[0]: unknown key 'ap'\n"
    )
    assert _fails("--scripts", str(tmp_path / "none.yml")).startswith(
        f"convox-emulator: error: {tmp_path / 'none.yml'}: No such file"
    )
