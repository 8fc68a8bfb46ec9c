"""The transport over real HTTP against the rack emulator: auth, faults, retries, console mode."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from convox_provider.client.client import AsyncConvoxClient, ConvoxClient
from convox_provider.client.errors import (
    ConvoxAuthError,
    ConvoxConfigError,
    ConvoxConnectionError,
    ConvoxGatewayError,
)
from convox_provider.client.retry import RetryConfig
from convox_provider.testing.emulator import RackEmulator

pytestmark = pytest.mark.usefixtures("secret_free_logs")

PASSWORD = "emulatorPASSWORD0123456789"
CONSOLE_RACK = "acme/production"
RETRY = RetryConfig(max_retries=3, backoff_base=0.01, backoff_max=5.0)


class Client:
    """A real client of ``kind`` on the emulator; ``waits`` records its sleeps."""

    def __init__(self, kind: str, url: str, key: str, **options: Any) -> None:
        self.kind = kind
        self.waits: list[float] = []
        if kind == "sync":
            self.client: Any = ConvoxClient(url, key, **options)
            self.client._driver.sleep = self.waits.append
        else:
            self.client = AsyncConvoxClient(url, key, **options)

            async def record(seconds: float) -> None:
                self.waits.append(seconds)

            self.client._driver.sleep = record

    async def __call__(self, operation: Callable[[Any], Any]) -> Any:
        result = operation(self.client)
        return await result if self.kind == "async" else result

    async def close(self) -> None:
        if self.kind == "sync":
            self.client.close()
        else:
            await self.client.aclose()


@pytest.fixture
def emulator(convox_rack_factory: Callable[..., RackEmulator]) -> RackEmulator:
    return convox_rack_factory(password=PASSWORD)


@pytest.fixture
async def connect(client_kind: str) -> AsyncIterator[Callable[..., Client]]:
    made: list[Client] = []

    def build(url: str, key: str = PASSWORD, **options: Any) -> Client:
        made.append(Client(client_kind, url, key, **options))
        return made[-1]

    yield build
    for client in made:
        await client.close()


async def test_wrong_key(
    emulator: RackEmulator, connect: Callable[..., Client], raises: Callable[..., Any]
) -> None:
    client = connect(emulator.url, "not-the-password")
    with raises(ConvoxAuthError, match="invalid authentication", secrets=[PASSWORD]) as info:
        await client(lambda c: c.apps.list())
    assert info.value.request_id  # routed: the rack's Request-Id is kept


async def test_429_with_retry_after_then_success(
    emulator: RackEmulator, connect: Callable[..., Client]
) -> None:
    emulator.create_app("myapp")
    emulator.faults.respond("GET", "/apps", 429, retry_after=2)
    client = connect(emulator.url, retry=RETRY)
    apps = await client(lambda c: c.apps.list())
    assert [app.name for app in apps] == ["myapp"]
    assert client.waits == [2.0]
    assert emulator.requests.count("GET", "/apps") == 2
    assert emulator.requests.count("GET", "/apps", status=429) == 1


async def test_a_502_burst_is_ridden_out(
    emulator: RackEmulator, connect: Callable[..., Client]
) -> None:
    emulator.faults.respond("GET", "/apps", 502, times=3)
    client = connect(emulator.url, retry=RETRY)
    assert await client(lambda c: c.apps.list()) == []
    assert emulator.requests.count("GET", "/apps") == 4
    assert len(client.waits) == 3


async def test_a_longer_502_burst_raises_the_gateway_error(
    emulator: RackEmulator, connect: Callable[..., Client], raises: Callable[..., Any]
) -> None:
    emulator.faults.respond("GET", "/apps", 502, times=10)
    client = connect(emulator.url, retry=RETRY)
    with raises(ConvoxGatewayError, secrets=[PASSWORD]) as info:
        await client(lambda c: c.apps.list())
    assert info.value.status_code == 502
    assert emulator.requests.count("GET", "/apps") == 4


@pytest.mark.parametrize("stage", ["headers", "body", "handler"])
async def test_a_dropped_post_is_sent_once(
    emulator: RackEmulator,
    connect: Callable[..., Client],
    raises: Callable[..., Any],
    stage: str,
) -> None:
    emulator.faults.drop("POST", "/apps", stage=stage)
    client = connect(emulator.url, retry=RETRY)
    with raises(ConvoxConnectionError, match="may have reached the rack", secrets=[PASSWORD]):
        await client(lambda c: c.apps.create("myapp"))
    assert emulator.requests.count("POST", "/apps") == 1
    assert client.waits == []
    created = [app.name for app in await client(lambda c: c.apps.list())]
    assert created == (["myapp"] if stage == "handler" else [])


async def test_a_dropped_get_is_retried(
    emulator: RackEmulator, connect: Callable[..., Client]
) -> None:
    emulator.create_app("myapp")
    emulator.faults.drop("GET", "/apps/myapp", stage="handler")
    client = connect(emulator.url, retry=RETRY)
    app = await client(lambda c: c.apps.get("myapp"))
    assert app.name == "myapp"
    assert emulator.requests.count("GET", "/apps/myapp") == 2


async def test_console_session_challenge(
    convox_rack_factory: Callable[..., RackEmulator], connect: Callable[..., Client]
) -> None:
    console = convox_rack_factory(password=PASSWORD, console=CONSOLE_RACK, session="challenge")
    console.create_app("myapp")
    client = connect(console.url, rack=CONSOLE_RACK)
    assert [app.name for app in await client(lambda c: c.apps.list())] == ["myapp"]
    assert (await client(lambda c: c.apps.get("myapp"))).name == "myapp"
    sent = [(r.method, r.path, r.status, r.header("Session")) for r in console.requests]
    assert sent[0] == ("GET", "/apps", 401, None)
    assert sent[1][:3] == ("POST", "/session", 200)
    session = sent[2][3]
    assert session
    assert sent[2:] == [("GET", "/apps", 200, session), ("GET", "/apps/myapp", 200, session)]
    for record in console.requests:
        assert record.header("Rack") == CONSOLE_RACK
        assert (record.header("User-Agent") or "").startswith("convox.go/")


async def test_console_hardware_key_session_is_refused(
    convox_rack_factory: Callable[..., RackEmulator],
    connect: Callable[..., Client],
    raises: Callable[..., Any],
) -> None:
    console = convox_rack_factory(password=PASSWORD, console=CONSOLE_RACK, session="token")
    client = connect(console.url, rack=CONSOLE_RACK)
    with raises(ConvoxAuthError, match="hardware-key", secrets=[PASSWORD]):
        await client(lambda c: c.apps.list())
    assert len(console.requests) == 1


async def test_console_without_rack_header(
    convox_rack_factory: Callable[..., RackEmulator],
    connect: Callable[..., Client],
    raises: Callable[..., Any],
) -> None:
    console = convox_rack_factory(password=PASSWORD, console=CONSOLE_RACK)
    client = connect(console.url)
    with raises(ConvoxConfigError, match=r"set the rack \('<org>/<rack>'\)", secrets=[PASSWORD]):
        await client(lambda c: c.apps.list())
    assert console.requests.count("GET", "/apps") == 1
