"""Processes as a rack runs them: injected environment, files, the shell (issue 15, 2-4)."""

from __future__ import annotations

import io
import tarfile
import time

import httpx
import pytest

from convox_provider.testing import CommandResult, RackEmulator

from .conftest import basic
from .wsraw import TEXT, RawWebSocket, text

MARKER = b"F1E49A85-0AD7-4AEF-A618-C249C6E6568D"


def _pod(http: httpx.Client, service: str = "web") -> str:
    run = http.post(f"/apps/demo/services/{service}/processes", headers={"Command": "sleep 3600"})
    return str(run.json()["id"])


def _exec(
    rack: RackEmulator, pid: str, command: str, stdin: bytes | None = None
) -> tuple[bytes, int]:
    """Output and exit code of an exec (``stdin`` sent then closed, as ``echo x | convox exec``)."""
    headers = {"Authorization": basic(), "Command": command, "Tty": "false"}
    if stdin is None:
        headers["Disable-Stdin"] = "true"
    with RawWebSocket(rack.url, f"/apps/demo/processes/{pid}/exec", headers) as ws:
        if stdin is not None:
            ws.send_frame(TEXT, stdin)
            ws.send_frame(0x2, b"")
        output = text(ws.frames_until_end())
    body, _, code = output.rpartition(MARKER + b":")
    return body, int(code)


# --- 2: the environment the rack injects ---------------------------------------------------


def test_processes_get_the_rack_injected_environment(
    rack: RackEmulator, http: httpx.Client, demo: dict[str, str]
) -> None:
    pid = _pod(http)
    out, code = _exec(rack, pid, "env")
    env = dict(line.split("=", 1) for line in out.decode().splitlines())
    assert code == 0
    assert env["APP"] == "demo"
    assert env["SERVICE"] == "web"
    assert env["PORT"] == "3000"
    assert env["RACK"] == "emulator"
    assert env["RACK_URL"] == rack.rack_url
    assert env["RELEASE"] == demo["release"]
    assert env["BUILD"] == demo["build"]
    assert env["BUILD_DESCRIPTION"] == "seed"
    assert env["GLOBAL"] == "default"  # the manifest's own variables still come through
    out, _ = _exec(rack, pid, "sh -c 'echo $RELEASE/$BUILD'")
    assert out == f"{demo['release']}/{demo['build']}\n".encode()


def test_service_replicas_and_worker_runs_have_it_too(
    rack: RackEmulator, http: httpx.Client, demo: dict[str, str]
) -> None:
    out, _ = _exec(rack, "web", "printenv SERVICE")  # a running replica, picked by service
    assert out == b"web\n"
    worker = _pod(http, "worker")
    out, _ = _exec(rack, worker, "sh -c 'echo $SERVICE:$PORT.'")
    assert out == b"worker:.\n"  # no port, no PORT
    captured: list[dict[str, str]] = []
    rack.scripts.on_command(
        "bin/migrate", lambda inv: captured.append(dict(inv.environment)) or CommandResult()
    )
    http.post("/apps/demo/services/worker/processes", headers={"Command": "bin/migrate"})
    deadline = time.monotonic() + 5
    while not captured and time.monotonic() < deadline:
        http.get("/apps/demo/processes")  # the run starts on the rack's clock
        time.sleep(0.02)
    assert captured[0]["RELEASE"] == demo["release"]
    assert captured[0]["APP"] == "demo"


# --- 3: files in and out of processes ------------------------------------------------------


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _untar(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def test_cp_into_and_out_of_a_process(
    rack: RackEmulator, http: httpx.Client, demo: dict[str, str]
) -> None:
    pid = _pod(http)
    url = f"/apps/demo/processes/{pid}/files"
    # ``convox cp ./seed.sql PID:/app/seed.sql``: a tar rebased on the destination, extracted at /
    uploaded = http.post(url, content=_tar({"/app/seed.sql": b"select 1;\n"}))
    assert (uploaded.status_code, uploaded.text) == (200, "ok\n")
    assert rack.files("demo", pid) == {"/app/seed.sql": b"select 1;\n"}
    out, _ = _exec(rack, pid, "cat /app/seed.sql")
    assert out == b"select 1;\n"
    # ``convox cp PID:/app ./out``: ``tar -cf - /app``, member names without the leading slash
    rack.put_file("demo", pid, "/app/report.txt", "rows: 3\n")
    downloaded = http.get(url, params={"file": "/app"})
    assert downloaded.headers["content-type"] == "application/octet-stream"
    assert _untar(downloaded.content) == {
        "app/report.txt": b"rows: 3\n",
        "app/seed.sql": b"select 1;\n",
    }
    assert _untar(http.get(url, params={"file": "/app/report.txt"}).content) == {
        "app/report.txt": b"rows: 3\n"
    }
    assert _untar(http.get(url, params={"file": "/nothing"}).content) == {}
    assert http.delete(url, params={"files": "/app/seed.sql"}).text == "ok\n"
    assert list(rack.files("demo", pid)) == ["/app/report.txt"]


def test_files_of_a_missing_process_and_of_a_gone_one(
    rack: RackEmulator, http: httpx.Client, demo: dict[str, str]
) -> None:
    missing = http.get("/apps/demo/processes/web-nope/files", params={"file": "/x"})
    assert (missing.status_code, missing.text) == (500, 'pods "web-nope" not found\n')
    pid = _pod(http)
    rack.put_file("demo", pid, "x", b"1")
    assert rack.files("demo", pid) == {"/x": b"1"}
    http.delete(f"/apps/demo/processes/{pid}")
    with pytest.raises(Exception, match="not found"):
        rack.files("demo", pid)


# --- 4: the shell --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    [
        ('sh -c "echo a; echo b >&2; exit 2"', b"a\nb\n", 2),
        ("sh -c 'false && echo no || echo yes'", b"yes\n", 0),
        ("sh -c 'echo out; echo err 1>&2' ", b"out\nerr\n", 0),
        ("sh -c 'bin/x 2>&1 >/dev/null; echo $?'", b"0\n", 0),
        ("sh -c 'echo one; echo two | grep t | wc -l'", b"one\n1\n", 0),
        ("sh -c 'A=1; export B=2; echo \"$A $B\" ${A}x'", b"1 2 1x\n", 0),
        ("sh -c 'grep missing /nope; echo $?'", b"1\n", 0),
        ("sh -c 'exit 300'", b"", 44),
        ("echo $B", b"$B\n", 0),  # no shell, no expansion: as the rack runs it
        ("rake db:migrate", b"rake: emulated command (no script registered)\n", 0),
    ],
)
def test_the_shell(
    rack: RackEmulator, http: httpx.Client, demo: dict[str, str], case: tuple[str, bytes, int]
) -> None:
    command, output, code = case
    assert _exec(rack, _pod(http), command) == (output, code)


def test_redirection_into_the_process_files(
    rack: RackEmulator, http: httpx.Client, demo: dict[str, str]
) -> None:
    pid = _pod(http)
    script = (
        "sh -c 'echo v1 > /tmp/out; echo v2 >> /tmp/out; echo e 2> /tmp/err >&2; cat < /tmp/out'"
    )
    assert _exec(rack, pid, script) == (b"v1\nv2\n", 0)
    files = rack.files("demo", pid)
    assert files["/tmp/out"] == b"v1\nv2\n"
    assert files["/tmp/err"] == b"e\n"


def test_stdin_reaches_cat_and_sh(
    rack: RackEmulator, http: httpx.Client, demo: dict[str, str]
) -> None:
    pid = _pod(http)
    assert _exec(rack, pid, "cat", stdin=b"data\n") == (b"data\n", 0)
    assert _exec(rack, pid, "sh", stdin=b"echo from-stdin; exit 3\n") == (b"from-stdin\n", 3)
    assert _exec(rack, pid, "sh -c 'grep b | wc -l'", stdin=b"a\nb\nbb\n") == (b"2\n", 0)
    assert bytes(rack.execs[-1].stdin) == b"a\nb\nbb\n"


def test_scripted_commands_run_inside_the_shell(
    rack: RackEmulator, http: httpx.Client, demo: dict[str, str]
) -> None:
    rack.scripts.on_command("bin/migrate", output="migrating\n", exit_code=1)
    pid = _pod(http)
    assert _exec(rack, pid, "sh -c 'bin/migrate && echo done || echo failed; exit 5'") == (
        b"migrating\nfailed\n",
        5,
    )
    assert _exec(rack, pid, "sh -c 'bin/migrate > /log; echo $?'") == (b"1\n", 0)
    assert rack.files("demo", pid)["/log"] == b"migrating\n"
