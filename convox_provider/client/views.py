"""Client views: the same client, its connection pool shared, with headers of their own.

``client.with_headers({"Convox-Actor": "..."})`` (or ``client.with_actor("...")``) returns a
client of the same kind whose every request and WebSocket upgrade also carries those headers.
The view runs on the driver of the client it came from: no new connection pool, no new TLS
context, and the console session (docs/rack-api.md §1.5) is the client's. So a triggerer that
shares one async client among a thousand waits can still tell the rack which task sent each
request (``Convox-Actor``, docs/rack-api.md §1.2).

The headers are added to the effects a route or a workflow yields (:class:`~.effects.Call`,
:class:`~.effects.Stream`, and the effects a cross-rack workflow sends to another client's
driver with :class:`~.effects.On`), never to the driver: the workflows stay unaware of views.
A view does not own the pool: closing it does nothing; close the client it came from.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, TypeVar

from convox_provider.client.config import _header_safe
from convox_provider.client.effects import Call, Flow, On, Pairs, Stream, StreamSpec
from convox_provider.client.errors import ConvoxConfigError

__all__ = ["ACTOR_HEADER", "AsyncHeaderView", "SyncHeaderView", "check_headers", "view_of"]

ACTOR_HEADER = "Convox-Actor"
"""The audit header: the actor name the rack records in its events (docs/rack-api.md §1.2)."""

T = TypeVar("T")

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_RESERVED = frozenset({"authorization", "rack", "session", "host", "content-length"})
"""Headers a view may not set: the credentials, the console's rack and session, and what the
HTTP layer owns. Use the client's configuration for the first three."""


def check_headers(headers: Mapping[str, str]) -> Pairs:
    """``headers`` as pairs, or :class:`ConvoxConfigError` naming the header that cannot be sent."""
    pairs: list[tuple[str, str]] = []
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN.match(name):
            raise ConvoxConfigError(f"{name!r} is not an HTTP header name", setting="headers")
        if name.lower() in _RESERVED:
            raise ConvoxConfigError(
                f"a client view cannot set the {name} header: it belongs to the client's "
                "configuration (key, rack, console session) or to HTTP itself",
                setting="headers",
            )
        if not isinstance(value, str) or not _header_safe(value):
            raise ConvoxConfigError(
                f"the value of header {name} must be printable ASCII text", setting="headers"
            )
        pairs.append((name, value))
    return tuple(pairs)


def _merged(own: Pairs, extra: Pairs) -> Pairs:
    """``own`` (a route's option headers) with ``extra`` added; a route's header wins."""
    taken = {name.lower() for name, _ in own}
    return own + tuple((name, value) for name, value in extra if name.lower() not in taken)


class _HeaderView:
    """A driver stand-in adding ``headers`` to everything it hands to ``inner``."""

    def __init__(self, inner: Any, headers: Pairs) -> None:
        self._inner = inner
        self._headers = headers

    def __getattr__(self, name: str) -> Any:  # config, session_id, ssl_context, finish...
        return getattr(self._inner, name)

    def _call(self, call: Call[T]) -> Call[T]:
        return dataclasses.replace(call, headers=_merged(call.headers, self._headers))

    def _spec(self, spec: StreamSpec) -> StreamSpec:
        return dataclasses.replace(spec, headers=_merged(spec.headers, self._headers))

    def _effect(self, effect: Any) -> Any:
        if isinstance(effect, Call):
            return self._call(effect)
        if isinstance(effect, Stream):
            return dataclasses.replace(effect, spec=self._spec(effect.spec))
        if isinstance(effect, On):
            return dataclasses.replace(effect, effect=self._effect(effect.effect))
        return effect

    def _flow(self, flow: Flow[T]) -> Flow[T]:
        """``flow`` with each effect it yields given the headers; results and errors pass back."""
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                effect = flow.throw(error) if error is not None else flow.send(value)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            try:
                value, error = (yield self._effect(effect)), None
            except BaseException as exc:
                value, error = None, exc

    def execute(self, op: Call[T] | Flow[T]) -> Any:
        """Run ``op`` on the client's driver, with the headers."""
        return self._inner.execute(self._call(op) if isinstance(op, Call) else self._flow(op))

    def perform(self, effect: Any) -> Any:
        """Perform one effect (another rack's workflow step, :class:`On`) with the headers."""
        return self._inner.perform(self._effect(effect))

    def open_stream(self, spec: StreamSpec) -> Any:
        """Open a WebSocket route with the headers."""
        return self._inner.open_stream(self._spec(spec))

    def _raw_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        given = dict(kwargs.get("headers") or {})
        return {**kwargs, "headers": dict(_merged(tuple(given.items()), self._headers))}


class SyncHeaderView(_HeaderView):
    """A view of a :class:`~.transport.SyncDriver`."""

    def open_download(self, call: Call[Any]) -> Iterator[bytes]:
        """The client's ``open_download`` with the headers."""
        return self._inner.open_download(self._call(call))  # type: ignore[no-any-return]

    def send_raw(self, method: str, path: str, **kwargs: Any) -> Any:
        """The client's ``send_raw`` with the headers (a route's own header wins)."""
        return self._inner.send_raw(method, path, **self._raw_kwargs(kwargs))

    def close(self) -> None:
        """Nothing: the view does not own the pool (close the client it came from)."""


class AsyncHeaderView(_HeaderView):
    """A view of an :class:`~.transport.AsyncDriver`."""

    async def open_download(self, call: Call[Any]) -> AsyncIterator[bytes]:
        """The client's ``open_download`` with the headers."""
        return await self._inner.open_download(self._call(call))  # type: ignore[no-any-return]

    async def send_raw(self, method: str, path: str, **kwargs: Any) -> Any:
        """The client's ``send_raw`` with the headers (a route's own header wins)."""
        return await self._inner.send_raw(method, path, **self._raw_kwargs(kwargs))

    async def aclose(self) -> None:
        """Nothing: the view does not own the pool (close the client it came from)."""


def view_of(driver: Any, headers: Pairs) -> SyncHeaderView | AsyncHeaderView:
    """The view of ``driver`` (a driver or a view) adding ``headers``, of the driver's kind."""
    if inspect.iscoroutinefunction(getattr(driver, "open_download", None)):
        return AsyncHeaderView(driver, headers)
    return SyncHeaderView(driver, headers)
