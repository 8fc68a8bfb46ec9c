"""Fault plans and the request log."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from convox_provider.testing import RackEmulator, Timing
from convox_provider.testing.plugin import RackFactory

from .conftest import DOCKERFILE, MANIFEST, basic, tgz
from .wsraw import BINARY, TEXT, RawWebSocket


def test_status_faults_for_next_n_requests(http: httpx.Client, rack: RackEmulator) -> None:
    fault = rack.faults.respond("GET", "/apps", 503, times=2)
    assert [http.get("/apps").status_code for _ in range(3)] == [503, 503, 200]
    assert fault.fired == 2
    assert rack.requests.count("GET", "/apps") == 3
    assert rack.requests.count("GET", "/apps", status=503, fault="status") == 2


def test_429_carries_retry_after(http: httpx.Client, rack: RackEmulator) -> None:
    rack.faults.respond(None, "/system", 429)
    rack.faults.respond("GET", "/system", 429, retry_after=7)
    first = http.get("/system")
    assert (first.status_code, first.headers["retry-after"]) == (429, "1")
    second = http.get("/system")
    assert (second.status_code, second.headers["retry-after"]) == (429, "7")
    assert http.get("/system").status_code == 200


@pytest.mark.parametrize("status", [500, 502, 504])
def test_gateway_statuses_have_plain_bodies(
    http: httpx.Client, rack: RackEmulator, status: int
) -> None:
    rack.faults.respond("GET", "/apps", status)
    response = http.get("/apps")
    assert response.status_code == status
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert "request-id" not in response.headers


def test_status_after_handler_still_takes_effect(http: httpx.Client, rack: RackEmulator) -> None:
    rack.faults.respond("POST", "/apps", 504, after_handler=True)
    assert http.post("/apps", data={"name": "ghost"}).status_code == 504
    assert [a["name"] for a in http.get("/apps").json()] == ["ghost"]
    assert rack.requests.count("POST", "/apps") == 1


def test_glob_and_regex_paths(http: httpx.Client, rack: RackEmulator, demo: dict[str, str]) -> None:
    rack.faults.respond("GET", "/apps/*/releases", 502)
    rack.faults.respond("get", re.compile(r"/apps/demo/builds/B[A-Z]+"), 503)
    assert http.get("/apps/demo/releases").status_code == 502
    assert http.get(f"/apps/demo/builds/{demo['build']}").status_code == 503
    assert http.get("/apps/demo/releases").status_code == 200
    assert rack.requests.count(path="/apps/**") >= 3


def test_delay(http: httpx.Client, rack: RackEmulator) -> None:
    rack.faults.delay("GET", "/system", 0.3)
    started = time.monotonic()
    assert http.get("/system").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_drop_before_body_processes_nothing(rack: RackEmulator, http: httpx.Client) -> None:
    rack.faults.drop("POST", "/apps")
    with pytest.raises(httpx.TransportError):
        httpx.post(rack.url + "/apps", data={"name": "dropped"}, auth=("convox", "password"))
    assert http.get("/apps").json() == []
    record = rack.requests.find("POST", "/apps")[0]
    assert (record.status, record.fault) == (None, "drop")


def test_drop_after_body(rack: RackEmulator, http: httpx.Client, demo: dict[str, str]) -> None:
    rack.faults.drop("POST", "/apps/demo/objects/**", stage="body")
    with pytest.raises(httpx.TransportError):
        httpx.post(
            rack.url + "/apps/demo/objects/big", content=b"x" * 300_000, auth=("convox", "password")
        )
    assert http.get("/apps/demo/objects/big").status_code == 404


def test_drop_after_handler_leaves_the_side_effect(rack: RackEmulator, http: httpx.Client) -> None:
    rack.faults.drop("POST", "/apps", stage="handler")
    with pytest.raises(httpx.TransportError):
        httpx.post(rack.url + "/apps", data={"name": "halfway"}, auth=("convox", "password"))
    assert [a["name"] for a in http.get("/apps").json()] == ["halfway"]


def test_stall_outlasts_client_timeout(rack: RackEmulator) -> None:
    rack.faults.stall("GET", "/apps")
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(rack.url + "/apps", auth=("convox", "password"), timeout=0.3)
    assert rack.requests.find("GET", "/apps")[0].fault == "stall"


def test_truncated_websocket_stream_has_no_end_frame(
    rack: RackEmulator, demo: dict[str, str]
) -> None:
    rack.emit_log("demo", "0123456789")
    rack.faults.truncate("GET", "/apps/demo/logs", after_bytes=4)
    with RawWebSocket(
        rack.url, "/apps/demo/logs", {"Authorization": basic(), "Follow": "false"}
    ) as ws:
        frames = ws.frames_until_end()
    assert frames == [(TEXT, b"0123")]
    with RawWebSocket(
        rack.url, "/apps/demo/logs", {"Authorization": basic(), "Follow": "false"}
    ) as ws:
        assert ws.frames_until_end() == [(TEXT, b"0123456789\n"), (BINARY, b"")]


def test_drop_after_handler_on_a_websocket_sends_the_output_but_no_end_frame(
    rack: RackEmulator, demo: dict[str, str]
) -> None:
    rack.emit_log("demo", "0123456789")
    fault = rack.faults.drop("GET", "/apps/demo/logs", stage="handler")
    headers = {"Authorization": basic(), "Follow": "false"}
    with RawWebSocket(rack.url, "/apps/demo/logs", headers) as ws:
        assert ws.frames_until_end() == [(TEXT, b"0123456789\n")]
    assert fault.fired == 1
    with RawWebSocket(rack.url, "/apps/demo/logs", headers) as ws:
        assert ws.frames_until_end() == [(TEXT, b"0123456789\n"), (BINARY, b"")]


def test_a_websocket_skips_a_status_after_handler_fault(
    rack: RackEmulator, http: httpx.Client, demo: dict[str, str]
) -> None:
    """A handshake is the socket's only answer and comes before its handler: nothing to replace.
    The fault stays armed for the next plain HTTP request it matches."""
    rack.emit_log("demo", "hello")
    fault = rack.faults.respond(None, "/apps/demo/**", 504, after_handler=True)
    headers = {"Authorization": basic(), "Follow": "false"}
    with RawWebSocket(rack.url, "/apps/demo/logs", headers) as ws:
        assert ws.frames_until_end() == [(TEXT, b"hello\n"), (BINARY, b"")]
    assert fault.fired == 0
    assert http.get("/apps/demo/releases").status_code == 504
    assert fault.fired == 1


def test_truncated_http_stream(rack: RackEmulator, demo: dict[str, str]) -> None:
    rack.put_object("demo", "blob", b"y" * 200_000)
    rack.faults.truncate("GET", "/apps/demo/objects/blob", after_bytes=1000)
    with pytest.raises(httpx.TransportError):
        httpx.get(rack.url + "/apps/demo/objects/blob", auth=("convox", "password"))


def test_request_log_records_everything(
    rack: RackEmulator, http: httpx.Client, demo: dict[str, str]
) -> None:
    rack.requests.clear()
    http.get("/apps", params={"x": "1"})
    http.get("/nothing")
    with RawWebSocket(
        rack.url, "/apps/demo/logs", {"Authorization": basic(), "Follow": "false"}
    ) as ws:
        ws.frames_until_end()
    records = list(rack.requests)
    assert [(r.method, r.path, r.status, r.websocket) for r in records] == [
        ("GET", "/apps", 200, False),
        ("GET", "/nothing", 404, False),
        ("GET", "/apps/demo/logs", 101, True),
    ]
    assert records[0].query == "x=1"
    assert re.fullmatch(r"[0-9a-f]{12}", records[0].request_id or "")
    assert records[0].header("authorization") == basic()
    assert len(rack.requests) == 3


def test_deploy_flow_sends_each_create_once(
    rack: RackEmulator, http: httpx.Client, demo: dict[str, str]
) -> None:
    url = http.post(
        "/apps/demo/objects/tmp/a.tgz",
        content=tgz({"convox.yml": MANIFEST.encode(), "Dockerfile": DOCKERFILE}),
    ).json()["Url"]
    http.post("/apps/demo/builds", data={"url": url})
    assert rack.requests.count("POST", "/apps/demo/builds") == 1
    assert rack.requests.count("POST", "/apps/*/objects/**") == 1


def test_slow_timings_do_not_slow_fault_free_requests(convox_rack_factory: RackFactory) -> None:
    rack = convox_rack_factory(timing=Timing.demo())
    started = time.monotonic()
    assert httpx.get(rack.url + "/system", auth=("convox", "password")).status_code == 200
    assert time.monotonic() - started < 1
