"""Sending calls to the rack: the sync and the async driver.

Everything that is not I/O lives once in :class:`_Exchange`: building the HTTP request from a
:class:`~convox_provider.client.operation.Call`, the console session challenge
(docs/rack-api.md §1.5), error mapping (§3), and the decision to retry (:mod:`.retry`). The two
drivers only move bytes and sleep; each runs flows (generators of effects) the same way.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, Generic, NoReturn, TypeVar, cast
from urllib.parse import urlencode, urlsplit

import httpx
from tenacity import AsyncRetrying, RetryCallState, Retrying

from convox_provider.client.bodies import async_body, sync_body
from convox_provider.client.config import ClientConfig
from convox_provider.client.effects import (
    DEFAULT_TIMEOUT,
    Body,
    Call,
    Flow,
    Now,
    On,
    Sleep,
    Stream,
    StreamResult,
    StreamSpec,
    parse_bytes,
    parse_json,
    parse_ok,
)
from convox_provider.client.errors import (
    ConvoxAuthError,
    ConvoxConfigError,
    ConvoxConnectionError,
    ConvoxError,
    ConvoxResponseError,
    ConvoxTimeoutError,
    error_for_status,
    is_not_found_500,
)
from convox_provider.client.retry import RetryPolicy, certificate_error
from convox_provider.client.websocket import open_async, open_sync, run_async, run_sync

__all__ = ["AsyncDriver", "SyncDriver", "Transmit"]

T = TypeVar("T")

_FORM = "application/x-www-form-urlencoded"
_RAW = "application/octet-stream"
_CHALLENGE = re.compile(r"^\s*Session\s+(?P<params>.*)$", re.IGNORECASE)
_PARAM = re.compile(r'(\w+)="([^"]*)"')
_MESSAGE_LIMIT = 2000
_URL_CACHE = 256

logger = logging.getLogger("convox_provider.client")

MAY_HAVE_ACTED = (
    "the request may have reached the rack, so it was not retried: check its effect before "
    "repeating it"
)
"""Appended to the error of a write that failed after it may have taken effect on the rack."""


@dataclass(frozen=True)
class Transmit:
    """Effect: send ``call`` once over HTTP, with the retry policy; the result is the response."""

    call: Call[Any]


class _Outcome(Generic[T]):
    """A first attempt's result or exception, replayed to tenacity as its attempt 1."""

    def __init__(self, value: T | None = None, error: BaseException | None = None) -> None:
        self.value = value
        self.error = error

    def replay(self, then: Callable[[], T]) -> Callable[[], T]:
        used = False

        def attempt() -> T:
            nonlocal used
            if used:
                return then()
            used = True
            if self.error is not None:
                raise self.error
            return cast(T, self.value)

        return attempt


class _Exchange:
    """The driver logic that is not I/O."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.policy = RetryPolicy(config.retry)
        self.session_id = config.session
        #: One TLS context for the HTTP pool and every WebSocket stream (``ClientConfig.verify``).
        self.ssl_context = config.ssl_context()
        self._urls: dict[tuple[str, tuple[tuple[str, str], ...]], httpx.URL] = {}
        self._tenacity = {
            idempotent: self.policy.tenacity_kwargs(idempotent=idempotent)
            for idempotent in (True, False)
        }

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments shared by ``httpx.Client`` and ``httpx.AsyncClient``."""
        return {
            "base_url": self.config.base_url,
            "headers": self.config.headers(),
            "verify": self.ssl_context,
            "timeout": self.config.httpx_timeout(self.config.timeout),
            "follow_redirects": False,
            "trust_env": False,
            "limits": httpx.Limits(
                max_connections=self.config.max_connections,
                max_keepalive_connections=self.config.max_connections,
                keepalive_expiry=self.config.keepalive_seconds,
            ),
        }

    def request(self, http: httpx.Client | httpx.AsyncClient, call: Call[Any]) -> httpx.Request:
        """Build the HTTP request for ``call`` (form body, raw body, query, option headers)."""
        headers: dict[str, str] | None = dict(call.headers) if call.headers else None
        content: Any = None
        if call.form:
            content = urlencode(call.form).encode("ascii")
            headers = headers or {}
            headers["Content-Type"] = _FORM
        elif call.content is not None:
            content = call.content
            headers = headers or {}
            headers.setdefault("Content-Type", _RAW)
        if self.session_id is not None:
            headers = headers or {}
            headers["Session"] = self.session_id
        timeout = (
            httpx.USE_CLIENT_DEFAULT
            if call.timeout is DEFAULT_TIMEOUT
            else self.config.httpx_timeout(cast("float | None", call.timeout))
        )
        return http.build_request(
            call.method, self.url(http, call), headers=headers, content=content, timeout=timeout
        )

    def url(self, http: httpx.Client | httpx.AsyncClient, call: Call[Any]) -> httpx.URL:
        """The absolute URL of ``call`` (path and query), parsed once per distinct URL.

        httpx would parse the relative path, then the base URL joined with it, then again with
        the query: three parses per request, the largest cost of a call. An absolute
        ``httpx.URL`` is taken as it is, and the URLs of the last few hundred distinct calls
        (the polls of a wait repeat one) are kept, since an ``httpx.URL`` is immutable.
        """
        key = (call.path, call.query)
        url = self._urls.get(key)
        if url is None:
            query = f"?{urlencode(call.query)}" if call.query else ""
            url = httpx.URL(f"{str(http.base_url).rstrip('/')}{call.path}{query}")
            if len(self._urls) >= _URL_CACHE:
                self._urls.clear()
            self._urls[key] = url
        return url

    def raw_request(
        self, http: httpx.Client | httpx.AsyncClient, method: str, path: str, kwargs: dict[str, Any]
    ) -> tuple[httpx.Request, Call[None]]:
        """The request of ``client.stream(method, path, **kwargs)`` (httpx's own arguments:
        ``params``, ``data``, ``content``, ``headers``, ``timeout``…), with the client's
        credentials and session, and the :class:`Call` that names it in errors."""
        if self.session_id is not None:
            kwargs["headers"] = {**dict(kwargs.get("headers") or {}), "Session": self.session_id}
        return http.build_request(method, path, **kwargs), Call(method, path, parse_ok)

    def first_needs_retry(self, outcome: _Outcome[httpx.Response], call: Call[Any]) -> bool:
        """Whether the first attempt's outcome should go on to the retry loop."""
        if self.config.retry.max_retries == 0:
            return False
        if outcome.error is not None:
            return self.policy.should_retry_exception(outcome.error, idempotent=call.idempotent)
        assert outcome.value is not None
        return self.response_needs_retry(outcome.value, call)

    def response_needs_retry(self, response: httpx.Response, call: Call[Any]) -> bool:
        """Whether a first attempt answered by ``response`` should go on to the retry loop."""
        return (
            response.status_code >= 400  # the cheap test first: a success is never retried
            and self.config.retry.max_retries > 0
            and call.idempotent
            and self.policy.should_retry_response(response)
        )

    def exchange(self, call: Call[T]) -> Flow[T]:
        """Send ``call``, answering a console session challenge once, and read the answer."""
        response = yield Transmit(call)
        return (yield from self.answer(call, response))

    def answer(self, call: Call[T], response: httpx.Response) -> Flow[T]:
        """Read the answer to ``call``; a 401 console session challenge is answered once and
        the call sent again. The drivers run a body-less call without a flow and enter this
        only for a 401 (every other answer goes straight to :meth:`finish`)."""
        if response.status_code == 401:
            challenge = session_challenge(response)
            if challenge is not None:
                yield from self._open_session(*challenge)
                response = yield Transmit(call)
        return self.finish(call, response)

    def _open_session(self, path: str, token: bool) -> Flow[None]:
        if token:
            raise ConvoxAuthError(
                "The console requires a hardware-key (U2F/WebAuthn) session for this login, which "
                "an unattended client cannot complete. Use a deploy key instead of a user token.",
                status_code=401,
                method="POST",
                path=path,
            )
        open_call = Call("POST", path, parse_json, retry_safe=False)
        opened = yield Transmit(open_call)
        session = self.finish(open_call, opened)
        if not isinstance(session, dict) or not isinstance(session.get("id"), str):
            raise ConvoxAuthError(
                "The console's session answer had no id",
                status_code=opened.status_code,
                request_id=opened.headers.get("request-id"),
                method="POST",
                path=path,
            )
        self.session_id = session["id"]

    def finish(self, call: Call[T], response: httpx.Response) -> T:
        """Map an error status to a typed error, refuse HTML and redirects, then parse.

        The rack never answers its API with HTML, except as the sniffed type of a raw download
        (an ``.html`` object, docs/rack-api.md §3.1), so HTML anywhere else means the host is a web
        page or a console that did not take the request for a CLI call (§1.4). A parser's
        ``ValueError`` becomes :class:`ConvoxResponseError`, described without the body's values.
        """
        status = response.status_code
        raw = call.sink is not None or call.parse is parse_bytes
        if response.headers.get("content-type", "").lower().startswith("text/html") and (
            status >= 300 or not raw
        ):
            raise ConvoxConfigError(_html_hint(self.config, status), setting="host")
        if 300 <= status < 400:
            raise ConvoxConfigError(_redirect_hint(self.config, response), setting="host")
        if status >= 400:
            message = error_message(response)
            raise error_for_status(
                status,
                message,
                request_id=response.headers.get("request-id"),
                method=call.method,
                path=call.path,
                hint=_status_hint(self.config, call, status, message),
            )
        try:
            return call.parse(response)
        except ConvoxError:
            raise
        except ValueError as exc:  # raised below, unchained: exc may quote the body's values
            problem = _unreadable(exc)
        raise ConvoxResponseError(
            f"the answer could not be read: {problem}",
            status_code=status,
            request_id=response.headers.get("request-id"),
            method=call.method,
            path=call.path,
        )

    def transport_error(self, call: Call[Any], exc: Exception) -> NoReturn:
        """Re-raise an httpx failure as a Convox error naming the request (never its headers).

        A non-idempotent request that broke after it may have reached the rack says so: it was
        not retried, and repeating it blindly could do the work twice.
        """
        where = f"{call.method} {self.config.base_url}{call.path}"
        cert = certificate_error(exc)
        if cert is not None:
            reason = getattr(cert, "verify_message", None) or cert
            raise ConvoxConnectionError(
                f"{where} failed: the TLS certificate of {self.config.host} was refused "
                f"({reason}). Pass verify= the CA bundle that signed it (or an ssl.SSLContext), "
                "or verify=False for a rack's self-signed certificate"
            ) from exc
        if _speaks_plain_http(exc):
            parts = urlsplit(self.config.base_url)
            raise ConvoxConnectionError(
                f"{where} failed: {parts.netloc} speaks plain HTTP, not TLS; use "
                f"http://{parts.netloc} as the host (plain http:// is accepted for loopback "
                "hosts only, such as the local rack emulator)"
            ) from exc
        unsure = ""
        if not call.idempotent and not self.policy.should_retry_exception(exc, idempotent=False):
            unsure = f"; {MAY_HAVE_ACTED}"
        if isinstance(exc, httpx.TimeoutException):
            raise ConvoxTimeoutError(f"{where} timed out ({type(exc).__name__}){unsure}") from exc
        detail = str(exc) or type(exc).__name__
        raise ConvoxConnectionError(f"{where} failed: {detail}{unsure}") from exc

    def log_retry(self, call: Call[Any]) -> Callable[[RetryCallState], None]:
        """A tenacity ``before_sleep`` hook that logs why and when ``call`` is sent again."""

        def before_sleep(state: RetryCallState) -> None:
            outcome = state.outcome
            if outcome is None:
                return
            if outcome.failed:
                exc = outcome.exception()
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                reason = f"status {outcome.result().status_code}"
            wait = state.upcoming_sleep
            logger.info(
                "Convox %s %s: %s; retrying in %.1fs (attempt %d of %d)",
                call.method,
                call.path,
                reason,
                wait,
                state.attempt_number + 1,
                self.config.retry.max_retries + 1,
            )

        return before_sleep


def _speaks_plain_http(exc: BaseException) -> bool:
    """Whether a TLS handshake failed because the server answered in plain HTTP (OpenSSL:
    ``WRONG_VERSION_NUMBER``, or ``RECORD_LAYER_FAILURE`` since 3.2)."""
    current: BaseException | None = exc
    while current is not None:
        text = str(current)
        if "WRONG_VERSION_NUMBER" in text or "RECORD_LAYER_FAILURE" in text:
            return True
        current = current.__cause__ or current.__context__
    return False


def session_challenge(response: httpx.Response) -> tuple[str, bool] | None:
    """Parse ``WWW-Authenticate: Session path="…" token="…"`` into ``(path, token)``."""
    header = response.headers.get("www-authenticate", "")
    match = _CHALLENGE.match(header)
    if match is None:
        return None
    params = dict(_PARAM.findall(match.group("params")))
    path = params.get("path")
    if not path:
        return None
    return path, params.get("token", "false").lower() == "true"


def error_message(response: httpx.Response) -> str:
    """The rack's message: ``{"error": …}`` JSON, else the trimmed text (docs/rack-api.md §3.2)."""
    content = response.content
    if content[:1] == b"{":
        try:
            data = response.json()
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            return cast(str, data["error"])
    text = response.text.strip()
    if len(text) > _MESSAGE_LIMIT:
        text = text[:_MESSAGE_LIMIT] + " …"
    return text or f"response status {response.status_code}"


def _auth_hint(config: ClientConfig, message: str) -> str:
    """What to check after a 401 (docs/rack-api.md §1.2-§1.3): the key, or the role it carries."""
    if "unauthorized to access" in message:
        return (
            "the credential is valid, but its role may not make this call: use a key or rack "
            "JWT with the role it needs (writes need 'w'), or the rack password"
        )
    where = f", and that it may use rack {config.rack!r}" if config.console else ""
    return f"the credential was refused: check the deploy key or rack password{where}"


def _status_hint(config: ClientConfig, call: Call[Any], status: int, message: str) -> str:
    """What to do about an error status: for a 401, what to check; for a write (never retried
    after it may have acted, see ``RetryPolicy``), whether the rack may have acted: a gateway's
    502/503/504, or a 500, may come after it did; a 429 was a refusal."""
    if status == 401:
        return _auth_hint(config, message)
    if call.idempotent:
        return ""
    if status == 429:
        return (
            "the request was refused, and a write is never sent again automatically: try again "
            "later"
        )
    if status in (502, 503, 504) or (status == 500 and not is_not_found_500(status, message)):
        return MAY_HAVE_ACTED
    return ""


def _unreadable(exc: ValueError) -> str:
    """Say what was wrong with a body without repeating any of it (it may hold env values)."""
    errors = getattr(exc, "errors", None)
    if callable(errors):  # pydantic.ValidationError: locations and reasons, no input values
        details = errors(include_input=False, include_url=False)
        shown = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'body'}: {item['msg']}"
            for item in details[:3]
        )
        more = f" (and {len(details) - 3} more)" if len(details) > 3 else ""
        return f"unexpected shape ({shown}{more})"
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    return type(exc).__name__


def _redirect_hint(config: ClientConfig, response: httpx.Response) -> str:
    target = urlsplit(response.headers.get("location", ""))
    where = f"{target.scheme}://{target.hostname}{target.path}" if target.hostname else "elsewhere"
    return (
        f"{config.base_url} redirected the request (status {response.status_code}) to {where}; "
        "the Convox API never redirects, so point the client at the final host (https://, "
        "console host or https://api.<rack-domain>)"
    )


def _html_hint(config: ClientConfig, status: int) -> str:
    if config.console:
        return (
            f"{config.base_url} answered with an HTML page (status {status}) instead of the "
            f"Convox API; check that the host is the console host and that rack "
            f"{config.rack!r} exists in your organisation"
        )
    return (
        f"{config.base_url} answered with an HTML page (status {status}) instead of the Convox "
        "API. If this is a console (e.g. console.convox.com), set the rack ('<org>/<rack>'); "
        "otherwise use the rack API URL (https://api.<rack-domain>)"
    )


class _Runner(_Exchange):
    """Runs flows: each effect is performed, its result (or error) sent back into the flow.

    A driver supplies the I/O handlers (plain functions for the sync driver, coroutine
    functions for the async one); :meth:`handlers` maps each effect type to them.
    """

    _handlers: dict[type, Callable[[Any], Any]]
    execute: Callable[[Any], Any]
    transmit: Callable[[Call[Any]], Any]
    _sleep: Callable[[Sleep], Any]
    _now: Callable[[Now], Any]
    _stream: Callable[[Stream], Any]

    def handlers(self) -> dict[type, Callable[[Any], Any]]:
        """Effect type -> this driver's handler."""
        return {
            Transmit: lambda effect: self.transmit(effect.call),
            Call: self.execute,
            Sleep: self._sleep,
            Now: self._now,
            Stream: self._stream,
            On: lambda effect: effect.driver.perform(effect.effect),
        }

    def handler(self, effect: Any) -> Callable[[Any], Any]:
        """The handler for ``effect``; a flow yielding anything else is a programming error."""
        try:
            return self._handlers[type(effect)]
        except KeyError:
            raise TypeError(
                f"a flow yielded {effect!r}, which {type(self).__name__} cannot perform"
            ) from None

    def _settle(self, flow: Generator[Any, Any, T], value: Any, error: BaseException | None) -> Any:
        """Advance ``flow``; return ``(done, effect_or_result)``."""
        try:
            effect = flow.throw(error) if error is not None else flow.send(value)
        except StopIteration as stop:
            return True, stop.value
        return False, effect


class SyncDriver(_Runner):
    """Runs calls and flows on an ``httpx.Client`` (worker threads, scripts)."""

    def __init__(
        self,
        config: ClientConfig,
        transport: httpx.BaseTransport | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(config)
        self.http = httpx.Client(transport=transport, **self.client_kwargs())
        #: Waits between retries and for ``Sleep`` effects; replaceable (tests record waits).
        self.sleep = sleep
        self._retrying = {
            k: Retrying(sleep=lambda seconds: self.sleep(seconds), **v)  # noqa: PLW0108 - late bound
            for k, v in self._tenacity.items()
        }
        self._handlers = self.handlers()

    def execute(self, op: Call[T] | Flow[T]) -> T:
        """Run a call or a flow to completion."""
        if type(op) is Call and op.content is None:  # the common case, without a flow
            response = self.transmit(op)
            if response.status_code != 401:
                return self.finish(op, response)
            flow: Flow[T] = self.answer(op, response)
        elif isinstance(op, Call):
            flow = self.exchange(with_body(op, sync_body))
        else:
            flow = op
        done, item = self._settle(flow, None, None)
        while not done:
            try:
                value = self.perform(item)
            except BaseException as exc:  # sent into the flow so its finally blocks run
                done, item = self._settle(flow, None, exc)
            else:
                done, item = self._settle(flow, value, None)
        return cast(T, item)

    def perform(self, effect: Any) -> Any:
        """Perform one effect yielded by a flow (see :meth:`_Runner.handlers`)."""
        return self.handler(effect)(effect)

    def _sleep(self, effect: Sleep) -> None:
        self.sleep(effect.seconds)

    def _now(self, effect: Now) -> float:
        return time.monotonic()

    def _stream(self, effect: Stream) -> StreamResult:
        return run_sync(self, effect)

    def open_stream(self, spec: StreamSpec) -> Iterator[bytes]:
        """The output of a WebSocket route as an iterator (opened on the first ``next``)."""
        return open_sync(self, spec)

    def open_download(self, call: Call[Any]) -> Iterator[bytes]:
        """The body of ``call`` (a GET) as chunks while its response stays open (a build export
        relayed into another rack's import). Opening it is retried as any GET is (an error
        status or a failed connection before the body began); an error status left is raised
        typed. Once the body streams, a failure is the caller's (no chunk is sent twice)."""
        response = self.transmit(call, send=self._open_once)
        if response.status_code >= 300:
            self.finish(call, response)
        return _chunks_sync(response)

    def transmit(
        self, call: Call[Any], send: Callable[[Call[Any]], httpx.Response] | None = None
    ) -> httpx.Response:
        """Send once; hand a retryable outcome to tenacity, which replays it as attempt 1.
        ``send`` sends one attempt (default: read the whole answer)."""
        once = self._send_once if send is None else send
        failed: httpx.HTTPError | None = None
        try:
            response = once(call)
        except httpx.HTTPError as exc:
            failed = exc  # retried outside this block: later errors are not chained to it
        if failed is not None:
            return self._after_first(call, _Outcome(error=failed), once)
        if self.response_needs_retry(response, call):
            return self._after_first(call, _Outcome(response), once)
        return response

    def _after_first(
        self,
        call: Call[Any],
        first: _Outcome[httpx.Response],
        once: Callable[[Call[Any]], httpx.Response],
    ) -> httpx.Response:
        """The answer once the first attempt failed or was answered by a retryable status."""
        try:
            if not self.first_needs_retry(first, call):
                return first.replay(lambda: once(call))()
            retrying = self._retrying[call.idempotent].copy(before_sleep=self.log_retry(call))
            return retrying(first.replay(lambda: once(call)))
        except httpx.HTTPError as exc:
            self.transport_error(call, exc)

    def _open_once(self, call: Call[Any]) -> httpx.Response:
        """One attempt of :meth:`open_download`: a success stays open, an error is read."""
        response = self.http.send(self.request(self.http, call), stream=True)
        if response.status_code >= 300:
            try:
                response.read()
            finally:
                response.close()
        return response

    def send_raw(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send once, not retried, and return the open streaming response whatever its status
        (the official SDK's ``client.stream``); the caller closes it."""
        request, call = self.raw_request(self.http, method, path, kwargs)
        try:
            return self.http.send(request, stream=True)
        except httpx.HTTPError as exc:
            self.transport_error(call, exc)

    def _send_once(self, call: Call[Any]) -> httpx.Response:
        response = self.http.send(self.request(self.http, call), stream=True)
        try:
            if call.sink is None or response.status_code >= 300:
                response.read()
            else:
                _pump_sync(response, call.sink)
        finally:
            response.close()
        return response

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()


class AsyncDriver(_Runner):
    """Runs calls and flows on an ``httpx.AsyncClient`` (triggers, async applications)."""

    def __init__(
        self,
        config: ClientConfig,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(config)
        self.http = httpx.AsyncClient(transport=transport, **self.client_kwargs())
        #: Waits between retries and for ``Sleep`` effects; replaceable (tests record waits).
        self.sleep = sleep
        self._retrying = {
            k: AsyncRetrying(sleep=lambda seconds: self.sleep(seconds), **v)  # noqa: PLW0108
            for k, v in self._tenacity.items()
        }
        self._slots = asyncio.Semaphore(config.max_connections)
        self._handlers = self.handlers()

    def execute(self, op: Call[T] | Flow[T]) -> Awaitable[T]:
        """Return a coroutine running a call or a flow to completion (a call's body is checked
        now, before the coroutine is awaited)."""
        if type(op) is Call and op.content is None:
            return self._execute_call(op)
        if isinstance(op, Call):
            return self._execute(self.exchange(with_body(op, async_body)))
        return self._execute(op)

    async def _execute_call(self, call: Call[T]) -> T:
        """A body-less call, without a flow unless it meets a 401 (see :meth:`answer`)."""
        response = await self.transmit(call)
        if response.status_code != 401:
            return self.finish(call, response)
        return await self._execute(self.answer(call, response))

    async def _execute(self, flow: Flow[T]) -> T:
        done, item = self._settle(flow, None, None)
        while not done:
            try:
                value = await self.perform(item)
            except BaseException as exc:  # incl. CancelledError: the flow's finally blocks run
                done, item = self._settle(flow, None, exc)
            else:
                done, item = self._settle(flow, value, None)
        return cast(T, item)

    async def perform(self, effect: Any) -> Any:
        """Perform one effect yielded by a flow (see :meth:`_Runner.handlers`)."""
        return await self.handler(effect)(effect)

    async def _sleep(self, effect: Sleep) -> None:
        await self.sleep(effect.seconds)

    async def _now(self, effect: Now) -> float:
        return time.monotonic()

    async def _stream(self, effect: Stream) -> StreamResult:
        return await run_async(self, effect)

    def open_stream(self, spec: StreamSpec) -> AsyncIterator[bytes]:
        """The output of a WebSocket route as an async iterator (opened on the first ``next``)."""
        return open_async(self, spec)

    async def open_download(self, call: Call[Any]) -> AsyncIterator[bytes]:
        """The body of ``call`` (a GET) as chunks while its response stays open, as
        :meth:`SyncDriver.open_download` (not counted against ``max_connections``)."""
        response = await self.transmit(call, send=self._open_once)
        if response.status_code >= 300:
            self.finish(call, response)
        return _chunks_async(response)

    async def transmit(
        self,
        call: Call[Any],
        send: Callable[[Call[Any]], Awaitable[httpx.Response]] | None = None,
    ) -> httpx.Response:
        """Send once; hand a retryable outcome to tenacity, which replays it as attempt 1.
        ``send`` sends one attempt (default: read the whole answer, in a connection slot)."""
        once = self._send_once if send is None else send
        failed: httpx.HTTPError | None = None
        try:
            response = await once(call)
        except httpx.HTTPError as exc:
            failed = exc  # retried outside this block: later errors are not chained to it
        if failed is not None:
            return await self._after_first(call, _Outcome(error=failed), once)
        if self.response_needs_retry(response, call):
            return await self._after_first(call, _Outcome(response), once)
        return response

    async def _after_first(
        self,
        call: Call[Any],
        first: _Outcome[httpx.Response],
        once: Callable[[Call[Any]], Awaitable[httpx.Response]],
    ) -> httpx.Response:
        """As :meth:`SyncDriver._after_first`."""
        try:
            if not self.first_needs_retry(first, call):
                return first.replay(lambda: cast(httpx.Response, None))()
            retrying = self._retrying[call.idempotent].copy(before_sleep=self.log_retry(call))
            return cast(
                httpx.Response,
                await retrying(_async_replay(first, lambda: once(call))),
            )
        except httpx.HTTPError as exc:
            self.transport_error(call, exc)

    async def _open_once(self, call: Call[Any]) -> httpx.Response:
        """One attempt of :meth:`open_download`: a success stays open, an error is read."""
        response = await self.http.send(self.request(self.http, call), stream=True)
        if response.status_code >= 300:
            try:
                await response.aread()
            finally:
                await response.aclose()
        return response

    async def send_raw(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """As :meth:`SyncDriver.send_raw`; the caller closes the response (``aclose``)."""
        request, call = self.raw_request(self.http, method, path, kwargs)
        try:
            return await self.http.send(request, stream=True)
        except httpx.HTTPError as exc:
            self.transport_error(call, exc)

    async def _send_once(self, call: Call[Any]) -> httpx.Response:
        # Queue here, not in httpcore: its pool rescans every queued request on each release,
        # which stalls a triggerer with a thousand waits on one client (bench_waits).
        async with self._slots:
            return await self._send_in_slot(call)

    async def _send_in_slot(self, call: Call[Any]) -> httpx.Response:
        response = await self.http.send(self.request(self.http, call), stream=True)
        try:
            if call.sink is None or response.status_code >= 300:
                await response.aread()
            else:
                await _pump_async(response.aiter_bytes(), call.sink)
        finally:
            await response.aclose()
        return response

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()


def with_body(call: Call[T], adapt: Callable[[object], Body]) -> Call[T]:
    """``call`` with its raw body checked and adapted by the driver's ``adapt``."""
    if call.content is None:
        return call
    content = adapt(call.content)
    return call if content is call.content else dataclasses.replace(call, content=content)


def _async_replay(
    first: _Outcome[httpx.Response], then: Callable[[], Awaitable[httpx.Response]]
) -> Callable[[], Awaitable[httpx.Response]]:
    used = False

    async def attempt() -> httpx.Response:
        nonlocal used
        if used:
            return await then()
        used = True
        return first.replay(lambda: cast(httpx.Response, None))()

    return attempt


def _pump_sync(response: httpx.Response, sink: Callable[[bytes], None]) -> None:
    try:
        for chunk in response.iter_bytes():
            sink(chunk)
    except httpx.TransportError as exc:  # bytes already delivered: never retried
        raise ConvoxConnectionError(f"download broke after it started: {exc}") from exc


async def _pump_async(chunks: AsyncIterable[bytes], sink: Callable[[bytes], None]) -> None:
    try:
        async for chunk in chunks:
            sink(chunk)
    except httpx.TransportError as exc:  # bytes already delivered: never retried
        raise ConvoxConnectionError(f"download broke after it started: {exc}") from exc


def _chunks_sync(response: httpx.Response) -> Iterator[bytes]:
    try:
        yield from response.iter_bytes()
    except httpx.TransportError as exc:  # bytes already delivered: never retried
        raise ConvoxConnectionError(f"download broke after it started: {exc}") from exc
    finally:
        response.close()


async def _chunks_async(response: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_bytes():
            yield chunk
    except httpx.TransportError as exc:  # bytes already delivered: never retried
        raise ConvoxConnectionError(f"download broke after it started: {exc}") from exc
    finally:
        await response.aclose()
