"""WebSocket streams of the rack: logs, build logs, exec (docs/rack-api.md §6).

The handshake and the framing run on ``websockets``' sans-I/O :class:`ClientProtocol`, driven by
a blocking socket for :class:`~convox_provider.client.transport.SyncDriver` and by an asyncio
protocol for :class:`~convox_provider.client.transport.AsyncDriver`. The library's high-level
clients are not used: they decode text frames as UTF-8 (the rack's frames are raw bytes split at
arbitrary points, §6.3) and hide the frame type, which is how the end of a stream is told
(an empty *binary* frame). What the frames mean is decided once, in
:class:`~convox_provider.client._frames.StreamDecoder`.

Keep-alive follows the Go client: a ping after every 5 s of silence, and no pong is ever
expected (the rack only answers pings while it reads, which it does not on log routes).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import ssl
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Generator,
    Iterable,
    Iterator,
)
from typing import TYPE_CHECKING, Protocol, TypeVar, cast, overload

import httpx
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from convox_provider.client._frames import LineDecoder, StreamDecoder
from convox_provider.client.effects import (
    Call,
    Flow,
    Stream,
    StreamResult,
    StreamSpec,
    parse_ok,
)
from convox_provider.client.errors import (
    ConvoxAPIError,
    ConvoxAuthError,
    ConvoxConnectionError,
    ConvoxNotFoundError,
    ConvoxStreamError,
    ConvoxTimeoutError,
    ConvoxWaitTimeoutError,
)

if TYPE_CHECKING:
    from convox_provider.client.config import ClientConfig

T = TypeVar("T")


class StreamDriver(Protocol):
    """What a stream needs of the driver it runs on (both drivers have it)."""

    @property
    def config(self) -> ClientConfig: ...

    @property
    def session_id(self) -> str | None: ...

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context of the driver's HTTP connections, used for ``wss://`` too."""
        ...

    def finish(self, call: Call[T], response: httpx.Response) -> T:
        """Read an HTTP answer as the driver does (here: a refused upgrade)."""
        ...


class SyncStreamDriver(StreamDriver, Protocol):
    """A driver running flows to completion (:class:`~.transport.SyncDriver`)."""

    def execute(self, op: Call[T] | Flow[T]) -> T:
        """Run a call or a flow."""
        ...


class AsyncStreamDriver(StreamDriver, Protocol):
    """A driver running flows as coroutines (:class:`~.transport.AsyncDriver`)."""

    def execute(self, op: Call[T] | Flow[T]) -> Awaitable[T]:
        """Run a call or a flow."""
        ...


__all__ = [
    "PING_INTERVAL",
    "ConvoxStreamNotFoundError",
    "console_session",
    "lines",
    "AsyncStreamDriver",
    "StreamDriver",
    "SyncStreamDriver",
    "open_async",
    "open_sync",
    "run_async",
    "run_sync",
]

PING_INTERVAL = 5.0
"""Seconds of silence after which a ping is sent (the Go client's cadence, §6.8)."""

_READ_SIZE = 256 * 1024
_EXEC_UNSURE = (
    "; the command may have started on the rack, so it was not run again: check its effect "
    "before repeating it"
)
_MAX_FRAME = 16 * 1024 * 1024


def console_session(driver: StreamDriver, path: str) -> Flow[None]:
    """Flow: on a console without a session yet, make the throw-away GET that opens one.

    A WebSocket upgrade cannot answer the console's session challenge, so like the Go client
    this first GETs ``/machines`` (paths under ``/app``) or ``/racks`` through the HTTP driver,
    which answers the challenge (docs/rack-api.md §1.5). Its error statuses are ignored except 401:
    a key the console refuses would fail the stream too, with a vaguer message.
    """
    if not driver.config.console or driver.session_id is not None:
        return
    probe = "/machines" if path.startswith("/app") else "/racks"
    try:
        yield Call("GET", probe, parse_ok)
    except ConvoxAPIError as exc:
        if isinstance(exc, ConvoxAuthError):
            raise


class ConvoxStreamNotFoundError(ConvoxNotFoundError, ConvoxStreamError):
    """A stream the rack ended at once with ``ERROR: … not found`` (the logs of a missing build,
    app or process): a :class:`ConvoxNotFoundError` like a missing object anywhere else, and
    still a :class:`ConvoxStreamError`. ``status_code`` is 404 (the upgrade itself succeeded);
    ``request_id`` is the upgrade's."""


class _Connection:
    """One stream without I/O: handshake, frames in and out, and what they mean."""

    def __init__(self, driver: StreamDriver, spec: StreamSpec) -> None:
        self.driver = driver
        self.spec = spec
        base = driver.config.base_url
        self.url = ("wss" if base.startswith("https:") else "ws") + base[base.index(":") :]
        self.url += spec.path
        self.uri = parse_uri(self.url)
        self.protocol = ClientProtocol(self.uri, max_size=(None, _MAX_FRAME))
        self.decoder = StreamDecoder(exit_code=spec.exit_code)
        self.open = False  # the server accepted the upgrade
        self.request_id: str | None = None  # of the accepted upgrade

    @property
    def address(self) -> tuple[str, int]:
        return self.uri.host, self.uri.port

    @property
    def tls(self) -> ssl.SSLContext | None:
        return self.driver.ssl_context if self.uri.secure else None

    @property
    def finished(self) -> bool:
        return self.decoder.done

    def start(self) -> bytes:
        """The handshake request; read once the console session (if any) is known."""
        request = self.protocol.connect()
        headers = dict(self.driver.config.headers())
        if self.driver.session_id is not None:
            headers["Session"] = self.driver.session_id
        headers.update(self.spec.headers)
        for name, value in headers.items():
            request.headers[name] = value
        self.protocol.send_request(request)
        return self.outgoing()

    def outgoing(self) -> bytes:
        """Bytes the protocol wants sent (pongs, pings, stdin)."""
        return b"".join(self.protocol.data_to_send())

    def ping(self) -> bytes:
        """A ping after a silence; its pong is never awaited (§6.3)."""
        self.protocol.send_ping(b"")
        return self.outgoing()

    def receive(self, data: bytes) -> bytes:
        """Feed bytes from the network (``b""`` = closed); return the stream output they carry."""
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()
        out: list[bytes] = []
        feed = self.decoder.feed
        for event in self.protocol.events_received():
            if type(event) is Frame:
                if self.decoder.done:
                    continue
                if event.opcode is Opcode.CLOSE:
                    self.decoder.connection_lost()
                payload = event.data
                chunk = feed(
                    event.opcode, payload if type(payload) is bytes else bytes(payload), event.fin
                )
                if chunk:
                    out.append(chunk)
            elif isinstance(event, Response):
                self._handshake(event)
        if not self.open:
            if not data:
                raise ConvoxConnectionError(
                    f"WebSocket {self.url}: the connection closed during the handshake{self.unsure}"
                )
            if self.protocol.handshake_exc is not None:
                raise ConvoxConnectionError(
                    f"WebSocket {self.url}: handshake failed: {self.protocol.handshake_exc}"
                    f"{self.unsure}"
                )
        elif not data:
            self.decoder.connection_lost()
        elif self.protocol.parser_exc is not None and not self.decoder.done:
            raise ConvoxConnectionError(
                f"WebSocket {self.url}: invalid data from the server: {self.protocol.parser_exc}"
            ) from self.protocol.parser_exc
        return out[0] if len(out) == 1 else b"".join(out)

    def _handshake(self, response: Response) -> None:
        error = self.protocol.handshake_exc
        if error is None:
            self.open = True
            self.request_id = response.headers.get("Request-Id")
            self._send_stdin()
            return
        if not isinstance(error, InvalidStatus):
            raise ConvoxConnectionError(
                f"WebSocket {self.url}: handshake failed: {error}{self.unsure}"
            )
        answer = httpx.Response(
            response.status_code,
            headers=list(response.headers.raw_items()),
            content=bytes(response.body),
        )
        # An exec is a write: its error statuses say so (see ``_Exchange.finish``).
        upgrade = Call("GET", self.spec.path, parse_ok, retry_safe=not self.spec.exit_code)
        self.driver.finish(upgrade, answer)
        raise ConvoxConnectionError(
            f"WebSocket {self.url}: expected a WebSocket upgrade, got status {response.status_code}"
        )

    def _send_stdin(self) -> None:
        stdin = self.spec.stdin
        if stdin is None:
            return
        for start in range(0, len(stdin), 32 * 1024):
            self.protocol.send_text(stdin[start : start + 32 * 1024])
        self.protocol.send_binary(b"")  # any binary frame means EOF (§6.4)

    def result(self) -> StreamResult:
        """The outcome; raises ``ConvoxStreamError`` when the server ended with ``ERROR:``
        (:class:`ConvoxStreamNotFoundError`, also a ``ConvoxNotFoundError``, when it said that
        what the stream is of is not found, before any output)."""
        error = self.decoder.error
        if error is not None and not self.decoder.received and "not found" in error.lower():
            raise ConvoxStreamNotFoundError(
                error,
                status_code=404,
                request_id=self.request_id,
                method="GET",
                path=self.spec.path,
                hint="the rack said so in the stream's ERROR frame",
            )
        self.decoder.check()
        return StreamResult(self.decoder.exit_code, self.decoder.received)

    @property
    def unsure(self) -> str:
        """For an exec, what a failure cannot tell: whether the command started (it is never
        run again automatically); empty for log streams, which can simply be opened again."""
        return _EXEC_UNSURE if self.spec.exit_code else ""

    def failure(self, exc: BaseException) -> ConvoxConnectionError:
        """A network error as a Convox error naming the stream (never its headers)."""
        if isinstance(exc, (socket.timeout, asyncio.TimeoutError, TimeoutError)):
            when = "during the stream" if self.open else "before the handshake"
            return ConvoxTimeoutError(f"WebSocket {self.url} timed out {when}{self.unsure}")
        detail = exc or type(exc).__name__
        return ConvoxConnectionError(f"WebSocket {self.url} failed: {detail}{self.unsure}")


# -- sync I/O -----------------------------------------------------------------------------------


def _sync_chunks(driver: SyncStreamDriver, conn: _Connection) -> Generator[bytes, None, None]:
    driver.execute(console_session(driver, conn.spec.path))
    timeout = driver.config.timeout
    try:
        sock = socket.create_connection(conn.address, timeout=timeout)
        if conn.tls is not None:
            sock = conn.tls.wrap_socket(sock, server_hostname=conn.uri.host)
    except OSError as exc:
        raise conn.failure(exc) from exc
    try:
        sock.sendall(conn.start())
        while not conn.finished:
            try:
                data = sock.recv(_READ_SIZE)
            except TimeoutError:
                if not conn.open:
                    raise
                sock.sendall(conn.ping())
                yield b""  # a tick: the consumer may check its deadline on a silent stream
                continue
            was_open = conn.open
            out = conn.receive(data)
            if conn.open and not was_open:
                sock.settimeout(PING_INTERVAL)
            pending = conn.outgoing()
            if pending:
                sock.sendall(pending)
            if out:
                yield out
    except OSError as exc:
        raise conn.failure(exc) from exc
    finally:
        sock.close()


def run_sync(driver: SyncStreamDriver, effect: Stream) -> StreamResult:
    """Perform a :class:`Stream` effect on the sync driver."""
    conn = _Connection(driver, effect.spec)
    deliver = _Delivery(effect, conn)
    chunks = _sync_chunks(driver, conn)
    try:
        for chunk in chunks:
            deliver(chunk)
    except _Paused:
        return deliver.paused()
    finally:
        chunks.close()
    return conn.result()


def _sync_iterator(driver: SyncStreamDriver, conn: _Connection) -> Iterator[bytes]:
    for chunk in _sync_chunks(driver, conn):
        if chunk:
            yield chunk
    conn.result()


class _Paused(Exception):
    """The effect's ``pause_after``/``pause_idle`` came while its stream was still open."""


class _Delivery:
    """Hands a stream's output to its effect's ``on_data``; enforces its ``timeout`` and its
    pauses (:class:`_Paused`)."""

    def __init__(self, effect: Stream, conn: _Connection) -> None:
        self.on_data = effect.on_data
        self.timeout = effect.timeout
        self.path = conn.spec.path
        self.conn = conn
        started = time.monotonic()
        self.deadline = None if effect.timeout is None else started + effect.timeout
        self.pause_at = None if effect.pause_after is None else started + effect.pause_after
        self.pause_idle = effect.pause_idle
        self.last_output = started

    def __call__(self, chunk: bytes) -> None:
        clock = time.monotonic()
        if chunk:
            self.on_data(chunk)
            self.last_output = clock
        if self.deadline is not None and clock > self.deadline:
            raise ConvoxWaitTimeoutError(
                f"the stream {self.path} was still open after {self.timeout:g}s; closed it"
            )
        if (self.pause_at is not None and clock >= self.pause_at) or (
            self.pause_idle is not None and clock - self.last_output >= self.pause_idle
        ):
            raise _Paused

    def paused(self) -> StreamResult:
        """The result of a stream handed back open."""
        return StreamResult(None, self.conn.decoder.received, ended=False)


# -- async I/O ----------------------------------------------------------------------------------


class _Receiver(asyncio.Protocol):
    """asyncio side of one stream: feeds received bytes to the connection as they arrive and
    queues its output (reading pauses while more than 4 MiB waits for the consumer)."""

    _HIGH = 4 * 1024 * 1024
    _LOW = 1024 * 1024

    def __init__(self, conn: _Connection) -> None:
        self.conn = conn
        self.transport: asyncio.Transport | None = None
        self.output: collections.deque[bytes] = collections.deque()
        self.queued = 0
        self.paused = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._feed(data)

    def eof_received(self) -> bool:
        self._feed(b"")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.conn.finished and self.error is None:
            self._feed(b"")
        self._wake()

    def _feed(self, data: bytes) -> None:
        if self.error is not None or self.conn.finished:
            return
        try:
            out = self.conn.receive(data)
        except BaseException as exc:  # raised to the consumer after the output before it
            self.error = exc
        else:
            self.send(self.conn.outgoing())
            if out:
                self.output.append(out)
                self.queued += len(out)
                if self.queued > self._HIGH and not self.paused and self.transport is not None:
                    self.transport.pause_reading()
                    self.paused = True
        self._wake()

    def send(self, data: bytes) -> None:
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def take(self) -> bytes:
        chunk = self.output.popleft()
        self.queued -= len(chunk)
        if self.paused and self.queued < self._LOW and self.transport is not None:
            self.transport.resume_reading()
            self.paused = False
        return chunk

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def wait(self, timeout: float | None) -> bool:
        """Wait for news from the connection; False after ``timeout`` seconds of silence."""
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(self.waiter, timeout)
        except asyncio.TimeoutError:
            return False
        finally:
            self.waiter = None
        return True


async def _async_chunks(
    driver: AsyncStreamDriver, conn: _Connection
) -> AsyncGenerator[bytes, None]:
    await driver.execute(console_session(driver, conn.spec.path))
    timeout = driver.config.timeout
    host, port = conn.address
    loop = asyncio.get_running_loop()
    try:
        transport, receiver = await asyncio.wait_for(
            loop.create_connection(
                lambda: _Receiver(conn),
                host,
                port,
                ssl=conn.tls,
                server_hostname=host if conn.tls is not None else None,
            ),
            timeout,
        )
    except (OSError, asyncio.TimeoutError) as exc:
        raise conn.failure(exc) from exc
    try:
        receiver.send(conn.start())
        while True:
            if receiver.output:
                yield receiver.take()
            elif receiver.error is not None:
                error = receiver.error
                if isinstance(error, OSError):
                    raise conn.failure(error) from error
                raise error
            elif conn.finished:
                return
            elif not await receiver.wait(PING_INTERVAL if conn.open else timeout):
                if not conn.open:
                    raise conn.failure(asyncio.TimeoutError())
                receiver.send(conn.ping())
                yield b""  # a tick: the consumer may check its deadline on a silent stream
    finally:
        transport.close()


async def run_async(driver: AsyncStreamDriver, effect: Stream) -> StreamResult:
    """Perform a :class:`Stream` effect on the async driver."""
    conn = _Connection(driver, effect.spec)
    deliver = _Delivery(effect, conn)
    chunks = _async_chunks(driver, conn)
    async with contextlib.aclosing(chunks):
        try:
            async for chunk in chunks:
                deliver(chunk)
        except _Paused:
            return deliver.paused()
    return conn.result()


async def _async_iterator(driver: AsyncStreamDriver, conn: _Connection) -> AsyncIterator[bytes]:
    chunks = _async_chunks(driver, conn)
    async with contextlib.aclosing(chunks):
        async for chunk in chunks:
            if chunk:
                yield chunk
    conn.result()


# -- public entry points ------------------------------------------------------------------------


def open_sync(driver: SyncStreamDriver, spec: StreamSpec) -> Iterator[bytes]:
    """The output of ``spec`` as an iterator (``SyncDriver.open_stream``).

    Nothing is sent until the first ``next``. The iterator ends after the rack's end frame and
    raises ``ConvoxStreamError`` (``ERROR:`` end frame) or ``ConvoxConnectionError`` (cut before
    the end frame) at the end of the output.
    """
    return _sync_iterator(driver, _Connection(driver, spec))


def open_async(driver: AsyncStreamDriver, spec: StreamSpec) -> AsyncIterator[bytes]:
    """The output of ``spec`` as an async iterator (``AsyncDriver.open_stream``); as
    :func:`open_sync` otherwise."""
    return _async_iterator(driver, _Connection(driver, spec))


@overload
def lines(chunks: Iterable[bytes]) -> Iterator[str]: ...


@overload
def lines(chunks: AsyncIterable[bytes]) -> AsyncIterator[str]: ...


def lines(chunks: Iterable[bytes] | AsyncIterable[bytes]) -> Iterator[str] | AsyncIterator[str]:
    """Text lines of a stream's output, e.g. ``for line in lines(client.apps.logs(app))``.

    Lines and UTF-8 characters split across frames are joined; invalid bytes become U+FFFD;
    ``\\n`` and ``\\r\\n`` endings are removed. Works on sync and async iterators alike.
    """
    if isinstance(chunks, AsyncIterable):
        return _async_lines(chunks)
    return _sync_lines(chunks)


def _sync_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    decoder = LineDecoder()
    for chunk in chunks:
        yield from decoder.feed(chunk)
    yield from decoder.flush()


async def _async_lines(chunks: AsyncIterable[bytes]) -> AsyncIterator[str]:
    decoder = LineDecoder()
    async for chunk in chunks:
        for line in decoder.feed(chunk):
            yield line
    for line in decoder.flush():
        yield line
