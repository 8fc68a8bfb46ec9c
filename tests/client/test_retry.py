"""What is sent again, when, and how long the client waits first (docs/rack-api.md §8 item 8)."""

from __future__ import annotations

import email.utils
import os
import ssl
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

import httpx
import pytest

from convox_provider.client.errors import (
    ConvoxConfigError,
    ConvoxConnectionError,
    ConvoxGatewayError,
    ConvoxNotFoundError,
    ConvoxRateLimitError,
    ConvoxServerError,
    ConvoxTimeoutError,
)
from convox_provider.client.operation import sleep
from convox_provider.client.retry import RetryConfig, RetryPolicy, retry_after

pytestmark = pytest.mark.usefixtures("secret_free_logs")

RETRY = RetryConfig(max_retries=3, backoff_base=0.5, backoff_max=30.0)

GET = ("GET", lambda c: c.api.get("/apps"))
WRITES = [
    ("POST", lambda c: c.api.post("/apps", data={"name": "myapp"})),
    ("PUT", lambda c: c.api.put("/apps/myapp", data={"lock": "true"})),
    ("DELETE", lambda c: c.api.delete("/apps/myapp")),
]
WRITE_IDS = [method for method, _ in WRITES]

# Failures after which the request may have reached the rack, and those where it never left.
SENT_MAYBE = [
    httpx.ReadTimeout("timed out"),
    httpx.ReadError("connection reset by peer"),
    httpx.RemoteProtocolError("Server disconnected without sending a response."),
    httpx.WriteError("broken pipe"),
    httpx.WriteTimeout("timed out"),
]
NEVER_SENT = [
    httpx.ConnectError("[Errno 111] Connection refused"),
    httpx.ConnectTimeout("timed out"),
    httpx.PoolTimeout("no connection available"),
]


def ids(errors: list[Exception]) -> list[str]:
    return [type(e).__name__ for e in errors]


# -- GET: retried on gateway statuses ----------------------------------------------------------


@pytest.mark.parametrize("status", [429, 502, 503, 504])
async def test_get_is_retried_on(make_rack: Callable[..., Any], status: int) -> None:
    rack = make_rack(retry=RETRY)
    rack.reply(status, text="busy")
    rack.reply(status, text="busy")
    rack.reply(json=[{"name": "myapp"}])
    assert await rack(GET[1]) == [{"name": "myapp"}]
    assert len(rack.requests) == 3
    assert len(rack.waits) == 2
    assert 0 <= rack.waits[0] <= 0.5
    assert 0 <= rack.waits[1] <= 1.0


async def test_500_is_not_retried_by_default(
    make_rack: Callable[..., Any], raises: Callable[..., Any]
) -> None:
    rack = make_rack(retry=RETRY)
    rack.reply(500, text="boom")
    with raises(ConvoxServerError):
        await rack(GET[1])
    assert len(rack.requests) == 1


async def test_500_is_retried_when_asked(make_rack: Callable[..., Any]) -> None:
    rack = make_rack(retry=RetryConfig(max_retries=2, backoff_base=0, retry_on_500=True))
    rack.reply(500, text="etcdserver: request timed out")
    rack.reply(json=[])
    assert await rack(GET[1]) == []
    assert len(rack.requests) == 2


async def test_500_not_found_is_never_retried(
    make_rack: Callable[..., Any], raises: Callable[..., Any]
) -> None:
    rack = make_rack(retry=RetryConfig(max_retries=3, retry_on_500=True))
    rack.reply(500, json={"error": 'releases.convox.com "r1" not found'})
    with raises(ConvoxNotFoundError):
        await rack(GET[1])
    assert len(rack.requests) == 1
    assert rack.waits == []


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 501])
async def test_other_statuses_are_final(
    make_rack: Callable[..., Any], raises: Callable[..., Any], status: int
) -> None:
    rack = make_rack(retry=RetryConfig(max_retries=3, retry_on_500=True))
    rack.reply(status, text="no")
    with raises(Exception):
        await rack(GET[1])
    assert len(rack.requests) == 1


# -- writes: never retried once they may have reached the rack ----------------------------------


@pytest.mark.parametrize(("method", "operation"), WRITES, ids=WRITE_IDS)
@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
async def test_writes_are_never_retried_on_a_status(
    make_rack: Callable[..., Any],
    raises: Callable[..., Any],
    method: str,
    operation: Any,
    status: int,
) -> None:
    rack = make_rack(retry=RetryConfig(max_retries=3, retry_on_500=True))
    rack.reply(status, text="gateway trouble", headers={"Retry-After": "1"})
    with raises(ConvoxServerError if status != 429 else ConvoxRateLimitError):
        await rack(operation)
    assert [r.method for r in rack.requests] == [method]
    assert rack.waits == []


@pytest.mark.parametrize(("method", "operation"), WRITES, ids=WRITE_IDS)
@pytest.mark.parametrize("failure", SENT_MAYBE, ids=ids(SENT_MAYBE))
async def test_writes_are_never_retried_after_they_may_have_been_sent(
    make_rack: Callable[..., Any],
    raises: Callable[..., Any],
    method: str,
    operation: Any,
    failure: Exception,
) -> None:
    rack = make_rack(retry=RETRY)
    rack.mock.add_exception(failure)
    expected = ConvoxTimeoutError if isinstance(failure, httpx.TimeoutException) else None
    with raises(expected or ConvoxConnectionError) as info:
        await rack(operation)
    assert [r.method for r in rack.requests] == [method]
    assert "may have reached the rack, so it was not retried" in str(info.value)
    assert f"{method} https://api.rack.example/apps" in str(info.value)
    assert isinstance(info.value.__cause__, type(failure))


@pytest.mark.parametrize(("method", "operation"), WRITES, ids=WRITE_IDS)
@pytest.mark.parametrize("failure", NEVER_SENT, ids=ids(NEVER_SENT))
async def test_writes_are_retried_when_they_never_left(
    make_rack: Callable[..., Any], method: str, operation: Any, failure: Exception
) -> None:
    rack = make_rack(retry=RETRY)
    rack.mock.add_exception(failure)
    rack.ok()
    assert await rack(operation) == "ok"
    assert [r.method for r in rack.requests] == [method, method]
    assert len(rack.waits) == 1


@pytest.mark.parametrize("failure", SENT_MAYBE + NEVER_SENT, ids=ids(SENT_MAYBE + NEVER_SENT))
async def test_get_is_retried_after_any_transport_failure(
    make_rack: Callable[..., Any], failure: Exception
) -> None:
    rack = make_rack(retry=RETRY)
    rack.mock.add_exception(failure)
    rack.reply(json=[])
    assert await rack(GET[1]) == []
    assert len(rack.requests) == 2


async def test_exhausted_transport_retries_raise_the_last_failure(
    make_rack: Callable[..., Any], raises: Callable[..., Any]
) -> None:
    rack = make_rack(retry=RetryConfig(max_retries=2, backoff_base=0))
    for _ in range(3):
        rack.mock.add_exception(httpx.ReadError("connection reset by peer"))
    with raises(ConvoxConnectionError, match="connection reset by peer") as info:
        await rack(GET[1])
    assert len(rack.requests) == 3
    assert "may have reached" not in str(info.value)  # a GET is safe to repeat


async def test_exhausted_retries_chain_only_the_last_failure(
    make_rack: Callable[..., Any], raises: Callable[..., Any]
) -> None:
    """The first attempt's error is not the context of the later ones (a task log shows one
    failure, not a "during handling of the above exception" chain of every attempt)."""
    rack = make_rack(retry=RetryConfig(max_retries=2, backoff_base=0))
    for n in range(3):
        rack.mock.add_exception(httpx.ConnectError(f"refused {n + 1}"))
    with raises(ConvoxConnectionError, match="refused 3") as info:
        await rack(GET[1])
    last = info.value.__cause__
    assert isinstance(last, httpx.ConnectError)
    assert str(last) == "refused 3"
    assert last.__context__ is None


async def test_a_refused_certificate_is_not_retried(
    make_rack: Callable[..., Any], raises: Callable[..., Any]
) -> None:
    failure = httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    failure.__cause__ = ssl.SSLCertVerificationError(1, "certificate verify failed")
    rack = make_rack(retry=RETRY)
    rack.mock.add_exception(failure)
    with raises(ConvoxConnectionError, match="verify=False for a rack's self-signed"):
        await rack(GET[1])
    assert len(rack.requests) == 1
    assert rack.waits == []


# -- how long, how often ------------------------------------------------------------------------


async def test_retry_after_seconds_is_honoured(make_rack: Callable[..., Any]) -> None:
    rack = make_rack(retry=RETRY)
    rack.reply(429, text="slow down", headers={"Retry-After": "7"})
    rack.reply(503, text="busy", headers={"Retry-After": "0"})
    rack.reply(json=[])
    assert await rack(GET[1]) == []
    assert rack.waits == [7.0, 0.0]


async def test_retry_after_http_date_is_honoured(make_rack: Callable[..., Any]) -> None:
    rack = make_rack(retry=RETRY)
    when = email.utils.formatdate(time.time() + 20, usegmt=True)
    rack.reply(503, text="busy", headers={"Retry-After": when})
    rack.reply(json=[])
    assert await rack(GET[1]) == []
    assert len(rack.waits) == 1
    assert 17.0 <= rack.waits[0] <= 20.0


async def test_retry_after_beyond_backoff_max_is_raised_at_once(
    make_rack: Callable[..., Any], raises: Callable[..., Any]
) -> None:
    rack = make_rack(retry=RetryConfig(max_retries=3, backoff_max=30.0))
    rack.reply(429, text="quota exceeded", headers={"Retry-After": "120", "Request-Id": "r1"})
    with raises(ConvoxRateLimitError, match="quota exceeded") as info:
        await rack(GET[1])
    assert info.value.request_id == "r1"
    assert len(rack.requests) == 1
    assert rack.waits == []


async def test_backoff_never_exceeds_backoff_max(
    make_rack: Callable[..., Any], raises: Callable[..., Any]
) -> None:
    rack = make_rack(retry=RetryConfig(max_retries=8, backoff_base=4.0, backoff_max=5.0))
    for _ in range(9):
        rack.reply(502, text="bad gateway")
    with raises(ConvoxGatewayError):
        await rack(GET[1])
    assert len(rack.waits) == 8
    assert all(0 <= wait <= 5.0 for wait in rack.waits)


@pytest.mark.parametrize("max_retries", [0, 1, 4])
async def test_max_retries_is_respected_and_the_last_answer_is_raised(
    make_rack: Callable[..., Any], raises: Callable[..., Any], max_retries: int
) -> None:
    rack = make_rack(retry=RetryConfig(max_retries=max_retries, backoff_base=0))
    for attempt in range(max_retries + 1):
        rack.reply(503, json={"error": f"busy {attempt}"}, headers={"Request-Id": f"id{attempt}"})
    with raises(ConvoxGatewayError) as info:
        await rack(GET[1])
    assert len(rack.requests) == max_retries + 1
    assert len(rack.waits) == max_retries
    assert (info.value.message, info.value.request_id) == (
        f"busy {max_retries}",
        f"id{max_retries}",
    )


async def test_retries_are_logged(
    make_rack: Callable[..., Any], secret_free_logs: pytest.LogCaptureFixture
) -> None:
    rack = make_rack(retry=RetryConfig(max_retries=2, backoff_base=0))
    rack.reply(502, text="bad gateway")
    rack.mock.add_exception(httpx.ReadError("connection reset by peer"))
    rack.reply(json=[])
    await rack(GET[1])
    lines = [r.getMessage() for r in secret_free_logs.records if r.name == "convox_provider.client"]
    assert lines == [
        "Convox GET /apps: status 502; retrying in 0.0s (attempt 2 of 3)",
        "Convox GET /apps: ReadError: connection reset by peer; retrying in 0.0s (attempt 3 of 3)",
    ]


async def test_sleep_effects_use_the_drivers_sleep(make_rack: Callable[..., Any]) -> None:
    rack = make_rack()

    def flow() -> Generator[Any, Any, str]:
        yield from sleep(2.5)
        yield from sleep(0.25)
        return "slept"

    assert await rack(lambda c: c._driver.execute(flow())) == "slept"
    assert rack.waits == [2.5, 0.25]


# -- the policy on its own ----------------------------------------------------------------------


def response(
    status: int, headers: dict[str, str] | None = None, body: bytes = b""
) -> httpx.Response:
    return httpx.Response(status, headers=headers, content=body)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5", 5.0),
        (" 12 ", 12.0),
        ("0", 0.0),
        ("-3", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("soon", None),
        ("", None),
    ],
)
def test_retry_after_values(value: str, expected: float | None) -> None:
    assert retry_after(response(429, {"Retry-After": value})) == expected


def test_retry_after_absent() -> None:
    assert retry_after(response(429)) is None


@pytest.fixture
def local_zone_not_gmt() -> Iterator[None]:
    before = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.mark.usefixtures("local_zone_not_gmt")
def test_retry_after_date_without_zone_is_gmt() -> None:
    naive = time.strftime("%a, %d %b %Y %H:%M:%S", time.gmtime(time.time() + 60))
    delay = retry_after(response(503, {"Retry-After": naive}))
    assert delay is not None
    assert 57 <= delay <= 60


@pytest.mark.parametrize("jitter", [0.0, 0.5, 0.999])
def test_full_jitter_backoff(jitter: float) -> None:
    policy = RetryPolicy(RetryConfig(backoff_base=1.0, backoff_max=6.0), jitter=lambda: jitter)
    waits = [policy.wait_seconds(attempt, None) for attempt in range(1, 6)]
    assert waits == [jitter * ceiling for ceiling in (1.0, 2.0, 4.0, 6.0, 6.0)]


def test_retry_after_overrides_backoff() -> None:
    policy = RetryPolicy(RetryConfig(backoff_base=1.0), jitter=lambda: 0.5)
    assert policy.wait_seconds(3, response(503, {"Retry-After": "9"})) == 9.0


def test_extra_retryable_statuses() -> None:
    policy = RetryPolicy(RetryConfig(retryable_status_codes=frozenset({409})))
    assert policy.should_retry_response(response(409))
    assert not policy.should_retry_response(response(502))


@pytest.mark.parametrize(
    "options",
    [{"max_retries": -1}, {"backoff_base": -0.1}, {"backoff_max": float("nan")}],
)
def test_retry_config_is_validated(options: dict[str, Any]) -> None:
    with pytest.raises(ConvoxConfigError):
        RetryConfig(**options)
