"""The official CLI's call sequences (docs/rack-api.md §7), replayed with raw httpx and websockets.

Each test sends what the Go CLI sends, in its order, with its headers, and checks the answers
are what the CLI expects. Waits use the CLI's algorithms with intervals scaled down.
"""

from __future__ import annotations

import io
import secrets
import tarfile
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

from convox_provider.testing import CommandResult, RackEmulator, Timing
from convox_provider.testing.plugin import RackFactory

from .conftest import MANIFEST

MARKER = b"F1E49A85-0AD7-4AEF-A618-C249C6E6568D"
INTERVAL = 0.02
# What sdk.go (stdsdk) adds to every plain request, bodiless ones included.
CLI_GET = {"Accept": "*/*", "Content-Type": "application/octet-stream"}


class Rollback(Exception):
    """The CLI's ``rollback`` error."""


class GoCli:
    """The HTTP and WebSocket calls of the Go CLI (headers of *convox/convox sdk/sdk.go*)."""

    def __init__(self, rack: RackEmulator) -> None:
        self.rack = rack
        self.http = httpx.Client(
            base_url=rack.url,
            auth=("convox", rack.password or ""),
            headers={"User-Agent": "convox.go/dev", "Version": "dev", "Accept": "*/*"},
            timeout=10,
        )

    def socket(self, path: str, headers: dict[str, str] | None = None) -> ClientConnection:
        """Open a SOCKET route; like sdk.go, first ``GET /machines`` (answer ignored)."""
        self.http.get("/machines", headers=CLI_GET)
        ws_url = self.rack.url.replace("http://", "ws://") + path
        auth = httpx.BasicAuth("convox", self.rack.password or "")._auth_header
        return connect(
            ws_url,
            additional_headers={
                "Authorization": auth,
                "User-Agent": "convox.go/dev",
                "Version": "dev",
                **(headers or {}),
            },
            origin=Origin(self.rack.url),
            compression=None,
            ping_interval=None,
            close_timeout=0.01,
        )

    def stream(self, path: str, headers: dict[str, str] | None = None) -> bytes:
        """Copy a socket's text frames until the empty binary frame (what the CLI prints)."""
        out = bytearray()
        with self.socket(path, headers) as ws:
            while True:
                frame = ws.recv(decode=False)
                if frame == b"":
                    return bytes(out)
                out.extend(frame)

    def wait_app_running(self, app: str) -> None:
        """WaitForAppRunning: two consecutive ``running``; fail after seeing ``rollback``."""
        time.sleep(INTERVAL)
        successes, rolled_back = 0, False
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(INTERVAL)
            status = self.http.get(f"/apps/{app}").json()["status"]
            if rolled_back:
                raise Rollback("rollback")
            if status == "rollback":
                rolled_back = True
            successes = successes + 1 if status == "running" else 0
            if successes == 2:
                return
        raise AssertionError("timeout")

    def promote(self, app: str, release: str, *, force: bool = False) -> None:
        """releasePromote (§7.4) without the log printing."""
        if self.http.get(f"/apps/{app}").json()["status"] != "running" and not force:
            self.wait_app_running(app)
        response = self.http.post(
            f"/apps/{app}/releases/{release}/promote", data={"force": str(force).lower()}
        )
        assert (response.status_code, response.text) == (200, "ok\n")
        self.wait_app_running(app)
        if self.http.get(f"/apps/{app}").json()["release"] != release:
            raise Rollback("rollback")


@pytest.fixture
def cli(convox_rack_factory: RackFactory) -> Iterator[GoCli]:
    rack = convox_rack_factory(timing=Timing(build=0.1, rollout=0.05, process_start=0.02))
    client = GoCli(rack)
    yield client
    client.http.close()


def _archive() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in {
            ".": None,
            "./convox.yml": MANIFEST.encode(),
            "./Dockerfile": b"FROM scratch\n",
        }.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _apps_create(cli: GoCli, name: str) -> None:
    created = cli.http.post("/apps", data={"name": name, "generation": "2"})
    assert created.json()["name"] == name
    cli.wait_app_running(name)


def _build(cli: GoCli, app: str) -> dict[str, Any]:
    """``convox build`` (§7.1 steps 1-8) of a build that must succeed; returns the final build."""
    build, log = _build_attempt(cli, app)
    push = f"Running: docker push {cli.rack.state.registry(app)}:worker.{build['id']}\n"
    assert log.endswith(push.encode())
    assert b"ERROR" not in log
    return build


def _build_attempt(cli: GoCli, app: str) -> tuple[dict[str, Any], bytes]:
    """``convox build`` (§7.1 steps 1-8); the final build and everything the CLI printed."""
    assert cli.http.get("/system").json()["version"] == "3.24.9"
    key = f"tmp/{secrets.token_hex(15)}.tgz"
    stored = cli.http.post(
        f"/apps/{app}/objects/{key}",
        content=_archive(),
        headers={"Content-Type": "application/octet-stream"},
    ).json()
    assert stored == {"Url": f"object://{app}/{key}"}
    build = cli.http.post(
        f"/apps/{app}/builds",
        data={
            "url": stored["Url"],
            "description": "build 1a2b3c4d5e fix login",
            "git-sha": "1a2b3c4d5e6f",
        },
    ).json()
    assert build["status"] == "running"
    printed = cli.stream(f"/apps/{app}/builds/{build['id']}/logs")
    while True:
        time.sleep(INTERVAL)
        build = cli.http.get(f"/apps/{app}/builds/{build['id']}").json()
        if build["status"] in ("created", "running"):
            continue
        break
    again = cli.stream(f"/apps/{app}/builds/{build['id']}/logs")
    assert again.startswith(printed)
    return build, again


def test_apps_create_and_list(cli: GoCli) -> None:
    _apps_create(cli, "myapp")
    apps = cli.http.get("/apps").json()
    assert [(a["name"], a["status"], a["release"]) for a in apps] == [("myapp", "running", "")]


def test_build_then_deploy(cli: GoCli) -> None:
    _apps_create(cli, "myapp")
    build = _build(cli, "myapp")
    assert build["status"] == "complete"
    assert build["release"].startswith("R")
    cli.promote("myapp", build["release"])
    services = cli.http.get("/apps/myapp/services").json()
    assert [(s["name"], s["count"]) for s in services] == [("web", 2), ("worker", 1)]
    assert cli.stream(f"/apps/myapp/builds/{build['id']}/logs").startswith(b"Building: .\n")


def test_env_set_promote(cli: GoCli) -> None:
    _apps_create(cli, "myapp")
    first = _build(cli, "myapp")
    cli.promote("myapp", first["release"])
    newest = cli.http.get("/apps/myapp/releases", params={"limit": "1"}).json()[0]
    current = cli.http.get(f"/apps/myapp/releases/{newest['id']}").json()["env"]
    env = dict(line.split("=", 1) for line in current.split("\n") if "=" in line)
    env["LOG_LEVEL"] = "debug"
    env["COLOR"] = "blue green"
    rendered = "\n".join(sorted(f"{k}={v}" for k, v in env.items()))
    cli.http.get("/system")
    release = cli.http.post("/apps/myapp/releases", data={"env": rendered}).json()
    assert release["description"] == "env add:COLOR add:LOG_LEVEL"
    assert release["build"] == first["id"]
    cli.promote("myapp", release["id"])
    assert (
        cli.http.get(f"/apps/myapp/releases/{release['id']}").json()["env"]
        == "COLOR=blue green\nLOG_LEVEL=debug"
    )


def test_releases_promote_detects_rollback(cli: GoCli) -> None:
    _apps_create(cli, "myapp")
    build = _build(cli, "myapp")
    cli.promote("myapp", build["release"])
    newer = cli.http.post("/apps/myapp/releases", data={"env": "A=1"}).json()
    cli.rack.scripts.fail_next_promote("myapp")
    with pytest.raises(Rollback):
        cli.promote("myapp", newer["id"])
    assert cli.http.get("/apps/myapp").json()["release"] == build["release"]


def test_releases_rollback(cli: GoCli) -> None:
    _apps_create(cli, "myapp")
    build = _build(cli, "myapp")
    cli.promote("myapp", build["release"])
    second = cli.http.post("/apps/myapp/releases", data={"env": "A=2"}).json()
    cli.promote("myapp", second["id"])
    old = cli.http.get(f"/apps/myapp/releases/{build['release']}").json()
    refused = cli.http.post(f"/apps/myapp/releases/{old['id']}/promote", data={"force": "false"})
    assert refused.text == "can not promote an older release, try rollback\n"
    rolled = cli.http.post(
        "/apps/myapp/releases", data={"build": old["build"], "env": old["env"]}
    ).json()
    assert rolled["description"] == "env remove:A"
    response = cli.http.post(
        f"/apps/myapp/releases/{rolled['id']}/promote", data={"force": "false"}
    )
    assert response.text == "ok\n"
    cli.wait_app_running("myapp")
    assert cli.http.get("/apps/myapp").json()["release"] == rolled["id"]


def test_run_attached(cli: GoCli) -> None:
    _apps_create(cli, "myapp")
    build = _build(cli, "myapp")
    cli.promote("myapp", build["release"])
    cli.rack.scripts.on_command(
        "python manage.py migrate",
        CommandResult(output=b"Applying 0001_initial... OK\n", exit_code=0),
    )
    pod = cli.http.post(
        "/apps/myapp/services/web/processes",
        headers={"Command": "sleep 3600", "Cpu": "256", "Memory": "512"},
    ).json()
    running = 0
    while running < 2:
        time.sleep(INTERVAL)
        running = (
            running + 1
            if cli.http.get(f"/apps/myapp/processes/{pod['id']}").json()["status"] == "running"
            else 0
        )
    try:
        output = cli.stream(
            f"/apps/myapp/processes/{pod['id']}/exec",
            {
                "Command": "python manage.py migrate",
                "Entrypoint": "true",
                "Tty": "false",
                "Height": "40",
                "Width": "120",
            },
        )
    finally:
        assert cli.http.delete(f"/apps/myapp/processes/{pod['id']}").text == "ok\n"
    before, _, code = output.partition(MARKER + b":")
    assert before == b"Applying 0001_initial... OK\n"
    assert int(code) == 0


def test_logs_no_follow(cli: GoCli) -> None:
    _apps_create(cli, "myapp")
    build = _build(cli, "myapp")
    cli.promote("myapp", build["release"])
    output = cli.stream("/apps/myapp/logs", {"Prefix": "true", "Since": "2m0s", "Follow": "false"})
    lines = output.decode().splitlines()
    assert any(
        line.split(" ", 2)[1:] == ["system/k8s/atom/app", "Status: Updating => Running"]
        for line in lines
    )


def test_scale(cli: GoCli) -> None:
    _apps_create(cli, "myapp")
    build = _build(cli, "myapp")
    cli.promote("myapp", build["release"])
    assert cli.http.put("/apps/myapp/services/web", data={"count": "4"}).text == "ok\n"
    assert cli.http.get("/apps/myapp").json()["status"] == "updating"
    cli.wait_app_running("myapp")
    assert len(cli.http.get("/apps/myapp/processes", params={"service": "web"}).json()) == 4


def test_builds_export_import(cli: GoCli) -> None:
    _apps_create(cli, "myapp")
    build = _build(cli, "myapp")
    archive = cli.http.get(f"/apps/myapp/builds/{build['id']}.tgz").content
    cli.http.get("/system")
    imported = cli.http.post(
        "/apps/myapp/builds/import",
        content=archive,
        headers={"Content-Type": "application/octet-stream"},
    ).json()
    assert (imported["status"], imported["release"][:1]) == ("complete", "R")


def _sleeping_pod(cli: GoCli, app: str) -> str:
    """``convox run`` steps 1-2 (§7.6): a ``sleep 3600`` pod, polled until running twice."""
    pod = cli.http.post(
        f"/apps/{app}/services/web/processes",
        headers={**CLI_GET, "Command": "sleep 3600"},
    ).json()
    running = 0
    while running < 2:
        time.sleep(INTERVAL)
        status = cli.http.get(f"/apps/{app}/processes/{pod['id']}", headers=CLI_GET).json()
        running = running + 1 if status["status"] == "running" else 0
    return str(pod["id"])


def _exec(cli: GoCli, app: str, pid: str, command: str) -> tuple[bytes, int]:
    """``convox run`` step 3 without a terminal: output and exit code."""
    output = cli.stream(
        f"/apps/{app}/processes/{pid}/exec",
        {"Command": command, "Entrypoint": "true", "Tty": "false"},
    )
    before, _, code = output.partition(MARKER + b":")
    return before, int(code)


def test_run_command_is_split_not_shelled(cli: GoCli) -> None:
    """``convox run web 'echo hi; exit 3'``: words split, no shell (§6.2), so it exits 0."""
    cli.rack.create_app("myapp")
    cli.rack.add_release("myapp", MANIFEST)
    pid = _sleeping_pod(cli, "myapp")
    try:
        assert _exec(cli, "myapp", pid, "echo hi; exit 3") == (b"hi; exit 3\n", 0)
        assert _exec(cli, "myapp", pid, "sh -c 'echo hi; exit 3'") == (b"hi\n", 3)
    finally:
        cli.http.delete(f"/apps/myapp/processes/{pid}", headers=CLI_GET)
    assert [(r.method, r.path) for r in cli.rack.requests.find(path="/machines")] == [
        ("GET", "/machines"),
        ("GET", "/machines"),
    ]


def test_ps_scale_services_read_the_budget(cli: GoCli) -> None:
    """``convox ps``/``scale``/``services`` read ``/budget``; unconfigured is two nulls.

    The CLI prints ``ns=cli_budget at=fetch-error …`` on stderr when this fails, which a
    real rack never makes it do (*pkg/cli/budget_status.go*).
    """
    cli.rack.create_app("myapp")
    cli.rack.add_release("myapp", MANIFEST)
    assert len(cli.http.get("/apps/myapp/processes", headers=CLI_GET).json()) == 3
    budget = cli.http.get("/apps/myapp/budget", headers=CLI_GET)
    assert (budget.status_code, budget.json()) == (200, {"config": None, "state": None})
    missing = cli.http.get("/apps/nope/budget", headers=CLI_GET)
    assert (missing.status_code, missing.text) == (404, "app not found: nope\n")


def test_failed_build_prints_no_success_lines(cli: GoCli) -> None:
    """A failing ``convox build`` stops in its first build step: no tag, no push."""
    cli.rack.create_app("myapp")
    cli.rack.scripts.fail_next_build("compile error", app="myapp")
    build, log = _build_attempt(cli, "myapp")
    assert build["status"] == "failed"
    size = len(MANIFEST.encode()) + len(b"FROM scratch\n")
    assert log == (
        b"Building: .\nSending build context to Docker daemon  %dB\n"
        b"Step 1/1 : FROM scratch\nERROR: compile error\n" % size
    )
