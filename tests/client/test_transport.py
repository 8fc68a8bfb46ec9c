"""What goes on the wire: headers, bodies, timeouts, TLS, pluggable transports, no leaked key."""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from convox_provider.client.client import AsyncConvoxClient, ConvoxClient
from convox_provider.client.errors import ConvoxConnectionError, ConvoxTimeoutError
from convox_provider.client.operation import Call, parse_json
from convox_provider.client.retry import RetryConfig

pytestmark = pytest.mark.usefixtures("secret_free_logs")

KEY = "rack-password-0123456789"  # the key make_rack uses


async def run(client: ConvoxClient | AsyncConvoxClient, operation: Callable[[Any], Any]) -> Any:
    result = operation(client)
    if isinstance(client, AsyncConvoxClient):
        result = await result
        await client.aclose()
    else:
        client.close()
    return result


def record_waits(client: ConvoxClient | AsyncConvoxClient) -> list[float]:
    waits: list[float] = []
    if isinstance(client, ConvoxClient):
        client._driver.sleep = waits.append
    else:

        async def record(seconds: float) -> None:
            waits.append(seconds)

        client._driver.sleep = record
    return waits


def client_class(kind: str) -> type[ConvoxClient] | type[AsyncConvoxClient]:
    return ConvoxClient if kind == "sync" else AsyncConvoxClient


# -- headers and bodies -------------------------------------------------------------------------


async def test_direct_rack_request_headers(make_rack: Callable[..., Any]) -> None:
    rack = make_rack()
    rack.reply(json=[])
    await rack(lambda c: c.api.get("/apps"))
    headers = rack.request.headers
    assert headers["Accept"] == "application/json"
    assert headers["User-Agent"].startswith("airflow-provider-convox/")
    assert "Rack" not in headers
    assert "Version" not in headers


async def test_console_request_headers(make_rack: Callable[..., Any]) -> None:
    rack = make_rack("console.convox.com", rack="acme/production")
    rack.reply(json=[])
    await rack(lambda c: c.api.get("/apps"))
    headers = rack.request.headers
    assert str(rack.request.url) == "https://console.convox.com/apps"
    assert (headers["Rack"], headers["User-Agent"], headers["Version"]) == (
        "acme/production",
        "convox.go/dev",
        "dev",
    )
    assert headers["Accept"] == "application/json"


async def test_form_and_raw_bodies(make_rack: Callable[..., Any]) -> None:
    rack = make_rack()
    rack.reply(json={"name": "myapp"})
    rack.reply(json={"Url": "object://myapp/tmp/x"})
    await rack(lambda c: c.api.post("/apps", data={"name": "myapp", "generation": "2"}))
    await rack(lambda c: c.api.post("/apps/myapp/objects/tmp/x", content=b"\x1f\x8b raw"))
    form, raw = rack.requests
    assert form.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert form.content == b"name=myapp&generation=2"
    assert raw.headers["Content-Type"] == "application/octet-stream"
    assert raw.content == b"\x1f\x8b raw"


# -- timeouts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call_timeout", "expected"),
    [
        (None, {"connect": 12.0, "read": None, "write": None, "pool": None}),
        (900.0, {"connect": 12.0, "read": 900.0, "write": 900.0, "pool": 900.0}),
        (2.0, {"connect": 2.0, "read": 2.0, "write": 2.0, "pool": 2.0}),
    ],
)
async def test_per_call_timeouts(
    make_rack: Callable[..., Any], call_timeout: float | None, expected: dict[str, Any]
) -> None:
    rack = make_rack(timeout=12.0)
    rack.reply(json={})
    rack.reply(json={})
    call = Call("POST", "/apps/myapp/builds/import", parse_json, content=b"x", timeout=call_timeout)
    await rack(lambda c: c._driver.execute(call))
    await rack(lambda c: c.api.get("/apps"))
    per_call, default = rack.requests
    assert per_call.extensions["timeout"] == expected
    assert default.extensions["timeout"] == dict.fromkeys(
        ("connect", "read", "write", "pool"), 12.0
    )


async def test_a_timeout_is_a_convox_timeout_error(
    make_rack: Callable[..., Any], raises: Callable[..., Any]
) -> None:
    rack = make_rack(retry=RetryConfig(max_retries=0))
    rack.mock.add_exception(httpx.ReadTimeout("timed out"))
    with raises(ConvoxTimeoutError, match=r"GET https://api\.rack\.example/apps timed out"):
        await rack(lambda c: c.api.get("/apps"))


# -- pluggable transports -----------------------------------------------------------------------


async def test_an_injected_transport_carries_every_request(client_kind: str) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[{"name": "myapp"}], headers={"Request-Id": "r1"})

    client = client_class(client_kind)(
        "https://api.rack.example", KEY, transport=httpx.MockTransport(answer)
    )
    assert await run(client, lambda c: c.api.get("/apps")) == [{"name": "myapp"}]
    assert [str(r.url) for r in seen] == ["https://api.rack.example/apps"]


def test_each_distinct_url_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The URL of a call (base, escaped path, query) is built once and reused by the calls that
    repeat it (the polls of a wait): httpx's own joining parses three times per request, the
    largest part of a call's cost (bench/bench_calls.py). The cache stays bounded."""
    from convox_provider.client import transport

    built: list[str] = []
    real = httpx.URL

    def counting(url: str) -> httpx.URL:
        built.append(url)
        return real(url)

    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json=[])

    client = ConvoxClient("https://api.rack.example", KEY, transport=httpx.MockTransport(answer))
    monkeypatch.setattr(transport.httpx, "URL", counting)
    with client:
        for _ in range(3):
            client.builds.list("my-app", limit=2)
        client.builds.list("my-app", limit=3)
        client.objects.list("my-app", prefix="a b/\u00fc")
        assert built == [
            "https://api.rack.example/apps/my-app/builds?limit=2",
            "https://api.rack.example/apps/my-app/builds?limit=3",
            "https://api.rack.example/apps/my-app/objects?prefix=a+b%2F%C3%BC",
        ]
        assert seen[2:] == built
        for number in range(transport._URL_CACHE + 5):
            client.builds.list("my-app", limit=number + 10)
        assert len(client._driver._urls) <= transport._URL_CACHE


# -- secrets ------------------------------------------------------------------------------------


async def test_reprs_never_show_the_key(make_rack: Callable[..., Any]) -> None:
    rack = make_rack("console.convox.com", rack="acme/prod", session="sess-secret")
    client = rack.client
    driver = client._driver
    texts = [
        repr(client),
        str(client),
        repr(client.config),
        repr(driver),
        repr(driver.http),
        repr(driver.http.headers),
    ]
    for text in texts:
        assert KEY not in text
        assert "sess-secret" not in text
    assert KEY not in repr(vars(driver))  # even the driver's attributes hide the key
    assert "acme/prod" in repr(client)


async def test_a_refused_connection_never_shows_url_credentials(
    client_kind: str, raises: Callable[..., Any], unused_port: int
) -> None:
    url = f"http://convox:{KEY}@127.0.0.1:{unused_port}"
    client = client_class(client_kind)(url, retry=RetryConfig(max_retries=1, backoff_base=0))
    with raises(ConvoxConnectionError, match=f"POST http://127.0.0.1:{unused_port}/apps failed"):
        await run(client, lambda c: c.api.post("/apps", data={"name": "x"}))


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- TLS against a real server ------------------------------------------------------------------


class _Pki:
    def __init__(self, directory: Path) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        now = datetime.datetime.now(datetime.timezone.utc)

        def name(common: str) -> x509.Name:
            return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = (
            x509.CertificateBuilder()
            .subject_name(name("test rack CA"))
            .issuer_name(name("test rack CA"))
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name("127.0.0.1"))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        pem = serialization.Encoding.PEM
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(ca.public_bytes(pem))
        self.cert_file = directory / "server.pem"
        self.cert_file.write_bytes(
            cert.public_bytes(pem)
            + key.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )


class TlsRack:
    """An HTTPS server on 127.0.0.1 with a certificate from a private CA; answers ``[]``."""

    def __init__(self, pki: _Pki) -> None:
        self.pki = pki
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                body = json.dumps([]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(pki.cert_file)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> _Pki:
    return _Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_rack(pki: _Pki) -> Iterator[TlsRack]:
    rack = TlsRack(pki)
    yield rack
    rack.close()


async def test_tls_is_verified_by_default(
    client_kind: str, tls_rack: TlsRack, raises: Callable[..., Any]
) -> None:
    client = client_class(client_kind)(tls_rack.url, KEY, retry=RetryConfig(max_retries=3))
    waits = record_waits(client)
    with raises(ConvoxConnectionError, match="TLS certificate of 127.0.0.1:.* was refused"):
        await run(client, lambda c: c.api.get("/apps"))
    assert tls_rack.requests == 0
    assert waits == []  # a refused certificate is not retried


@pytest.mark.parametrize("how", ["ca-file", "ca-path", "ssl-context", "off"])
async def test_tls_verification_is_configurable(
    client_kind: str, tls_rack: TlsRack, how: str
) -> None:
    verify: Any = {
        "ca-file": str(tls_rack.pki.ca_file),
        "ca-path": tls_rack.pki.ca_file,
        "ssl-context": ssl.create_default_context(cafile=tls_rack.pki.ca_file),
        "off": False,
    }[how]
    client = client_class(client_kind)(tls_rack.url, KEY, verify=verify)
    assert await run(client, lambda c: c.api.get("/apps")) == []
    assert tls_rack.requests == 1
