"""Client test fixtures: one test body runs on ``ConvoxClient`` and ``AsyncConvoxClient``."""

from __future__ import annotations

import base64
import contextlib
import inspect
import logging
import ssl
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from pytest_httpx import HTTPXMock

from convox_provider.client.client import AsyncConvoxClient, ConvoxClient
from convox_provider.client.retry import RetryConfig

BASE_URL = "https://api.rack.example"
KEY = "rack-password-0123456789"

# Headers every request carries; anything else is an option header of the route.
STANDARD_HEADERS = frozenset(
    {
        "host",
        "accept",
        "accept-encoding",
        "connection",
        "user-agent",
        "authorization",
        "content-length",
        "content-type",
        "transfer-encoding",
    }
)


class Rack:
    """One client (sync or async) over pytest-httpx, and helpers to look at what it sent."""

    def __init__(self, kind: str, client: ConvoxClient | AsyncConvoxClient, mock: HTTPXMock):
        self.kind = kind
        self.client = client
        self.mock = mock
        self.waits: list[float] = []  # what the client asked to sleep (see ``make_rack``)

    async def __call__(self, operation: Callable[[Any], Any]) -> Any:
        """Run ``operation(client)``: the sync result as is, the async one awaited."""
        result = operation(self.client)
        if inspect.isawaitable(result):
            return await result
        return result

    def reply(
        self,
        status_code: int = 200,
        *,
        json: Any = None,
        text: str | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Queue one answer; ``text`` is sent as the rack sends ``ok``: sniffed as text/plain."""
        if json is not None:
            self.mock.add_response(status_code=status_code, json=json, headers=headers)
        elif text is not None:
            merged = {"content-type": "text/plain; charset=utf-8", **(headers or {})}
            self.mock.add_response(status_code=status_code, text=text, headers=merged)
        else:
            self.mock.add_response(status_code=status_code, content=content or b"", headers=headers)

    def ok(self) -> None:
        """Queue the rack's ``ok\\n`` action answer."""
        self.reply(text="ok\n")

    @property
    def requests(self) -> list[httpx.Request]:
        return self.mock.get_requests()

    @property
    def request(self) -> httpx.Request:
        """The only request sent."""
        sent = self.requests
        assert len(sent) == 1, f"expected one request, got {len(sent)}"
        return sent[0]

    def chunks(self, parts: list[bytes]) -> Any:
        """A streamed body of ``parts``: a generator for the sync client, an async one else."""
        if self.kind == "sync":
            return iter(parts)

        async def agen() -> AsyncIterator[bytes]:
            for part in parts:
                yield part

        return agen()

    # -- what was sent ----------------------------------------------------------------------

    @staticmethod
    def path_of(request: httpx.Request) -> str:
        """The path exactly as sent (still percent-escaped), without the query."""
        return request.url.raw_path.decode("ascii").split("?", 1)[0]

    @staticmethod
    def form_of(request: httpx.Request) -> list[tuple[str, str]]:
        """The url-encoded form body; asserts the content type."""
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        body = request.content.decode("ascii")
        return parse_qsl(body, keep_blank_values=True, strict_parsing=bool(body))

    @staticmethod
    def query_of(request: httpx.Request) -> list[tuple[str, str]]:
        return list(request.url.params.multi_items())

    @staticmethod
    def options_of(request: httpx.Request) -> dict[str, str]:
        """The route's option headers (all but the standard ones), names lower-cased."""
        return {k: v for k, v in request.headers.items() if k.lower() not in STANDARD_HEADERS}

    @property
    def path(self) -> str:
        return self.path_of(self.request)

    @property
    def form(self) -> list[tuple[str, str]]:
        return self.form_of(self.request)

    @property
    def query(self) -> list[tuple[str, str]]:
        return self.query_of(self.request)

    @property
    def options(self) -> dict[str, str]:
        return self.options_of(self.request)


# Building an SSL context costs ~45 ms; one shared context keeps a thousand-case table fast.
_TLS = ssl.create_default_context()


def make_client(kind: str, retry: RetryConfig) -> ConvoxClient | AsyncConvoxClient:
    if kind == "sync":
        return ConvoxClient(BASE_URL, KEY, retry=retry, verify=_TLS)
    return AsyncConvoxClient(BASE_URL, KEY, retry=retry, verify=_TLS)


async def close(client: ConvoxClient | AsyncConvoxClient) -> None:
    if isinstance(client, ConvoxClient):
        client.close()
    else:
        await client.aclose()


@pytest.fixture(params=["sync", "async"])
def client_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def rack(client_kind: str, httpx_mock: HTTPXMock) -> AsyncIterator[Rack]:
    """A client without retries (each answer is seen exactly once) over pytest-httpx."""
    client = make_client(client_kind, RetryConfig(max_retries=0))
    yield Rack(client_kind, client, httpx_mock)
    await close(client)


@pytest.fixture
async def retrying_rack(client_kind: str, httpx_mock: HTTPXMock) -> AsyncIterator[Rack]:
    """A client retrying once, at once (no backoff)."""
    client = make_client(client_kind, RetryConfig(max_retries=1, backoff_base=0, backoff_max=0))
    yield Rack(client_kind, client, httpx_mock)
    await close(client)


@pytest.fixture
def sync_client() -> Iterator[ConvoxClient]:
    """A sync client that is never used to send (for describing calls)."""
    with ConvoxClient(BASE_URL, KEY, verify=_TLS) as client:
        yield client


# -- clients built per test, and secret checks (transport, retry, session, config tests) --------


def secret_forms(secrets: Iterable[str]) -> list[str]:
    """Each secret as is and inside a Basic header, as it could leak."""
    forms = []
    for secret in secrets:
        forms.append(secret)
        for user in ("convox", "jwt"):
            forms.append(base64.b64encode(f"{user}:{secret}".encode()).decode())
    return forms


def assert_secret_free(text: str, secrets: Iterable[str] = (KEY,)) -> None:
    for form in secret_forms(secrets):
        assert form not in text, "a secret leaked into an error, repr or log line"


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


@pytest.fixture
def raises() -> Callable[..., contextlib.AbstractContextManager[pytest.ExceptionInfo[Any]]]:
    """``pytest.raises`` that also checks that the error and its causes name no secret."""

    @contextlib.contextmanager
    def check(
        kind: type[BaseException], match: str | None = None, *, secrets: Iterable[str] = ()
    ) -> Iterator[pytest.ExceptionInfo[Any]]:
        with pytest.raises(kind, match=match) as info:
            yield info
        for exc in _chain(info.value):
            assert_secret_free(f"{exc}\n{exc!r}", [KEY, *secrets])

    return check


@pytest.fixture
def secret_free_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture every log line at DEBUG (httpx and httpcore too) and check none names ``KEY``."""
    caplog.set_level(logging.DEBUG)
    yield caplog
    for record in caplog.records:
        assert_secret_free(record.getMessage())


@pytest.fixture
async def make_rack(client_kind: str, httpx_mock: HTTPXMock) -> AsyncIterator[Callable[..., Rack]]:
    """Build a ``client_kind`` client with any options over pytest-httpx.

    It never really sleeps: ``rack.waits`` records what it asked for (retry backoff,
    ``Retry-After``, ``Sleep`` effects).
    """
    made: list[ConvoxClient | AsyncConvoxClient] = []

    def build(host: str = BASE_URL, key: str | None = KEY, **options: Any) -> Rack:
        cls = ConvoxClient if client_kind == "sync" else AsyncConvoxClient
        client = cls(host, key, **options)
        made.append(client)
        rack = Rack(client_kind, client, httpx_mock)
        if client_kind == "sync":
            client._driver.sleep = rack.waits.append
        else:

            async def record(seconds: float) -> None:
                rack.waits.append(seconds)

            client._driver.sleep = record
        return rack

    yield build
    for client in made:
        await close(client)
