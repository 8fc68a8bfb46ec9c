"""WebSocket streams over real sockets, against a scripted peer on 127.0.0.1 (docs/rack-api.md §6).

The peer is written with ``websockets``' sans-I/O ``ServerProtocol`` and plays the rack's part
frame by frame, so each test pins one behaviour: end frame, ``ERROR:`` frame, exit-code marker,
cut connections, refused handshakes, pings, stdin, console sessions, TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

from convox_provider.client import websocket
from convox_provider.client._frames import EXIT_MARKER
from convox_provider.client.client import AsyncConvoxClient, ConvoxClient
from convox_provider.client.errors import (
    ConvoxAuthError,
    ConvoxConnectionError,
    ConvoxForbiddenError,
    ConvoxInputError,
    ConvoxNotFoundError,
    ConvoxStreamError,
    ConvoxTimeoutError,
)
from convox_provider.client.operation import Flow, StreamSpec, stream
from convox_provider.client.resources.streams import (
    AppLogs,
    BuildLogs,
    ProcessStreams,
    ServiceLogs,
)
from convox_provider.client.retry import RetryConfig
from convox_provider.client.websocket import lines

KEY = "rack-password-0123456789"


class Peer:
    """The server side of one connection, driven by a test script."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.protocol = ServerProtocol(max_size=None)
        self.request: Request | None = None
        self.received: list[Frame] = []
        self.eof = False

    def _flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                self.sock.sendall(data)

    def _read(self, timeout: float | None) -> bool:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        except OSError:
            data = b""
        if data:
            self.protocol.receive_data(data)
        else:
            self.eof = True
            self.protocol.receive_eof()
        for event in self.protocol.events_received():
            if isinstance(event, Request):
                self.request = event
            else:
                self.received.append(event)
        return True

    def handshake(self) -> Request:
        while self.request is None:
            assert self._read(5.0), "no handshake request"
            assert not self.eof, "client closed before its handshake"
        return self.request

    @property
    def headers(self) -> dict[str, str]:
        assert self.request is not None
        return {k.lower(): v for k, v in self.request.headers.raw_items()}

    def accept(self) -> None:
        request = self.handshake()
        self.protocol.send_response(self.protocol.accept(request))
        self._flush()

    def reject(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
        self.handshake()
        response = self.protocol.reject(status, body)
        for name, value in (headers or {}).items():
            response.headers[name] = value
        self.protocol.send_response(response)
        self._flush()

    def text(self, data: bytes, fin: bool = True) -> None:
        self.protocol.send_text(data, fin=fin)
        self._flush()

    def cont(self, data: bytes, fin: bool = True) -> None:
        self.protocol.send_continuation(data, fin=fin)
        self._flush()

    def end(self) -> None:
        """The rack's end of stream: an empty binary frame, and no close frame (§6.3)."""
        self.protocol.send_binary(b"")
        self._flush()

    def frames_until_eof_frame(self, timeout: float = 5.0) -> list[Frame]:
        """Client frames up to and including its first binary frame (stdin EOF, §6.4)."""
        deadline = time.monotonic() + timeout
        while not any(f.opcode is Opcode.BINARY for f in self.received):
            assert time.monotonic() < deadline, "no EOF frame from the client"
            self._read(0.2)
        return list(self.received)

    def listen(self, seconds: float) -> None:
        """Read what the client sends for a while (the rack itself never does on log routes)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.eof:
            self._read(0.02)

    def wait_closed(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.eof:
            assert time.monotonic() < deadline, "the client did not close the connection"
            self._read(0.2)


Script = Callable[[Peer], None]


class Server:
    """Accepts connections on 127.0.0.1 and runs the next script on each."""

    def __init__(self, *scripts: Script, tls: ssl.SSLContext | None = None) -> None:
        self.scripts = list(scripts)
        self.tls = tls
        self.peers: list[Peer] = []
        self.errors: list[BaseException] = []
        self.tls_failures: list[ssl.SSLError] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while self.scripts:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            script = self.scripts.pop(0)
            try:
                if self.tls is not None:
                    try:
                        sock = self.tls.wrap_socket(sock, server_side=True)
                    except ssl.SSLError as exc:
                        self.tls_failures.append(exc)
                        continue
                peer = Peer(sock)
                self.peers.append(peer)
                script(peer)
            except BaseException as exc:  # surfaced by close()
                self.errors.append(exc)
            finally:
                with contextlib.suppress(OSError):
                    sock.close()

    def close(self) -> None:
        self.listener.close()
        self.thread.join(10)
        if self.errors:
            raise self.errors[0]

    @property
    def peer(self) -> Peer:
        assert len(self.peers) == 1
        return self.peers[0]


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@contextlib.asynccontextmanager
async def serve(
    kind: str, *scripts: Script, tls: ssl.SSLContext | None = None, **options: Any
) -> AsyncIterator[tuple[Server, ConvoxClient | AsyncConvoxClient]]:
    server = Server(*scripts, tls=tls)
    options.setdefault("retry", RetryConfig(max_retries=0))
    cls = ConvoxClient if kind == "sync" else AsyncConvoxClient
    client = cls(server.url, KEY, **options)
    try:
        yield server, client
    finally:
        if isinstance(client, ConvoxClient):
            client.close()
        else:
            await client.aclose()
        await asyncio.to_thread(server.close)  # the loop keeps running: async closes complete


async def collect(chunks: Iterator[bytes] | AsyncIterator[bytes]) -> list[bytes]:
    if isinstance(chunks, AsyncIterator):
        return [chunk async for chunk in chunks]
    return list(chunks)


async def run(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result


def driver(client: ConvoxClient | AsyncConvoxClient) -> Any:
    return client._driver


# -- logs ---------------------------------------------------------------------------------------


async def test_app_logs_run_to_the_end_frame_with_options_as_headers(kind: str) -> None:
    def script(peer: Peer) -> None:
        peer.accept()
        peer.text(b"2026-01-15T14:30:51Z service/web/web-1 GET / 200\n")
        peer.text(b"\xff raw bytes, no UTF-8 check\n")
        peer.text(b"")  # an empty TEXT frame is not the end
        peer.end()
        peer.wait_closed()

    async with serve(kind, script) as (server, client):
        chunks = AppLogs(driver(client)).logs("myapp", follow=False, since=300, prefix=True, tail=5)
        output = b"".join(await collect(chunks))
    assert output == (
        b"2026-01-15T14:30:51Z service/web/web-1 GET / 200\n\xff raw bytes, no UTF-8 check\n"
    )
    request, headers = server.peer.request, server.peer.headers
    assert request is not None
    assert request.path == "/apps/myapp/logs"
    assert headers["follow"] == "false"
    assert headers["since"] == "5m0s"
    assert headers["prefix"] == "true"
    assert headers["tail"] == "5"
    assert headers["authorization"].startswith("Basic ")
    assert headers["upgrade"] == "websocket"
    assert "origin" not in headers
    assert "sec-websocket-extensions" not in headers
    assert "sec-websocket-protocol" not in headers
    assert "session" not in headers


async def test_build_logs_and_lines_across_frames(kind: str) -> None:
    euro = "€".encode()

    def script(peer: Peer) -> None:
        peer.accept()
        peer.text(b"Step 1/3 : FROM alpine\nStep 2/3 : RUN echo " + euro[:1])
        peer.text(euro[1:] + b"\nwaiting for build")
        peer.text(b" to start...\r\nlast line without newline")
        peer.end()

    async with serve(kind, script) as (server, client):
        chunks = BuildLogs(driver(client)).logs("myapp", "BABCDEFGHIJ")
        got = lines(chunks)
        text = [line async for line in got] if isinstance(got, AsyncIterator) else list(got)
    assert text == [
        "Step 1/3 : FROM alpine",
        "Step 2/3 : RUN echo €",
        "waiting for build to start...",
        "last line without newline",
    ]
    assert server.peer.request is not None
    assert server.peer.request.path == "/apps/myapp/builds/BABCDEFGHIJ/logs"
    assert "follow" not in server.peer.headers


async def test_service_and_process_logs_paths_and_defaults(kind: str) -> None:
    def script(peer: Peer) -> None:
        peer.accept()
        peer.end()

    async with serve(kind, script, script) as (server, client):
        await collect(ServiceLogs(driver(client)).logs("app", "web", follow=False, previous=True))
        await collect(ProcessStreams(driver(client)).logs("app", "web-123-abc", follow=False))
    first, second = server.peers
    assert first.request is not None
    assert second.request is not None
    assert first.request.path == "/apps/app/services/web/logs"
    assert first.headers["previous"] == "true"
    assert second.request.path == "/apps/app/processes/web-123-abc/logs"
    assert second.headers["since"] == "0s"  # the process-logs quirk (§6.2)


async def test_error_frame_raises_after_the_output_before_it(kind: str) -> None:
    def script(peer: Peer) -> None:
        peer.accept()
        peer.text(b"ERROR: this is just a log line\n")
        peer.text(b"more output\n")
        peer.text(b"ERROR: no such app: myapp\n")
        peer.end()

    async with serve(kind, script) as (_, client):
        chunks = AppLogs(driver(client)).logs("myapp", follow=False)
        received: list[bytes] = []

        async def consume() -> None:
            if isinstance(chunks, AsyncIterator):
                async for chunk in chunks:
                    received.append(chunk)
            else:
                received.extend(chunks)

        with pytest.raises(ConvoxStreamError, match=r"^no such app: myapp$"):
            await consume()
    assert b"".join(received) == b"ERROR: this is just a log line\nmore output\n"


async def test_connection_cut_before_the_end_frame_is_a_connection_error(kind: str) -> None:
    def script(peer: Peer) -> None:
        peer.accept()
        peer.text(b"partial output\n")
        peer.sock.shutdown(socket.SHUT_RDWR)

    async with serve(kind, script) as (_, client):
        chunks = AppLogs(driver(client)).logs("myapp", follow=False)
        with pytest.raises(ConvoxConnectionError, match="stream ended without its end marker"):
            await collect(chunks)


async def test_close_frame_instead_of_end_frame_is_truncation(kind: str) -> None:
    def script(peer: Peer) -> None:
        peer.accept()
        peer.text(b"partial\n")
        peer.protocol.send_close(1001)
        peer._flush()
        peer.listen(0.5)

    async with serve(kind, script) as (_, client):
        with pytest.raises(ConvoxConnectionError, match="end marker"):
            await collect(AppLogs(driver(client)).logs("myapp", follow=False))


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (404, "", ConvoxNotFoundError),
        (
            403,
            "websocket: request origin not allowed by Upgrader.CheckOrigin",
            ConvoxForbiddenError,
        ),
        (401, '{"error":"invalid authentication"}', ConvoxAuthError),
    ],
)
async def test_refused_handshake_is_a_typed_api_error(
    kind: str, status: int, body: str, error: type[Exception]
) -> None:
    def script(peer: Peer) -> None:
        peer.reject(status, body, {"Request-Id": "0123456789ab"})

    async with serve(kind, script) as (_, client):
        with pytest.raises(error) as caught:
            await collect(AppLogs(driver(client)).logs("myapp", follow=False))
    assert caught.value.status_code == status  # type: ignore[attr-defined]
    assert caught.value.request_id == "0123456789ab"  # type: ignore[attr-defined]
    if body.startswith("{"):
        assert caught.value.message == "invalid authentication"  # type: ignore[attr-defined]
    assert KEY not in str(caught.value)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n", "handshake failed"),
        (b"", "closed during the handshake"),
    ],
)
async def test_a_server_that_does_not_speak_http_is_a_connection_error(
    kind: str, answer: bytes, message: str
) -> None:
    def script(peer: Peer) -> None:
        peer.handshake()
        peer.sock.sendall(answer)
        peer.sock.shutdown(socket.SHUT_RDWR)

    async with serve(kind, script) as (_, client):
        with pytest.raises(ConvoxConnectionError, match=message):
            await collect(AppLogs(driver(client)).logs("myapp", follow=False))


async def test_a_silent_server_times_out_before_the_handshake(kind: str) -> None:
    def script(peer: Peer) -> None:
        peer.handshake()
        peer.listen(0.5)  # never answers

    async with serve(kind, script, timeout=0.3) as (_, client):
        with pytest.raises(ConvoxTimeoutError, match="timed out before the handshake"):
            await collect(AppLogs(driver(client)).logs("myapp", follow=False))


async def test_connection_refused_is_a_connection_error(kind: str) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    cls = ConvoxClient if kind == "sync" else AsyncConvoxClient
    client = cls(f"http://127.0.0.1:{port}", KEY)
    with pytest.raises(ConvoxConnectionError, match=f"ws://127.0.0.1:{port}/apps/a/logs"):
        await collect(AppLogs(driver(client)).logs("a", follow=False))


async def test_silent_stream_gets_pings_and_never_waits_for_pongs(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(websocket, "PING_INTERVAL", 0.05)

    def script(peer: Peer) -> None:
        peer.accept()
        peer.listen(0.4)  # the rack never answers these pings (§6.3); neither do we
        peer.text(b"after a silence\n")
        peer.end()

    async with serve(kind, script) as (server, client):
        output = await collect(AppLogs(driver(client)).logs("myapp", follow=False))
    assert b"".join(output) == b"after a silence\n"
    pings = [f for f in server.peer.received if f.opcode is Opcode.PING]
    assert len(pings) >= 2


async def test_leaving_the_loop_early_closes_the_connection(kind: str) -> None:
    closed = threading.Event()

    def script(peer: Peer) -> None:
        peer.accept()
        peer.text(b"first\n")
        peer.wait_closed()
        closed.set()

    async with serve(kind, script) as (_, client):
        chunks = AppLogs(driver(client)).logs("myapp")
        if isinstance(chunks, AsyncIterator):
            async with contextlib.aclosing(chunks):  # type: ignore[type-var]
                assert await chunks.__anext__() == b"first\n"
        else:
            assert next(chunks) == b"first\n"
            chunks.close()  # type: ignore[attr-defined]
        assert await asyncio.to_thread(closed.wait, 5)


async def test_arguments_are_checked_before_connecting(kind: str) -> None:
    cls = ConvoxClient if kind == "sync" else AsyncConvoxClient
    client = cls("http://127.0.0.1:9", KEY)
    with pytest.raises(ConvoxInputError):
        AppLogs(driver(client)).logs("bad/app")
    with pytest.raises(ConvoxInputError):
        AppLogs(driver(client)).logs("app", tail=-1)
    with pytest.raises(ConvoxInputError):
        ProcessStreams(driver(client)).exec("app", "pid", "echo\nrm")
    with pytest.raises(ConvoxInputError, match="tty=True"):
        ProcessStreams(driver(client)).exec("app", "pid", "cat", stdin=b"x")


# -- exec ---------------------------------------------------------------------------------------


async def test_exec_returns_the_exit_code_and_streams_output(kind: str) -> None:
    def script(peer: Peer) -> None:
        peer.accept()
        peer.text(b"migrating...\n")
        peer.text(b"done\n" + EXIT_MARKER + b"3\n")
        peer.end()

    output: list[bytes] = []
    async with serve(kind, script) as (server, client):
        code = await run(
            ProcessStreams(driver(client)).exec(
                "myapp", "web-1", "sh -c 'exit 3'", on_output=output.append, entrypoint=True
            )
        )
    assert code == 3
    assert b"".join(output) == b"migrating...\ndone\n"
    headers = server.peer.headers
    assert headers["command"] == "sh -c 'exit 3'"
    assert headers["entrypoint"] == "true"
    assert headers["tty"] == "false"
    assert headers["disable-stdin"] == "true"
    assert server.peer.request is not None
    assert server.peer.request.path == "/apps/myapp/processes/web-1/exec"


async def test_exec_error_after_exit_code_zero_is_an_error(kind: str) -> None:
    def script(peer: Peer) -> None:
        peer.accept()
        peer.text(EXIT_MARKER + b"0\n")
        peer.text(b"ERROR: exec failed: container not running\n")
        peer.end()

    async with serve(kind, script) as (_, client):
        with pytest.raises(ConvoxStreamError, match="container not running"):
            await run(ProcessStreams(driver(client)).exec("myapp", "web-1", "true"))


async def test_exec_without_exit_code_is_an_error(kind: str) -> None:
    def script(peer: Peer) -> None:
        peer.accept()
        peer.text(b"output only\n")
        peer.end()

    async with serve(kind, script) as (_, client):
        with pytest.raises(ConvoxStreamError, match="without an exit code"):
            await run(ProcessStreams(driver(client)).exec("myapp", "web-1", "true"))


async def test_exec_sends_stdin_as_text_frames_then_a_binary_eof(kind: str) -> None:
    def script(peer: Peer) -> None:
        peer.accept()
        frames = peer.frames_until_eof_frame()
        stdin = b"".join(f.data for f in frames if f.opcode is Opcode.TEXT)
        peer.text(stdin.upper() + EXIT_MARKER + b"0\n")
        peer.end()

    output: list[bytes] = []
    payload = b"hello\n" * 20000  # several text frames
    async with serve(kind, script) as (server, client):
        code = await run(
            ProcessStreams(driver(client)).exec(
                "myapp", "web-1", "cat", stdin=payload, tty=True, on_output=output.append
            )
        )
    assert code == 0
    assert b"".join(output) == payload.upper()
    assert server.peer.headers["disable-stdin"] == "false"
    assert server.peer.headers["tty"] == "true"


async def test_stream_effect_in_a_flow(kind: str) -> None:
    """Workflows yield ``Stream`` effects; each driver performs them to completion."""

    def script(peer: Peer) -> None:
        peer.accept()
        peer.text(b"abc")
        peer.text(b"def")
        peer.end()

    seen: list[bytes] = []

    def flow() -> Flow[tuple[int | None, int]]:
        result = yield from stream(StreamSpec("/apps/myapp/builds/b1/logs"), seen.append)
        return result.exit_code, result.bytes_received

    async with serve(kind, script) as (_, client):
        assert await run(driver(client).execute(flow())) == (None, 6)
    assert b"".join(seen) == b"abcdef"


# -- console session and TLS --------------------------------------------------------------------


async def test_console_opens_its_session_over_http_before_the_upgrade(kind: str) -> None:
    """The upgrade cannot answer the console's challenge, so a GET /racks answers it (§1.5)."""
    seen: list[str] = []

    def http(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path} {request.headers.get('session')}")
        if "session" not in request.headers and request.url.path != "/session":
            challenge = 'Session path="/session" token="false"'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        if request.url.path == "/session":
            return httpx.Response(200, json={"id": "session-123"})
        return httpx.Response(200, json=[])

    def script(peer: Peer) -> None:
        peer.accept()
        peer.text(b"console logs\n")
        peer.end()

    transport: Any = httpx.MockTransport(http)
    async with serve(kind, script, rack="acme/production", transport=transport) as (server, client):
        output = await collect(AppLogs(driver(client)).logs("myapp", follow=False))
    assert output == [b"console logs\n"]
    assert seen == ["GET /machines None", "POST /session None", "GET /machines session-123"]
    headers = server.peer.headers
    assert headers["session"] == "session-123"
    assert headers["rack"] == "acme/production"
    assert headers["user-agent"].startswith("convox.go/")


async def test_console_probe_404_is_ignored(kind: str) -> None:
    def http(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": "not found"})

    def script(peer: Peer) -> None:
        peer.accept()
        peer.end()

    transport: Any = httpx.MockTransport(http)
    async with serve(kind, script, rack="acme/production", transport=transport) as (_, client):
        assert await collect(BuildLogs(driver(client)).logs("app", "b1")) == []


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.mark.parametrize("verify", ["ca", "off", "system"])
async def test_tls_honours_verify(kind: str, certificate: tuple[Path, Path], verify: str) -> None:
    cert, key = certificate
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)

    def script(peer: Peer) -> None:
        peer.accept()
        peer.text(b"secure\n")
        peer.end()

    setting: Any = {"ca": str(cert), "off": False, "system": True}[verify]
    async with serve(kind, script, tls=server_tls, verify=setting) as (server, client):
        assert client.config.base_url.startswith("https://")
        chunks = AppLogs(driver(client)).logs("myapp", follow=False)
        if verify == "system":
            with pytest.raises(ConvoxConnectionError, match=r"wss://127\.0\.0\.1"):
                await collect(chunks)
            await asyncio.to_thread(server.close)
            assert server.tls_failures  # the handshake never completed
        else:
            assert await collect(chunks) == [b"secure\n"]


def test_describe_gives_the_stream_spec() -> None:
    with ConvoxClient("http://127.0.0.1:9", KEY) as client:
        spec = AppLogs.logs.describe(AppLogs(driver(client)), "myapp", follow=False, since="1h")
    assert spec == StreamSpec("/apps/myapp/logs", (("Follow", "false"), ("Since", "1h")))
    assert json.dumps(dict(spec.headers))  # plain strings, safe to log
