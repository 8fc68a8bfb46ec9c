"""The effects a route or a workflow hands to a driver, and the parsers of the answers.

A REST route *describes* its request as a :class:`Call` instead of sending it; a multi-step
workflow is a generator (a :data:`Flow`) that yields effects (:class:`Call`, :class:`Sleep`,
:class:`Now`, :class:`Stream`) and receives their results. Nothing here knows about sockets or
about the drivers (:mod:`.transport`) that perform the effects; :mod:`.operation` binds route
and workflow declarations to a driver.
"""

from __future__ import annotations

import functools
import json
from collections.abc import (
    AsyncIterable,
    Callable,
    Generator,
    Iterable,
)
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar, cast

import httpx

from convox_provider.client.models import list_adapter

if TYPE_CHECKING:
    from pydantic import BaseModel


__all__ = [
    "DEFAULT_TIMEOUT",
    "Body",
    "Call",
    "Effect",
    "Flow",
    "Now",
    "On",
    "Pairs",
    "Sleep",
    "Stream",
    "StreamResult",
    "StreamSpec",
    "call",
    "now",
    "parse_bytes",
    "parse_json",
    "parse_list",
    "parse_model",
    "parse_ok",
    "parse_text",
    "sleep",
    "stream",
]

T = TypeVar("T")
M = TypeVar("M", bound="BaseModel")

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
    ``application/octet-stream`` body (docs/rack-api.md §2.4); never both. ``retry_safe`` says
    whether the request may be sent again after a failure that might have reached the rack:
    by default only ``GET`` is (docs/rack-api.md §8 item 8). ``sink``, when set, receives the
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
    """One WebSocket stream of the rack (logs, build logs, exec; docs/rack-api.md §6).

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


@dataclass(frozen=True)
class On:
    """Effect: perform ``effect`` on another client's driver (a workflow spanning two racks,
    e.g. a build copied from one to another); the result is that driver's result. Both drivers
    must be of the same kind (sync or async)."""

    driver: Any
    effect: Any


Effect: TypeAlias = Call[Any] | Sleep | Now | Stream | On | Any
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
    """Accept the rack's ``ok\\n`` action answer (docs/rack-api.md §3.1); the body is not JSON."""


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
