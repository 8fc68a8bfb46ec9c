"""``convox logs`` shows what a rack's would: pod events and container output (issue 15, 5)."""

from __future__ import annotations

import httpx

from convox_provider.testing import RackEmulator

from .conftest import basic
from .wsraw import RawWebSocket, text


def _promote_new_release(http: httpx.Client) -> None:
    newer = http.post("/apps/demo/releases", data={"env": "FOO=2"}).json()
    assert http.post(f"/apps/demo/releases/{newer['id']}/promote").text == "ok\n"
    http.get("/apps/demo")  # the rollout runs on the rack's clock


def _app_log(rack: RackEmulator) -> list[tuple[str, str]]:
    headers = {"Authorization": basic(), "Prefix": "true", "Since": "5s", "Follow": "false"}
    with RawWebSocket(rack.url, "/apps/demo/logs", headers) as ws:
        lines = text(ws.frames_until_end()).decode().splitlines()
    return [(stream, message) for _, stream, message in (line.split(" ", 2) for line in lines)]


def test_a_rollout_logs_pod_events_and_container_start_lines(
    rack: RackEmulator, http: httpx.Client, demo: dict[str, str]
) -> None:
    rack.scripts.on_service("web", ["Listening on :3000"])
    _promote_new_release(http)
    pods = {p["id"]: p for p in rack.processes("demo") if p["service"] == "web"}
    assert len(pods) == 2
    log = _app_log(rack)
    for pid, pod in pods.items():
        events = [message for stream, message in log if stream == f"system/k8s/{pid}"]
        assert events == [
            f"Successfully assigned demo/{pid} to {pod['instance']}",
            f'Pulling image "{pod["image"]}"',
            f'Successfully pulled image "{pod["image"]}"',
            "Created container demo",
            "Started container demo",
        ]
        output = [message for stream, message in log if stream == f"service/web/{pid}"]
        assert output == [f"emulated process {pid} started: bin/web", "Listening on :3000"]
    worker = next(p["id"] for p in rack.processes("demo") if p["service"] == "worker")
    assert ("service/worker/" + worker, f"emulated process {worker} started: bin/worker") in log
    assert [m for s, m in log if s == "system/k8s/atom/app"][-1] == "Status: Updating => Running"


def test_service_logs_show_container_output_only(
    rack: RackEmulator, http: httpx.Client, demo: dict[str, str]
) -> None:
    rack.scripts.on_service("web", ["ready"], app="demo")
    rack.scripts.on_service("web", ["not this app"], app="other")
    _promote_new_release(http)
    headers = {"Authorization": basic(), "Follow": "false", "Prefix": "false"}
    with RawWebSocket(rack.url, "/apps/demo/services/web/logs", headers) as ws:
        lines = text(ws.frames_until_end()).decode().splitlines()
    assert sorted(lines) == sorted(
        [f"emulated process {p['id']} started: bin/web" for p in rack.processes("demo")[:2]]
        + ["ready", "ready"]
    )


def test_seeded_apps_start_quiet(rack: RackEmulator, demo: dict[str, str]) -> None:
    """Seeded replicas have been running for longer than any log window: nothing logged."""
    assert _app_log(rack) == []
