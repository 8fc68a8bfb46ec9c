"""One declaration per API operation, run by a sync or an async driver.

Every REST route is a method of a resource class that *describes* the request (a :class:`Call`)
instead of sending it; every multi-step workflow is a generator (a :data:`Flow`) that yields
effects (:class:`Call`, :class:`Sleep`, :class:`Now`) and receives their results. Neither knows
about sockets. The :class:`operation` decorator turns such a method into a callable that a
:class:`~convox_provider.client.transport.SyncDriver` runs to completion and that an
:class:`~convox_provider.client.transport.AsyncDriver` returns as a coroutine, so
``ConvoxClient`` and ``AsyncConvoxClient`` share every route and workflow definition.

Writing a workflow::

    @operation
    def wait_for_build(self, app: str, build_id: str) -> Flow[Build]:
        while True:
            build = yield from call(self._get(app, build_id))
            if build.build_status.is_terminal:
                return build
            yield from sleep(1.0)
"""

from __future__ import annotations

import functools
import json
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
)
from dataclasses import dataclass, field
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Generic,
    ParamSpec,
    TypeAlias,
    TypeVar,
    cast,
    overload,
)

import httpx

from convox_provider.client.models import list_adapter

if TYPE_CHECKING:
    from pydantic import BaseModel

    from convox_provider.client.transport import AsyncDriver, SyncDriver

__all__ = [
    "Call",
    "Effect",
    "Flow",
    "Now",
    "Resource",
    "Sleep",
    "Stream",
    "StreamResult",
    "StreamSpec",
    "call",
    "now",
    "operation",
    "parse_bytes",
    "parse_json",
    "parse_list",
    "parse_model",
    "parse_ok",
    "parse_text",
    "sleep",
    "stream",
    "stream_operation",
]

T = TypeVar("T")
M = TypeVar("M", bound="BaseModel")
P = ParamSpec("P")
D = TypeVar("D", bound="SyncDriver | AsyncDriver")

Body: TypeAlias = bytes | Iterable[bytes] | AsyncIterable[bytes] | None
Pairs: TypeAlias = tuple[tuple[str, str], ...]


class _Default:
    """Marker: use the client's configured timeout."""

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT_TIMEOUT = _Default()


@dataclass(frozen=True)
class Call(Generic[T]):
    """One HTTP request to the rack, fully encoded, plus how to read its answer.

    ``path`` is already escaped (see :func:`~convox_provider.client.encoding.segment`).
    ``form`` becomes an ``application/x-www-form-urlencoded`` body, ``content`` a raw
    ``application/octet-stream`` body (convox-api.md §2.4); never both. ``retry_safe`` says
    whether the request may be sent again after a failure that might have reached the rack:
    by default only ``GET`` is (convox-api.md §8 item 8). ``sink``, when set, receives the
    response body chunk by chunk instead of it being held in memory (object fetch, build
    export); ``parse`` then sees a response whose body was consumed.
    """

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    form: Pairs = ()
    query: Pairs = ()
    headers: Pairs = ()
    content: Body = None
    timeout: float | _Default | None = DEFAULT_TIMEOUT
    retry_safe: bool | None = None
    sink: Callable[[bytes], None] | None = None

    @property
    def idempotent(self) -> bool:
        """Whether a retry after an ambiguous failure can never do the work twice."""
        if self.retry_safe is not None:
            return self.retry_safe
        return self.method == "GET"


@dataclass(frozen=True)
class Sleep:
    """Effect: wait ``seconds`` (``time.sleep`` or ``asyncio.sleep``)."""

    seconds: float


@dataclass(frozen=True)
class Now:
    """Effect: read the monotonic clock (so tests can drive flows with a fake clock)."""


@dataclass(frozen=True)
class StreamSpec:
    """One WebSocket stream of the rack (logs, build logs, exec; convox-api.md §6).

    ``path`` is already escaped; ``headers`` are the route's option headers (the rack reads no
    query string on these routes). ``exit_code`` asks for the exec exit-code marker to be parsed
    (§6.6). ``stdin`` is sent as text frames followed by the EOF frame right after the
    handshake (exec only, §6.4).
    """

    path: str
    headers: Pairs = ()
    exit_code: bool = False
    stdin: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class StreamResult:
    """How a stream ended: the exec exit code (None for log streams) and the output size.

    ``ended`` is False when the stream was still open and was handed back to the flow by its
    ``pause_after``/``pause_idle`` (the connection is then closed; open it again to go on).
    """

    exit_code: int | None
    bytes_received: int
    ended: bool = True


@dataclass(frozen=True)
class Stream:
    """Effect: run a WebSocket stream to its end, handing each chunk of output to ``on_data``.

    The result is a :class:`StreamResult`. An ``ERROR:`` end frame raises
    :class:`~convox_provider.client.errors.ConvoxStreamError`; a connection that closes before
    the end frame raises :class:`~convox_provider.client.errors.ConvoxConnectionError`.
    ``timeout`` (seconds) bounds how long the stream may run: past it the stream is closed and
    :class:`~convox_provider.client.errors.ConvoxWaitTimeoutError` raised. ``pause_after``
    (seconds open) and ``pause_idle`` (seconds without output) hand the flow back while the
    stream is still open, with ``StreamResult.ended`` False, so that it can poll what the
    stream cannot tell (a build whose pod died keeps its log stream open and silent). Each is
    checked as output arrives and, on a silent stream, at every keep-alive ping (5 s).
    """

    spec: StreamSpec
    on_data: Callable[[bytes], None]
    timeout: float | None = None
    pause_after: float | None = None
    pause_idle: float | None = None


Effect: TypeAlias = Call[Any] | Sleep | Now | Stream | Any
Flow: TypeAlias = Generator[Any, Any, T]
"""A workflow: yields effects, receives their results, returns ``T``."""


def call(request: Call[T]) -> Flow[T]:
    """Inside a flow: ``result = yield from call(request)``, typed."""
    return cast(T, (yield request))


def sleep(seconds: float) -> Flow[None]:
    """Inside a flow: ``yield from sleep(2.0)``."""
    yield Sleep(seconds)


def now() -> Flow[float]:
    """Inside a flow: ``t = yield from now()`` (monotonic seconds)."""
    return cast(float, (yield Now()))


def stream(
    spec: StreamSpec,
    on_data: Callable[[bytes], None],
    *,
    timeout: float | None = None,
    pause_after: float | None = None,
    pause_idle: float | None = None,
) -> Flow[StreamResult]:
    """Inside a flow: ``result = yield from stream(spec, on_data)``, typed."""
    effect = Stream(spec, on_data, timeout, pause_after, pause_idle)
    return cast(StreamResult, (yield effect))


# -- response parsers ---------------------------------------------------------------------------


def parse_model(model: type[M]) -> Callable[[httpx.Response], M]:
    """Parse a JSON object answer into ``model``."""
    validate = model.model_validate_json

    def parse(response: httpx.Response) -> M:
        return validate(response.content)

    return parse


@functools.cache
def parse_list(model: type[M]) -> Callable[[httpx.Response], list[M]]:
    """Parse a JSON list answer into ``list[model]``."""
    validate = list_adapter(model).validate_json

    def parse(response: httpx.Response) -> list[M]:
        return validate(response.content)

    return parse


def parse_ok(response: httpx.Response) -> None:
    """Accept the rack's ``ok\\n`` action answer (convox-api.md §3.1); the body is not JSON."""


def parse_json(response: httpx.Response) -> Any:
    """Decode JSON, or return the text for the rack's plain-text answers (``ok\\n``)."""
    content_type = response.headers.get("content-type", "")
    if "json" in content_type:
        return json.loads(response.content)
    return response.text


def parse_text(response: httpx.Response) -> str:
    """Return the body as text."""
    return response.text


def parse_bytes(response: httpx.Response) -> bytes:
    """Return the body as bytes."""
    return response.content


# -- the operation descriptor -------------------------------------------------------------------


class Resource(Generic[D]):
    """A group of operations (``client.apps``, ``client.builds``…) bound to one driver."""

    def __init__(self, driver: D) -> None:
        self._driver = driver


R = TypeVar("R")


class _Declaration(Generic[P, R]):
    """What :class:`operation` and :class:`stream_operation` share: a method declared once,
    bound on first access to the resource's driver and cached on the resource."""

    def __init__(self, build: Callable[Concatenate[Any, P], R]) -> None:
        self._build = build
        self._name = build.__name__
        self.__doc__ = build.__doc__
        self.__wrapped__ = build

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._name = name

    def _bind(self, obj: Resource[Any], run: Callable[[R], Any]) -> Callable[..., Any]:
        build = self._build

        @functools.wraps(build)
        def bound(*args: Any, **kwargs: Any) -> Any:
            return run(build(obj, *args, **kwargs))

        # Cache on the instance: later lookups skip the descriptor entirely.
        obj.__dict__[self._name] = bound
        return bound

    def describe(self, resource: Resource[Any], *args: Any, **kwargs: Any) -> R:
        """Return what the operation would do without doing it (for tests and tooling)."""
        return self._build(resource, *args, **kwargs)


class operation(_Declaration[P, "Call[T] | Flow[T]"], Generic[P, T]):
    """Declare an operation once; run it on whichever driver the resource is bound to.

    The decorated method returns a :class:`Call` or a :data:`Flow`. It runs when the caller
    calls the operation, so argument validation happens before anything is sent, even for the
    async client (where it raises at call time, before the coroutine is awaited).
    """

    @overload
    def __get__(self, obj: None, owner: type[Any] | None = None) -> operation[P, T]: ...

    @overload
    def __get__(
        self, obj: Resource[SyncDriver], owner: type[Any] | None = None
    ) -> Callable[P, T]: ...

    @overload
    def __get__(
        self, obj: Resource[AsyncDriver], owner: type[Any] | None = None
    ) -> Callable[P, Awaitable[T]]: ...

    def __get__(self, obj: Resource[Any] | None, owner: type[Any] | None = None) -> Any:
        if obj is None:
            return self
        return self._bind(obj, obj._driver.execute)


class stream_operation(_Declaration[P, StreamSpec]):
    """Declare a WebSocket stream once; iterate its output on either client.

    The decorated method returns a :class:`StreamSpec`. Called on a sync resource the operation
    returns an ``Iterator[bytes]``, on an async resource an ``AsyncIterator[bytes]``; arguments
    are validated at call time, the connection opens on the first ``next``. Leaving the loop
    early closes the connection (for the async iterator: ``contextlib.aclosing``).
    """

    @overload
    def __get__(self, obj: None, owner: type[Any] | None = None) -> stream_operation[P]: ...

    @overload
    def __get__(
        self, obj: Resource[SyncDriver], owner: type[Any] | None = None
    ) -> Callable[P, Iterator[bytes]]: ...

    @overload
    def __get__(
        self, obj: Resource[AsyncDriver], owner: type[Any] | None = None
    ) -> Callable[P, AsyncIterator[bytes]]: ...

    def __get__(self, obj: Resource[Any] | None, owner: type[Any] | None = None) -> Any:
        if obj is None:
            return self
        from convox_provider.client.websocket import open_stream  # noqa: PLC0415 - imports us

        return self._bind(obj, functools.partial(open_stream, obj._driver))
