"""When a request may be sent again, and how long to wait first.

One :class:`RetryPolicy` serves the sync and the async driver: it builds the keyword arguments
of ``tenacity.Retrying`` and ``tenacity.AsyncRetrying`` alike.

The rule (docs/rack-api.md §8 item 8): a request that may already have reached the rack is retried
only when it is idempotent (``GET`` by default). A non-idempotent request (build create, release
create, promote, run, upload) is retried only when it provably never left this machine: the TCP
connection could not be opened, or no pooled connection became free. Nothing is done twice.
"""

from __future__ import annotations

import email.utils
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timezone
from typing import Any

import httpx
from tenacity import RetryCallState, stop_after_attempt

from convox_provider.client.errors import ConvoxConfigError, is_not_found_500

__all__ = ["RetryConfig", "RetryPolicy", "certificate_error", "retry_after"]

_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class RetryConfig:
    """Retry settings; the field names match the official ``convox`` SDK's ``RetryConfig``.

    ``max_retries`` counts retries after the first attempt (0 disables retrying).
    ``backoff_base`` and ``backoff_max`` (seconds) shape a capped exponential backoff with full
    jitter: the n-th wait is uniform in ``[0, min(backoff_max, backoff_base * 2**n)]``.
    A ``Retry-After`` header (seconds or HTTP date) is honoured exactly; when it asks for more
    than ``backoff_max`` the error is raised at once instead of blocking for that long.
    ``retry_on_500`` adds 500 to ``retryable_status_codes``, except 500 "… not found", which is
    the rack's way of saying a build, release or process does not exist (docs/rack-api.md §3.3).
    """

    max_retries: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    retryable_status_codes: frozenset[int] = field(
        default_factory=lambda: frozenset({429, 502, 503, 504})
    )
    retry_on_500: bool = False

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ConvoxConfigError("RetryConfig.max_retries must be 0 or more", setting="retry")
        if not (self.backoff_base >= 0 and self.backoff_max >= 0):
            raise ConvoxConfigError(
                "RetryConfig backoff values must be 0 or more seconds", setting="retry"
            )
        object.__setattr__(self, "retryable_status_codes", frozenset(self.retryable_status_codes))

    @property
    def effective_retryable(self) -> frozenset[int]:
        """The statuses retried: ``retryable_status_codes``, plus 500 with ``retry_on_500`` (as
        the official SDK's property; a 500 "… not found" is still never retried)."""
        return self.retryable_status_codes | ({500} if self.retry_on_500 else frozenset())


class RetryPolicy:
    """Decides retries for one client; pure logic, no I/O."""

    def __init__(self, config: RetryConfig, *, jitter: Callable[[], float] = random.random):
        self.config = config
        self._jitter = jitter
        self._statuses = config.effective_retryable

    def should_retry_response(self, response: httpx.Response) -> bool:
        """Whether an idempotent request that got ``response`` may be sent again."""
        status = response.status_code
        if status not in self._statuses:
            return False
        if is_not_found_500(status, response.content.decode("latin-1")):  # the raw body
            return False
        delay = retry_after(response)
        return delay is None or delay <= self.config.backoff_max

    @staticmethod
    def should_retry_exception(exc: BaseException, *, idempotent: bool) -> bool:
        """Whether a request that failed with ``exc`` may be sent again.

        A refused certificate is never retried: it will be refused again.
        """
        if certificate_error(exc) is not None:
            return False
        if isinstance(exc, _NEVER_SENT):
            return True
        return idempotent and isinstance(exc, httpx.TransportError)

    def wait_seconds(self, attempt: int, response: httpx.Response | None) -> float:
        """How long to wait before retry number ``attempt`` (1-based)."""
        if response is not None:
            delay = retry_after(response)
            if delay is not None:
                return float(delay)
        ceiling = min(self.config.backoff_max, self.config.backoff_base * (2 ** (attempt - 1)))
        return float(ceiling * self._jitter())

    def tenacity_kwargs(self, *, idempotent: bool) -> dict[str, Any]:
        """Arguments for ``tenacity.Retrying``/``AsyncRetrying`` around one request.

        The wrapped function returns a fully read :class:`httpx.Response` or raises an
        ``httpx.TransportError``; when retries run out the last response is returned (so it
        becomes a typed API error) and the last exception is re-raised.
        """

        def retry(state: RetryCallState) -> bool:
            outcome = state.outcome
            if outcome is None:
                return False
            if outcome.failed:
                exc = outcome.exception()
                return exc is not None and self.should_retry_exception(exc, idempotent=idempotent)
            return idempotent and self.should_retry_response(outcome.result())

        def wait(state: RetryCallState) -> float:
            outcome = state.outcome
            response = None if outcome is None or outcome.failed else outcome.result()
            return self.wait_seconds(state.attempt_number, response)

        def give_up(state: RetryCallState) -> Any:
            assert state.outcome is not None
            return state.outcome.result()

        return {
            "stop": stop_after_attempt(self.config.max_retries + 1),
            "retry": retry,
            "wait": wait,
            "reraise": True,
            "retry_error_callback": give_up,
        }


def retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds (delta-seconds or HTTP-date), or None."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT (RFC 9110 §5.6.7)
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - time.time())


def certificate_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The TLS certificate verification failure behind ``exc``, if that is what it is."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
