"""Timing transitions, startup, shutdown and upload memory."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator

import httpx

from convox_provider.client.client import ConvoxClient
from convox_provider.testing import RackEmulator, Timing
from convox_provider.testing.plugin import RackFactory
from convox_provider.testing.scriptfile import apply_scripts

from .conftest import DOCKERFILE, MANIFEST, tgz


def _client(rack: RackEmulator) -> httpx.Client:
    return httpx.Client(base_url=rack.url, auth=("convox", "password"))


def _wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("condition not reached")


def test_startup_is_well_under_a_second() -> None:
    started = time.perf_counter()
    rack = RackEmulator().start()
    elapsed = time.perf_counter() - started
    try:
        assert httpx.get(rack.url + "/check").text == "ok"
    finally:
        rack.stop()
    assert elapsed < 1.0


def test_stop_leaves_no_thread_or_socket() -> None:
    before = threading.active_count()
    rack = RackEmulator().start()
    port = rack.port
    held = socket.create_connection(("127.0.0.1", port))
    rack.stop()
    assert threading.active_count() == before
    held.settimeout(5)
    try:
        data = held.recv(10)
    except ConnectionResetError:
        data = b""
    assert data == b""
    held.close()
    probe = socket.socket()
    try:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    finally:
        probe.close()


def test_serve_inside_an_existing_loop() -> None:
    async def main() -> str:
        rack = await RackEmulator().start_async()
        task = asyncio.create_task(rack.serve())
        async with httpx.AsyncClient(auth=("convox", "password")) as client:
            text = (await client.get(rack.url + "/auth")).text
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return text

    assert asyncio.run(main()) == "ok\n"


def test_promote_rollout_transitions(convox_rack_factory: RackFactory) -> None:
    rack = convox_rack_factory(timing=Timing(rollout=0.3, process_start=0.1))
    rack.create_app("demo")
    rack.add_release("demo", MANIFEST)
    client = _client(rack)
    newer = client.post("/apps/demo/releases", data={"env": "A=1"}).json()
    client.post(f"/apps/demo/releases/{newer['id']}/promote")
    app = client.get("/apps/demo").json()
    assert (app["status"], app["release"]) == ("updating", newer["id"])
    pods = client.get("/apps/demo/processes", params={"release": newer["id"]}).json()
    assert {p["status"] for p in pods} == {"pending"}
    _wait_for(lambda: client.get("/apps/demo").json()["status"] == "running")
    assert client.get("/apps/demo").json()["release"] == newer["id"]
    remaining = {p["release"] for p in client.get("/apps/demo/processes").json()}
    assert remaining == {newer["id"]}


def test_scripted_rollout_failure_rolls_back(convox_rack_factory: RackFactory) -> None:
    rack = convox_rack_factory(timing=Timing(rollout=0.2))
    rack.create_app("demo")
    _, first = rack.add_release("demo", MANIFEST)
    client = _client(rack)
    rack.scripts.fail_next_promote("demo")
    newer = client.post("/apps/demo/releases", data={"env": "A=1"}).json()
    client.post(f"/apps/demo/releases/{newer['id']}/promote")
    seen: list[tuple[str, str]] = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        app = client.get("/apps/demo").json()
        if not seen or seen[-1] != (app["status"], app["release"]):
            seen.append((app["status"], app["release"]))
        if app["status"] == "running":
            break
        time.sleep(0.02)
    assert seen == [("updating", newer["id"]), ("rollback", first["id"]), ("running", first["id"])]


def test_a_scripted_crash_loop_keeps_the_failing_pods_listed_until_reverted(
    convox_rack_factory: RackFactory,
) -> None:
    rack = convox_rack_factory(timing=Timing(rollout=0.6, process_start=0.05))
    rack.create_app("demo")
    _, first = rack.add_release("demo", MANIFEST)
    client = _client(rack)
    # the same knob as the YAML scripts file's ``promotes: [{crash: [...], service: web}]``
    apply_scripts(
        rack.scripts,
        "promotes:\n  - app: demo\n    crash: ['Error: no DATABASE_URL']\n    service: web\n",
    )
    newer = client.post("/apps/demo/releases", data={"env": "A=1"}).json()
    client.post(f"/apps/demo/releases/{newer['id']}/promote")
    listed = f"/apps/demo/processes?release={newer['id']}"
    statuses: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        app = client.get("/apps/demo").json()
        pods = tuple((p["name"], p["status"]) for p in client.get(listed).json())
        if not statuses or statuses[-1] != (app["status"], pods):
            statuses.append((app["status"], pods))
        if app["status"] == "running":
            break
        time.sleep(0.02)
    crashed = (("web", "crashed"), ("web", "crashed"))
    assert ("updating", (*crashed, ("worker", "running"))) in statuses  # only web crashes
    assert ("rollback", crashed) in statuses  # still listed while the old one comes back
    assert statuses[-1] == ("running", ())  # gone once reverted
    assert client.get("/apps/demo").json()["release"] == first["id"]
    with ConvoxClient(rack.url, "password") as convox:  # the output and the k8s events
        log = b"".join(convox.apps.logs("demo", follow=False, since=60)).decode()
    assert log.count("Error: no DATABASE_URL") >= 2  # written at each restart
    assert "Back-off restarting failed container web" in log


def test_cancel_rolls_back(convox_rack_factory: RackFactory) -> None:
    rack = convox_rack_factory(timing=Timing(rollout=0.3))
    rack.create_app("demo")
    _, first = rack.add_release("demo", MANIFEST)
    client = _client(rack)
    newer = client.post("/apps/demo/releases", data={"env": "A=1"}).json()
    client.post(f"/apps/demo/releases/{newer['id']}/promote")
    assert client.post("/apps/demo/cancel").text == "ok\n"
    assert client.get("/apps/demo").json()["status"] == "rollback"
    _wait_for(lambda: client.get("/apps/demo").json()["status"] == "running")
    assert client.get("/apps/demo").json()["release"] == first["id"]


def test_promote_timeout_shorter_than_rollout_is_a_deadline(
    convox_rack_factory: RackFactory,
) -> None:
    rack = convox_rack_factory(timing=Timing(rollout=5))
    rack.create_app("demo")
    _, first = rack.add_release("demo", MANIFEST)
    client = _client(rack)
    newer = client.post("/apps/demo/releases", data={"env": "A=1"}).json()
    client.post(f"/apps/demo/releases/{newer['id']}/promote", data={"timeout": "0"})
    app = client.get("/apps/demo").json()
    assert (app["status"], app["release"]) == ("rollback", first["id"])


def test_process_start_and_run_durations(convox_rack_factory: RackFactory) -> None:
    rack = convox_rack_factory(timing=Timing(process_start=0.15, process_run=0.15))
    rack.create_app("demo")
    rack.add_release("demo", MANIFEST)
    client = _client(rack)
    run = client.post("/apps/demo/services/web/processes", headers={"Command": "bin/task"}).json()
    assert client.get(f"/apps/demo/processes/{run['id']}").json()["status"] == "pending"
    _wait_for(lambda: client.get(f"/apps/demo/processes/{run['id']}").json()["status"] == "running")
    _wait_for(
        lambda: client.get(f"/apps/demo/processes/{run['id']}").json()["status"] == "complete"
    )


def test_build_whose_pod_was_deleted_reads_running_forever(
    convox_rack_factory: RackFactory,
) -> None:
    """Only the build pod finishes its build (docs/rack-api.md §4.3): delete the pod, and the
    build neither completes nor fails, writes no more output and makes no release."""
    rack = convox_rack_factory(timing=Timing(build=0.3, process_start=0.05, reap=0.05))
    rack.create_app("demo")
    client = _client(rack)
    url = client.post(
        "/apps/demo/objects/tmp/a.tgz",
        content=tgz({"convox.yml": MANIFEST.encode(), "Dockerfile": DOCKERFILE}),
    ).json()["Url"]
    build = client.post("/apps/demo/builds", data={"url": url}).json()
    assert client.delete(f"/apps/demo/processes/{build['process']}").status_code == 200
    time.sleep(0.6)
    after = client.get(f"/apps/demo/builds/{build['id']}").json()
    assert (after["status"], after["release"]) == ("running", "")
    assert client.get("/apps/demo/releases").json() == []
    assert client.get(f"/apps/demo/processes/{build['process']}").status_code == 500
    # A build whose pod lives on finishes as before.
    other = client.post("/apps/demo/builds", data={"url": url}).json()
    _wait_for(lambda: client.get(f"/apps/demo/builds/{other['id']}").json()["status"] == "complete")


def test_sleep_pod_ends_after_its_seconds(rack: RackEmulator) -> None:
    rack.create_app("demo")
    rack.add_release("demo", MANIFEST)
    client = _client(rack)
    run = client.post("/apps/demo/services/web/processes", headers={"Command": "sleep 0.2"}).json()
    assert client.get(f"/apps/demo/processes/{run['id']}").json()["status"] == "running"
    _wait_for(
        lambda: client.get(f"/apps/demo/processes/{run['id']}").json()["status"] == "complete"
    )


def test_50mb_upload_is_streamed_to_disk(rack: RackEmulator) -> None:
    rack.create_app("demo")
    size = 50 * 1024 * 1024
    chunk = b"z" * (256 * 1024)

    def body() -> Iterator[bytes]:
        for _ in range(size // len(chunk)):
            yield chunk

    tracemalloc.start()
    try:
        response = httpx.post(
            rack.url + "/apps/demo/objects/tmp/big.tgz",
            content=body(),
            auth=("convox", "password"),
            headers={"Content-Type": "application/octet-stream"},
            timeout=60,
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.json() == {"Url": "object://demo/tmp/big.tgz"}
    assert peak < 8 * 1024 * 1024
    received = 0
    with httpx.stream(
        "GET", rack.url + "/apps/demo/objects/tmp/big.tgz", auth=("convox", "password")
    ) as fetched:
        assert fetched.headers.get("transfer-encoding") == "chunked"
        for part in fetched.iter_bytes():
            received += len(part)
    assert received == size


def test_command_line_serves_until_sigterm() -> None:
    import signal
    import subprocess
    import sys

    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "convox_provider.testing",
            "--password",
            "KEY",
            "--app",
            "demo",
            "--build-seconds",
            "0",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        listening = process.stdout.readline()
        rack_url = process.stdout.readline().strip()
        url = listening.rsplit(" ", 1)[1].strip()
        assert rack_url == "RACK_URL=" + url.replace("http://", "http://convox:KEY@")
        app = httpx.get(url + "/apps/demo", auth=("convox", "KEY")).json()
        assert (app["status"], app["release"][:1]) == ("running", "R")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
