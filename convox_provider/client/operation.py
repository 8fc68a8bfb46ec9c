"""One declaration per API operation, run by a sync or an async driver.

Every REST route is a function that *describes* its request (a :class:`~.effects.Call`) instead
of sending it; every multi-step workflow is a generator (a :data:`~.effects.Flow`) that yields
effects and receives their results (:mod:`.effects`). Neither knows about sockets. The
:class:`operation` decorator turns such a method of a resource class into a callable that a
:class:`~convox_provider.client.transport.SyncDriver` runs to completion and that an
:class:`~convox_provider.client.transport.AsyncDriver` returns as a coroutine, so
``ConvoxClient`` and ``AsyncConvoxClient`` share every route and workflow definition.

Writing a workflow::

    @operation
    def wait_for_build(self, app: str, build_id: str) -> Flow[Build]:
        while True:
            build = yield from call(build_routes.get(app, build_id))
            if build.build_status.is_terminal:
                return build
            yield from sleep(1.0)

The effects and parsers are re-exported here, so a route module needs one import.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from convox_provider.client import effects
from convox_provider.client.effects import *  # noqa: F403 - re-exported (see the module doc)
from convox_provider.client.effects import Call, Flow, StreamSpec

if TYPE_CHECKING:
    from convox_provider.client.transport import AsyncDriver, SyncDriver

__all__ = ["D", "Resource", "operation", "route", "stream_operation", "stream_route"]
__all__ += effects.__all__

T = TypeVar("T")
P = ParamSpec("P")
D = TypeVar("D", bound="SyncDriver | AsyncDriver")


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
        self._bound_signature: inspect.Signature | None = None

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._name = name
        if getattr(self._build, "_route", False):  # made by route(): named as a method
            self._build.__name__ = name
            self._build.__qualname__ = f"{owner.__qualname__}.{name}"

    def __get__(self, obj: Resource[Any] | None, owner: type[Any] | None = None) -> Any:
        if obj is None:
            return self
        return self._bind(obj, self._runner(obj._driver))

    def _runner(self, driver: SyncDriver | AsyncDriver) -> Callable[[R], Any]:
        """The driver method that runs what the declared method returns."""
        raise NotImplementedError

    def _bind(self, obj: Resource[Any], run: Callable[[R], Any]) -> Callable[..., Any]:
        build = self._build

        @functools.wraps(build)
        def bound(*args: Any, **kwargs: Any) -> Any:
            return run(build(obj, *args, **kwargs))

        bound.__signature__ = self._signature()  # type: ignore[attr-defined]
        # Cache on the instance: later lookups skip the descriptor entirely.
        obj.__dict__[self._name] = bound
        return bound

    def _signature(self) -> inspect.Signature:
        """What ``inspect.signature``/``help`` show for the bound operation: the declaration's
        parameters without the resource (``self``), computed once per declaration."""
        if self._bound_signature is None:
            signature = inspect.signature(self._build)  # a route's follows __wrapped__: no self
            parameters = list(signature.parameters.values())
            if not getattr(self._build, "_route", False):
                parameters = parameters[1:]
            self._bound_signature = signature.replace(parameters=parameters)
        return self._bound_signature

    def describe(self, resource: Resource[Any], *args: Any, **kwargs: Any) -> R:
        """Return what the operation would do without doing it (for tests and tooling)."""
        return self._build(resource, *args, **kwargs)


class operation(_Declaration[P, "Call[T] | Flow[T]"], Generic[P, T]):
    """Declare an operation once; run it on whichever driver the resource is bound to.

    The decorated method returns a :class:`Call` or a :data:`Flow`. It runs when the caller
    calls the operation, so argument validation happens before anything is sent, even for the
    async client (where it raises at call time, before the coroutine is awaited).
    """

    if TYPE_CHECKING:  # what a lookup returns, per driver; the code is _Declaration.__get__

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

        def __get__(self, obj: Resource[Any] | None, owner: type[Any] | None = None) -> Any: ...

    def _runner(self, driver: SyncDriver | AsyncDriver) -> Callable[[Call[T] | Flow[T]], Any]:
        return driver.execute


class stream_operation(_Declaration[P, StreamSpec]):
    """Declare a WebSocket stream once; iterate its output on either client.

    The decorated method returns a :class:`StreamSpec`. Called on a sync resource the operation
    returns an ``Iterator[bytes]``, on an async resource an ``AsyncIterator[bytes]``; arguments
    are validated at call time, the connection opens on the first ``next``. Leaving the loop
    early closes the connection (for the async iterator: ``contextlib.aclosing``).
    """

    if TYPE_CHECKING:  # as for operation

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

        def __get__(self, obj: Resource[Any] | None, owner: type[Any] | None = None) -> Any: ...

    def _runner(self, driver: SyncDriver | AsyncDriver) -> Callable[[StreamSpec], Any]:
        return driver.open_stream


def _method(build: Callable[P, R]) -> Callable[Concatenate[Any, P], R]:
    """``build`` as a method of a resource class, which ignores the resource it is found on."""

    @functools.wraps(build)
    def method(resource: Any, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return build(*args, **kwargs)

    method._route = True  # type: ignore[attr-defined]
    return method


def route(build: Callable[P, Call[T] | Flow[T]]) -> operation[P, T]:
    """Declare a module-level route builder as an operation of a resource class.

    Route modules define each route once as a plain function returning its :class:`Call` (or a
    :data:`Flow`), which workflows yield directly (``yield from call(builds.get(app, id))``); the
    resource class offers it to the client with ``get = route(get)``.
    """
    return operation(_method(build))


def stream_route(build: Callable[P, StreamSpec]) -> stream_operation[P]:
    """Declare a module-level WebSocket route (a function returning its :class:`StreamSpec`) as a
    :class:`stream_operation` of a resource class, as :func:`route` does for HTTP routes."""
    return stream_operation(_method(build))
