"""``ConvoxClient`` and ``AsyncConvoxClient``: the same surface over one set of definitions."""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from typing import Any, Generic, cast

import httpx
from typing_extensions import Self

from convox_provider.client._closing import AsyncClosing, Closing
from convox_provider.client.config import ClientConfig
from convox_provider.client.groups import Apps, Builds, Environment, Processes, Releases, Services
from convox_provider.client.operation import D
from convox_provider.client.resources.api import Api
from convox_provider.client.resources.objects import Objects
from convox_provider.client.resources.rack import (
    Certificates,
    Instances,
    Registries,
    SystemResource,
)
from convox_provider.client.resources.resources import Resources
from convox_provider.client.retry import RetryConfig
from convox_provider.client.transport import AsyncDriver, SyncDriver
from convox_provider.client.views import ACTOR_HEADER, check_headers, view_of

__all__ = ["AsyncConvoxClient", "ConvoxClient"]


class _Surface(Generic[D]):
    """The resource groups bound to one driver, and what both clients share."""

    def __init__(
        self,
        host: str | ClientConfig,
        api_key: str | None = None,
        *,
        rack: str | None = None,
        verify: bool | str | ssl.SSLContext = True,
        timeout: float | None = 30.0,
        retry: RetryConfig | None = None,
        session: str | None = None,
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
        **options: Any,
    ) -> None:
        if isinstance(host, ClientConfig):
            config = host
        else:
            config = ClientConfig.create(
                host,
                api_key,
                rack=rack,
                verify=verify,
                timeout=timeout,
                retry=retry,
                session=session,
                **options,
            )
        self._bind(self._new_driver(config, transport))

    def _bind(self, driver: D) -> None:
        self._driver = driver
        self.api = Api(driver)
        self.apps = Apps(driver)
        self.builds = Builds(driver)
        self.certificates = Certificates(driver)
        self.environment = Environment(driver)
        self.instances = Instances(driver)
        self.objects = Objects(driver)
        self.processes = Processes(driver)
        self.registries = Registries(driver)
        self.releases = Releases(driver)
        self.resources = Resources(driver)
        self.services = Services(driver)
        self.system = SystemResource(driver)

    def _new_driver(
        self, config: ClientConfig, transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None
    ) -> D:
        raise NotImplementedError

    @classmethod
    def from_env(
        cls, *, retry: RetryConfig | None = None, timeout: float | None = 30.0, **options: Any
    ) -> Self:
        """Configure from ``CONVOX_HOST``, ``CONVOX_PASSWORD``, ``CONVOX_RACK`` or ``RACK_URL``
        (``retry``/``timeout`` as the official SDK's; other options as the constructor's)."""
        transport = options.pop("transport", None)
        config = ClientConfig.from_env(retry=retry, timeout=timeout, **options)
        return cls(config, transport=transport)

    @classmethod
    def from_cli_config(
        cls,
        rack: str | None = None,
        *,
        host: str | None = None,
        config_path: str | os.PathLike[str] | None = None,
        config_dir: str | os.PathLike[str] | None = None,
        retry: RetryConfig | None = None,
        timeout: float | None = 30.0,
        **options: Any,
    ) -> Self:
        """Use the Convox CLI's login, with the official SDK's arguments: ``rack`` first,
        ``host`` (the auth file's key) by keyword; see :meth:`ClientConfig.from_cli_config`."""
        transport = options.pop("transport", None)
        config = ClientConfig.from_cli_config(
            rack,
            host=host,
            config_path=config_path,
            config_dir=config_dir,
            retry=retry,
            timeout=timeout,
            **options,
        )
        return cls(config, transport=transport)

    def with_headers(self, headers: Mapping[str, str]) -> Self:
        """A view of this client whose every request also carries ``headers``.

        The view shares this client's connection pool and console session (nothing is opened
        for it) and needs no closing; closing it leaves this client open. A route's own option
        header of the same name wins. ``Authorization``, ``Rack`` and ``Session`` cannot be set
        this way (they belong to the configuration); a bad name or a value that is not
        printable ASCII raises :class:`~.errors.ConvoxConfigError` at once.
        """
        view = object.__new__(type(self))
        view._bind(cast(D, view_of(self._driver, check_headers(headers))))
        return view

    def with_actor(self, actor: str) -> Self:
        """A view whose requests carry ``Convox-Actor: <actor>``: the name the rack records
        in its audit events for the requests (docs/rack-api.md §1.2); see
        :meth:`with_headers`."""
        return self.with_headers({ACTOR_HEADER: actor})

    @property
    def config(self) -> ClientConfig:
        """The validated connection settings (the key is hidden from ``repr``)."""
        return self._driver.config

    def __repr__(self) -> str:
        rack = f", rack={self.config.rack!r}" if self.config.rack else ""
        return f"{type(self).__name__}(host={self.config.base_url!r}{rack})"


def _transport_kind(transport: object, expected: type, client: str) -> None:
    if transport is not None and not isinstance(transport, expected):
        raise TypeError(
            f"{client} needs an {expected.__module__}.{expected.__qualname__} transport, "
            f"got {type(transport).__name__}"
        )


class ConvoxClient(Closing, _Surface[SyncDriver]):
    """Synchronous Convox rack client.

    ``host`` is a console host (then ``rack='<org>/<rack>'`` is required by the console) or a
    rack API URL; ``api_key`` is a deploy key, CLI token or rack password. ``transport`` lets
    you plug in an ``httpx.BaseTransport`` (proxies, mTLS, test doubles). Use it as a context
    manager or call :meth:`close` to release its connection pool.
    """

    def _new_driver(
        self, config: ClientConfig, transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None
    ) -> SyncDriver:
        _transport_kind(transport, httpx.BaseTransport, "ConvoxClient")
        return SyncDriver(config, transport)  # type: ignore[arg-type]

    def stream(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one request (httpx's arguments: ``params``, ``data``, ``headers``…) and return
        the open ``httpx.Response`` without raising on its status, as the official SDK's
        ``stream``; call ``close()`` on it. Not retried. The rack's logs are WebSocket routes
        that a plain GET cannot reach (404, docs/rack-api.md §8 item 1): use ``apps.logs``,
        ``builds.logs`` or ``processes.logs`` for those."""
        return self._driver.send_raw(method, path, **kwargs)

    def close(self) -> None:
        """Close the connection pool."""
        self._driver.close()


class AsyncConvoxClient(AsyncClosing, _Surface[AsyncDriver]):
    """Asynchronous Convox rack client; every operation of :class:`ConvoxClient`, awaitable.

    Takes the same arguments; ``transport`` is an ``httpx.AsyncBaseTransport``.
    """

    def _new_driver(
        self, config: ClientConfig, transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None
    ) -> AsyncDriver:
        _transport_kind(transport, httpx.AsyncBaseTransport, "AsyncConvoxClient")
        return AsyncDriver(config, transport)  # type: ignore[arg-type]

    async def stream(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """:meth:`ConvoxClient.stream`, awaitable; close the response with ``aclose()``."""
        return await self._driver.send_raw(method, path, **kwargs)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._driver.aclose()
