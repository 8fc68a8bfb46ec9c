"""WebSocket framing and the socket routes (docs/rack-api.md §6)."""

from __future__ import annotations

import time

import httpx
import pytest

from convox_provider.testing import CommandResult, RackEmulator, Timing
from convox_provider.testing.plugin import RackFactory

from .conftest import DOCKERFILE, MANIFEST, basic, tgz
from .wsraw import BINARY, PING, TEXT, RawWebSocket, text

MARKER = b"F1E49A85-0AD7-4AEF-A618-C249C6E6568D"


def _sleep_pod(http: httpx.Client) -> str:
    return str(
        http.post("/apps/demo/services/web/processes", headers={"Command": "sleep 3600"}).json()[
            "id"
        ]
    )


def test_handshake_answer_and_plain_get_404(rack: RackEmulator, demo: dict[str, str]) -> None:
    with RawWebSocket(
        rack.url, "/apps/demo/logs", {"Authorization": basic(), "Follow": "false"}
    ) as ws:
        assert ws.status == 101
        assert set(ws.headers) == {"upgrade", "connection", "sec-websocket-accept"}
        assert ws.frames_until_end()[-1] == (BINARY, b"")
    plain = httpx.get(rack.url + "/apps/demo/logs", auth=("convox", "password"))
    assert (plain.status_code, plain.content) == (404, b"")
    assert "request-id" not in plain.headers


def test_upgrade_header_must_be_exactly_websocket(rack: RackEmulator, demo: dict[str, str]) -> None:
    with RawWebSocket(
        rack.url, "/apps/demo/logs", {"Authorization": basic()}, upgrade="WebSocket"
    ) as ws:
        assert (ws.status, ws.body) == (404, b"")


def test_foreign_origin_is_refused_with_403(rack: RackEmulator, demo: dict[str, str]) -> None:
    with RawWebSocket(
        rack.url, "/apps/demo/logs", {"Authorization": basic()}, origin="https://evil.example"
    ) as ws:
        assert ws.status == 403
        assert (
            ws.body
            == b"Forbidden\nERROR: websocket: request origin not allowed by Upgrader.CheckOrigin\n"
        )
    same = rack.url.replace("http://", "https://")
    with RawWebSocket(
        rack.url, "/apps/demo/logs", {"Authorization": basic(), "Follow": "false"}, origin=same
    ) as ws:
        assert ws.status == 101


def test_auth_happens_after_upgrade(rack: RackEmulator, demo: dict[str, str]) -> None:
    with RawWebSocket(rack.url, "/apps/demo/logs", {"Authorization": basic("wrong")}) as ws:
        assert ws.status == 101
        assert ws.frames_until_end() == [(TEXT, b"ERROR: invalid authentication\n"), (BINARY, b"")]
    with RawWebSocket(rack.url, "/apps/ghost/logs", {"Authorization": basic()}) as ws:
        assert ws.frames_until_end() == [(TEXT, b"ERROR: app not found: ghost\n"), (BINARY, b"")]
    with RawWebSocket(rack.url, "/apps/demo/logs", {"Authorization": basic(), "Tail": "x"}) as ws:
        assert ws.frames_until_end()[0] == (
            TEXT,
            b'ERROR: strconv.Atoi: parsing "x": invalid syntax\n',
        )


def test_no_close_frame_and_no_pong_on_log_routes(rack: RackEmulator, demo: dict[str, str]) -> None:
    with RawWebSocket(rack.url, "/apps/demo/logs", {"Authorization": basic()}) as ws:
        ws.send_frame(PING, b"hello")
        with pytest.raises(TimeoutError):
            ws.recv_frame(timeout=0.3)
    with RawWebSocket(
        rack.url, "/apps/demo/logs", {"Authorization": basic(), "Follow": "false"}
    ) as ws:
        frames = ws.frames_until_end()
        assert all(op in (TEXT, BINARY) for op, _ in frames)
        ws.sock.settimeout(0.2)
        try:
            extra = ws.sock.recv(10)
        except TimeoutError:
            extra = None
        assert extra is None  # neither a close frame nor a TCP close: the client closes


def test_app_logs_include_rollout_events_with_prefix(
    rack: RackEmulator, http: httpx.Client, demo: dict[str, str]
) -> None:
    newer = http.post("/apps/demo/releases", data={"env": "FOO=2"}).json()
    http.post(f"/apps/demo/releases/{newer['id']}/promote")
    http.get("/apps/demo")
    headers = {"Authorization": basic(), "Prefix": "true", "Since": "5s", "Follow": "false"}
    with RawWebSocket(rack.url, "/apps/demo/logs", headers) as ws:
        lines = text(ws.frames_until_end()).decode().splitlines()
    events = [line.split(" ", 2) for line in lines]
    assert [e[2] for e in events if e[1] == "system/k8s/atom/app"] == [
        "Status: Running => Pending",
        "Status: Pending => Updating",
        "Status: Updating => Running",
    ]
    assert all(e[0].endswith("Z") and "T" in e[0] for e in events)
    with RawWebSocket(rack.url, "/apps/demo/logs", {**headers, "Prefix": "false"}) as ws:
        assert b"Status: Running => Pending\n" in text(ws.frames_until_end())


def test_follow_streams_new_lines_live(rack: RackEmulator, demo: dict[str, str]) -> None:
    with RawWebSocket(rack.url, "/apps/demo/logs", {"Authorization": basic(), "Since": "1m"}) as ws:
        rack.emit_log("demo", "first", service="web", pod="web-1")
        assert ws.recv_frame() == (TEXT, b"first\n")
        rack.emit_log("demo", "second", service="web", pod="web-1")
        assert ws.recv_frame() == (TEXT, b"second\n")


def test_service_logs_kubectl_prefix_and_missing_pods(
    rack: RackEmulator, http: httpx.Client, demo: dict[str, str]
) -> None:
    pod = http.get("/apps/demo/processes", params={"service": "web"}).json()[0]["id"]
    rack.emit_log("demo", "GET / 200", service="web", pod=pod)
    headers = {"Authorization": basic(), "Follow": "false"}
    with RawWebSocket(rack.url, "/apps/demo/services/web/logs", headers) as ws:
        line = text(ws.frames_until_end())
    assert line.startswith(f"[pod/{pod}/demo] ".encode())
    assert line.endswith(b" GET / 200\n")
    with RawWebSocket(
        rack.url, "/apps/demo/services/web/logs", {**headers, "Prefix": "false"}
    ) as ws:
        assert text(ws.frames_until_end()) == b"GET / 200\n"
    with RawWebSocket(rack.url, "/apps/demo/services/nope/logs", headers) as ws:
        assert (
            text(ws.frames_until_end()) == b"ERROR: no resources found in emulator-demo namespace\n"
        )


def test_build_logs_live_then_stored(convox_rack_factory: RackFactory) -> None:
    rack = convox_rack_factory(timing=Timing(build=0.6))
    rack.create_app("demo")
    client = httpx.Client(base_url=rack.url, auth=("convox", "password"))
    url = client.post(
        "/apps/demo/objects/tmp/s.tgz",
        content=tgz({"convox.yml": MANIFEST.encode(), "Dockerfile": DOCKERFILE}),
    ).json()["Url"]
    rack.scripts.next_build(logs=["one", "two", "three"])
    build = client.post("/apps/demo/builds", data={"url": url}).json()
    started = time.monotonic()
    with RawWebSocket(
        rack.url, f"/apps/demo/builds/{build['id']}/logs", {"Authorization": basic()}
    ) as ws:
        first = ws.recv_frame()
        first_at = time.monotonic() - started
        rest = ws.frames_until_end()
    assert first == (TEXT, b"one\n")
    assert first_at < 0.5
    assert rest == [(TEXT, b"two\n"), (TEXT, b"three\n"), (BINARY, b"")]
    assert client.get(f"/apps/demo/builds/{build['id']}").json()["status"] == "complete"
    with RawWebSocket(
        rack.url, f"/apps/demo/builds/{build['id']}/logs", {"Authorization": basic()}
    ) as ws:
        assert text(ws.frames_until_end()) == b"one\ntwo\nthree\n"
    with RawWebSocket(rack.url, "/apps/demo/builds/BNOPE/logs", {"Authorization": basic()}) as ws:
        assert text(ws.frames_until_end()) == b'ERROR: builds.convox.com "bnope" not found\n'


def test_exec_output_marker_and_end(
    rack: RackEmulator, http: httpx.Client, demo: dict[str, str]
) -> None:
    pid = _sleep_pod(http)
    headers = {
        "Authorization": basic(),
        "Command": "sh -c 'echo hi; exit 3'",
        "Tty": "false",
        "Disable-Stdin": "true",
    }
    with RawWebSocket(rack.url, f"/apps/demo/processes/{pid}/exec", headers) as ws:
        frames = ws.frames_until_end()
    assert frames == [(TEXT, b"hi\n"), (TEXT, MARKER + b":3\n"), (BINARY, b"")]
    assert rack.execs[-1].argv == ("sh", "-c", "echo hi; exit 3")
    assert rack.execs[-1].exit_code == 3


def test_exec_tty_uses_crlf_and_service_name_picks_a_pod(
    rack: RackEmulator, http: httpx.Client, demo: dict[str, str]
) -> None:
    headers = {"Authorization": basic(), "Command": "echo a", "Disable-Stdin": "true"}
    with RawWebSocket(rack.url, "/apps/demo/processes/web/exec", headers) as ws:
        assert ws.frames_until_end()[0] == (TEXT, b"a\r\n")
    web_pods = {p["id"] for p in http.get("/apps/demo/processes", params={"service": "web"}).json()}
    assert rack.execs[-1].process in web_pods


def test_exec_split_and_invalid_utf8_frames(
    rack: RackEmulator, http: httpx.Client, demo: dict[str, str]
) -> None:
    euro = "€".encode()
    rack.scripts.on_command(
        "emit",
        CommandResult(chunks=((0.0, b"price: " + euro[:2]), (0.0, euro[2:] + b"\n")), exit_code=0),
    )
    rack.scripts.on_command("binary", output=b"\xff\xfe\x00raw\n")
    pid = _sleep_pod(http)
    base = {"Authorization": basic(), "Tty": "false", "Disable-Stdin": "true"}
    with RawWebSocket(
        rack.url, f"/apps/demo/processes/{pid}/exec", {**base, "Command": "emit"}
    ) as ws:
        frames = ws.frames_until_end()
    assert frames[:2] == [(TEXT, b"price: \xe2\x82"), (TEXT, b"\xac\n")]
    with RawWebSocket(
        rack.url, f"/apps/demo/processes/{pid}/exec", {**base, "Command": "binary"}
    ) as ws:
        assert ws.frames_until_end()[0] == (TEXT, b"\xff\xfe\x00raw\n")


def test_max_frame_bytes_splits_every_payload(convox_rack_factory: RackFactory) -> None:
    rack = convox_rack_factory(max_frame_bytes=3)
    rack.create_app("demo")
    rack.add_release("demo", MANIFEST)
    rack.emit_log("demo", "héllo")
    with RawWebSocket(
        rack.url, "/apps/demo/logs", {"Authorization": basic(), "Follow": "false"}
    ) as ws:
        frames = ws.frames_until_end()
    payloads = [p for op, p in frames if op == TEXT]
    assert all(len(p) <= 3 for p in payloads)
    assert b"".join(payloads) == "héllo\n".encode()


def test_exec_errors(rack: RackEmulator, http: httpx.Client, demo: dict[str, str]) -> None:
    headers = {"Authorization": basic(), "Command": "true"}
    with RawWebSocket(rack.url, "/apps/demo/processes/web-zzzzz/exec", headers) as ws:
        assert ws.frames_until_end() == [
            (TEXT, MARKER + b":0\n"),
            (TEXT, b'ERROR: pods "web-zzzzz" not found\n'),
            (BINARY, b""),
        ]
    with RawWebSocket(rack.url, "/apps/ghost/processes/x/exec", headers) as ws:
        assert ws.frames_until_end() == [(TEXT, b"ERROR: app not found: ghost\n"), (BINARY, b"")]
    token = http.post("/system/jwt/token", data={"role": "read"}).json()["token"]
    with RawWebSocket(
        rack.url, "/apps/demo/processes/web/exec", {**headers, "Authorization": basic(token, "jwt")}
    ) as ws:
        assert text(ws.frames_until_end()) == b"ERROR: process exec requires write access\n"


def test_exec_stdin_is_collected_until_binary_eof(
    rack: RackEmulator, http: httpx.Client, demo: dict[str, str]
) -> None:
    rack.scripts.on_command("cat-ish", CommandResult(output=b"done\n", duration=0.3))
    pid = _sleep_pod(http)
    headers = {"Authorization": basic(), "Command": "cat-ish", "Tty": "false"}
    with RawWebSocket(rack.url, f"/apps/demo/processes/{pid}/exec", headers) as ws:
        ws.send_frame(TEXT, b"line 1\n")
        ws.send_frame(PING, b"p")
        ws.send_frame(BINARY, b"")
        frames = ws.frames_until_end()
    record = rack.execs[-1]
    assert bytes(record.stdin) == b"line 1\n"
    assert record.stdin_closed is True
    assert (0xA, b"p") in frames  # pong: the server reads while consuming stdin
    assert frames[-2:] == [(TEXT, MARKER + b":0\n"), (BINARY, b"")]


def test_process_logs_follow_pod_output(
    rack: RackEmulator, http: httpx.Client, demo: dict[str, str]
) -> None:
    rack.scripts.on_command(
        "job", CommandResult(chunks=((0.1, b"working\n"), (0.2, b"done\n")), duration=0.3)
    )
    run = http.post("/apps/demo/services/worker/processes", headers={"Command": "job"}).json()
    headers = {"Authorization": basic(), "Since": "0s", "Prefix": "true"}
    with RawWebSocket(rack.url, f"/apps/demo/processes/{run['id']}/logs", headers) as ws:
        lines = text(ws.frames_until_end()).decode().splitlines()
    assert [line.split(" ", 2)[1:] for line in lines] == [
        [f"service/worker/{run['id']}", "working"],
        [f"service/worker/{run['id']}", "done"],
    ]
    with RawWebSocket(
        rack.url, f"/apps/demo/processes/{run['id']}/logs", {"Authorization": basic()}
    ) as ws:
        assert text(ws.frames_until_end()) == b""  # default Since 2m is added to now (§6.2)


def test_unimplemented_socket_routes(rack: RackEmulator) -> None:
    with RawWebSocket(rack.url, "/system/logs", {"Authorization": basic()}) as ws:
        assert ws.frames_until_end() == [(TEXT, b"ERROR: unimplemented\n"), (BINARY, b"")]
