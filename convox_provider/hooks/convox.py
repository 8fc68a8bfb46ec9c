"""``ConvoxHook``: an Airflow ``convox`` connection turned into a Convox client.

The connection (form declared in :func:`convox_provider.get_provider_info`):

* ``host`` — ``console.convox.com`` (or a self-hosted console) together with the ``rack`` extra,
  or a direct rack API URL ``https://api.<rack-domain>`` with ``rack`` left empty. A scheme and a
  port may be part of the host; a separate ``port`` is added to it. Plain ``http://`` is accepted
  for loopback hosts only.
* ``password`` — the deploy key, CLI token or rack password (or leave it empty when the host is a
  rack URL with credentials, ``https://convox:<password>@api.<rack-domain>``).
* ``login`` — the Basic-auth user; empty means ``convox``, ``jwt`` selects rack JWT tokens.
* extras ``rack``, ``verify_ssl``, ``ca_bundle``, ``timeout``, ``max_retries``, ``retry_on_500``,
  ``actor`` (the ``Convox-Actor`` audit name, :meth:`ConvoxHook.task_actor`);
  strings from a URI (``?verify_ssl=false&timeout=30``) are converted and checked.

Async clients are shared: every hook asking for the same connection id on the same event loop
gets the same :class:`AsyncConvoxClient` and therefore one connection pool, so a triggerer running
a thousand waits opens a bounded number of connections. The client is closed when the last hook
holding it calls :meth:`ConvoxHook.aclose` (or leaves ``async with``).

The client classes are imported on first use, not with this module: DAG files import operators,
operators import this hook, and the scheduler parses DAG files often.
"""

from __future__ import annotations

import asyncio
import dataclasses
import difflib
import json
import math
import os
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

from airflow.sdk import BaseHook, Connection
from airflow.sdk import log as _sdk_log

from convox_provider import get_provider_info
from convox_provider.client._closing import AsyncClosing, Closing
from convox_provider.client.config import ClientConfig
from convox_provider.client.errors import (
    ConvoxAuthError,
    ConvoxConfigError,
    ConvoxConnectionError,
    ConvoxError,
    as_sentence,
)
from convox_provider.client.retry import RetryConfig
from convox_provider.hooks._legacy_form import (
    NEEDS_LEGACY_FORM,
    connection_form_widgets,
    ui_field_behaviour,
)

if TYPE_CHECKING:
    from convox_provider.client.client import AsyncConvoxClient, ConvoxClient

try:
    from airflow.providers.common.compat.connection import get_async_connection
except ImportError:  # pragma: no cover - common-compat older than the helper

    async def get_async_connection(
        conn_id: str, hook: BaseHook | type[BaseHook] | None = None
    ) -> Connection:
        return await (hook or BaseHook).aget_connection(conn_id)


mask_secret = _sdk_log.mask_secret

__all__ = [
    "ConvoxConnectionConfigError",
    "ConvoxHook",
    "actor_of_current_task",
    "actor_setting",
    "config_from_connection",
    "shared_async_clients",
]

#: ``test_connection`` answers the UI: it never waits longer than this per request, nor retries.
TEST_CONNECTION_TIMEOUT = 10.0

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_EXTRA_PREFIX = "extra__convox__"
_UNREAD = "\0unread"


def _field_labels() -> dict[str, str]:
    (conn_type,) = get_provider_info()["connection-types"]
    labels = {name: spec["label"] for name, spec in conn_type["conn-fields"].items()}
    labels.update(conn_type["ui-field-behaviour"]["relabeling"])
    labels.update(login="Login", port="Port", extra="Extra")
    return labels


_LABELS = _field_labels()
_EXTRAS = tuple(get_provider_info()["connection-types"][0]["conn-fields"])
"""The extras a Convox connection reads (each also as ``extra__convox__<name>``)."""


class ConvoxConnectionConfigError(ConvoxConfigError):
    """An Airflow ``convox`` connection cannot be used as it is; ``field`` names what to fix."""

    def __init__(self, conn_id: str, field: str, detail: str) -> None:
        self.conn_id = conn_id
        self.field = field
        self.detail = detail
        super().__init__(f"Convox connection {conn_id!r}: {self.fix}")

    @property
    def fix(self) -> str:
        """What to fix, naming the form field only (the connection form's Test button runs on
        a copy of the connection under a random id, which would mean nothing to the user)."""
        label = _LABELS.get(self.field, self.field)
        return f"fix the field {label!r} ({self.field}): {self.detail}"

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.conn_id, self.field, self.detail))


class _FieldError(Exception):
    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field
        self.detail = detail


class ConvoxHook(Closing, AsyncClosing, BaseHook):
    """Interact with a Convox rack, directly or through a Convox console.

    :param convox_conn_id: id of an Airflow connection of type ``convox``.
    """

    conn_name_attr = "convox_conn_id"
    default_conn_name = "convox_default"
    conn_type = "convox"
    hook_name = "Convox"

    def __init__(self, convox_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.convox_conn_id = convox_conn_id
        self._client: ConvoxClient | None = None
        self._leases: list[_Lease] = []

    if NEEDS_LEGACY_FORM:  # Airflow 3.1 builds the connection form from these two only
        get_connection_form_widgets = staticmethod(connection_form_widgets)
        get_ui_field_behaviour = staticmethod(ui_field_behaviour)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(convox_conn_id={self.convox_conn_id!r})"

    def get_config(self) -> ClientConfig:
        """Read the connection and validate it; the key is registered with the secret masker.

        The config's ``actor`` is the connection's fixed ``actor`` extra, if any (see
        :meth:`task_actor` for the name a task's requests carry). Raises
        :class:`ConvoxConnectionConfigError` naming the field to fix.
        """
        conn = self.get_connection(self.convox_conn_id)
        config = config_from_connection(conn)
        mask_secret(config.api_key)
        self._actor_setting = actor_setting(conn)
        return config

    _actor_setting: str | None = _UNREAD

    def task_actor(self) -> str | None:
        """The ``Convox-Actor`` this hook's requests carry (docs/rack-api.md §1.2), read from the
        connection's ``actor`` extra: unset, ``airflow:<dag_id>/<run_id>/<task_id>`` (with
        ``[<map_index>]`` for a mapped task) of the task running in this process, or None
        outside a task; ``off`` (or ``false``, ``none``), None: no header; else that name.

        Only ids, never the key or a value, are in it. Reads the connection unless
        :meth:`get_config` did.
        """
        if self._actor_setting == _UNREAD:
            self.get_config()
        if self._actor_setting != AUTO_ACTOR:
            return self._actor_setting
        return actor_of_current_task()

    async def aget_config(self) -> ClientConfig:
        """:meth:`get_config` for async code (triggers): the lookup never blocks the event loop.

        Uses common-compat's ``get_async_connection``, which avoids the ``DeadlockImminentError``
        of ``BaseHook.aget_connection`` before Airflow 3.3.2.
        """
        config = config_from_connection(await get_async_connection(self.convox_conn_id))
        await _amask_secret(config.api_key)
        return config

    def get_conn(self) -> ConvoxClient:
        """This hook's synchronous client, created on first use and kept until :meth:`close`."""
        if self._client is None:
            config = self.get_config()
            config = dataclasses.replace(config, actor=self.task_actor())
            self.log.info("Using Convox %s", _describe(config))
            self._client = _sync_client(config)
        return self._client

    async def get_async_conn(self) -> AsyncConvoxClient:
        """The async client shared by every hook of this connection id on the running event loop.

        The connection is read again on each new hook; when it changed (a rotated key), a new
        client is created for the hooks that come after. Release it with :meth:`aclose`.
        """
        loop = asyncio.get_running_loop()
        for held in self._leases:
            if held.loop() is loop and not held.released:
                return held.shared.client
        config = await self.aget_config()
        lease = _acquire(self.convox_conn_id, config, loop)
        if lease is None:
            # A new client builds its TLS context and imports the client modules: off the loop.
            made = await asyncio.to_thread(_async_client, config)
            lease = _acquire(self.convox_conn_id, config, loop, made)
            assert lease is not None  # given a client, _acquire always leases one
            if lease.shared.client is not made:  # another hook made one meanwhile
                await made.aclose()
        self._leases.append(lease)
        return lease.shared.client

    def close(self) -> None:
        """Close the synchronous client, if one was created."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Release this hook's hold on the shared async client; the last holder closes it."""
        loop = asyncio.get_running_loop()
        keep: list[_Lease] = []
        for lease in self._leases:
            owner = lease.loop()
            if owner is loop:
                await _release(lease)
            elif owner is not None and not owner.is_closed():
                keep.append(lease)
        self._leases = keep

    def test_connection(self) -> tuple[bool, str]:
        """Check the connection with one authenticated ``GET /system``; never raises.

        ``GET /system`` is what ``convox rack`` calls, which deploy keys are allowed
        (docs/rack-api.md §1.2). The check does not retry and gives up after
        ``TEST_CONNECTION_TIMEOUT`` seconds, so the Airflow UI answers quickly. The message never
        contains the key.
        """
        secret: str | None = None
        try:
            config = self.get_config()
            secret = config.api_key
            config = dataclasses.replace(
                config,
                retry=RetryConfig(max_retries=0),
                timeout=min(config.timeout or TEST_CONNECTION_TIMEOUT, TEST_CONNECTION_TIMEOUT),
            )
            with _sync_client(config) as client:
                system = client.api.get("/system")
            return True, _connected_message(config, system)
        except Exception as exc:
            return False, _scrub(_failure_message(exc), secret)


def _sync_client(config: ClientConfig) -> ConvoxClient:
    from convox_provider.client.client import ConvoxClient  # noqa: PLC0415 - see module doc

    return ConvoxClient(config)


def _async_client(config: ClientConfig) -> AsyncConvoxClient:
    from convox_provider.client.client import AsyncConvoxClient  # noqa: PLC0415 - see module doc

    return AsyncConvoxClient(config)


class _Shared:
    """One async client and the number of hooks holding it."""

    def __init__(
        self,
        key: tuple[str, int],
        client: AsyncConvoxClient,
        loop: Callable[[], asyncio.AbstractEventLoop | None],
    ) -> None:
        self.key = key
        self.client = client
        self.loop = loop
        self.holders = 0


@dataclasses.dataclass(eq=False)
class _Lease:
    shared: _Shared
    released: bool = False

    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self.shared.loop()


_SHARED: dict[tuple[str, int], _Shared] = {}
_SHARED_LOCK = threading.Lock()


def _loop_ref(loop: asyncio.AbstractEventLoop) -> Callable[[], asyncio.AbstractEventLoop | None]:
    try:
        return weakref.ref(loop)
    except TypeError:  # a loop type without weak references: purged once closed
        return lambda: loop


def _forget_closed_loops() -> None:
    """Drop clients whose event loop is gone; they cannot be closed on a closed loop."""
    for key, shared in list(_SHARED.items()):
        owner = shared.loop()
        if owner is None or owner.is_closed():
            del _SHARED[key]


def _acquire(
    conn_id: str,
    config: ClientConfig,
    loop: asyncio.AbstractEventLoop,
    made: AsyncConvoxClient | None = None,
) -> _Lease | None:
    """A lease on the shared client of ``conn_id`` on ``loop`` with ``config``; when there is
    none, ``made`` becomes it, and without ``made`` the answer is None (make one and ask again)."""
    key = (conn_id, id(loop))
    with _SHARED_LOCK:
        _forget_closed_loops()
        shared = _SHARED.get(key)
        if shared is None or shared.loop() is not loop or shared.client.config != config:
            if made is None:
                return None
            shared = _Shared(key, made, _loop_ref(loop))
            _SHARED[key] = shared
        shared.holders += 1
    return _Lease(shared)


async def _release(lease: _Lease) -> None:
    if lease.released:
        return
    lease.released = True
    shared = lease.shared
    with _SHARED_LOCK:
        shared.holders -= 1
        if shared.holders > 0:
            return
        if _SHARED.get(shared.key) is shared:
            del _SHARED[shared.key]
    await shared.client.aclose()


def shared_async_clients() -> int:
    """How many shared async clients are open (in this process, on live event loops)."""
    with _SHARED_LOCK:
        _forget_closed_loops()
        return len(_SHARED)


async def _amask_secret(secret: str) -> None:
    """Mask ``secret`` from async code (a trigger on the triggerer's event loop).

    Before Airflow 3.3 there is no ``amask_secret``, and ``mask_secret`` also tells the
    supervisor with a blocking send on the comms channel the event loop is using: on the loop
    it would block it, and from a thread its frames interleave with the loop's (Airflow 3.1's
    trigger runner then dies with "Response read out of order"). This process's own masker,
    which redacts the trigger's log lines, is told alone there.
    """
    amask = getattr(_sdk_log, "amask_secret", None)
    if amask is not None:
        await amask(secret)
        return
    try:
        from airflow.sdk._shared.secrets_masker import (  # noqa: PLC0415 - Airflow 3.1/3.2 only
            mask_secret as mask_in_this_process,
        )
    except ImportError:  # pragma: no cover - a layout without the shared masker
        return
    mask_in_this_process(secret)


def config_from_connection(conn: Connection) -> ClientConfig:
    """Build a :class:`ClientConfig` from an Airflow ``Connection`` (no lookup, no masking).

    Raises :class:`ConvoxConnectionConfigError` naming the connection and the field to fix.
    """
    conn_id = str(conn.conn_id)
    try:
        return _config(conn)
    except _FieldError as exc:
        detail = _scrub(exc.detail, conn.password)
        raise ConvoxConnectionConfigError(conn_id, exc.field, detail) from None


_SETTING_FIELDS = {"host": "host", "allow_insecure_http": "host", "rack": "rack"}
"""The connection field of each :class:`ClientConfig` setting (``ConvoxConfigError.setting``)
that a connection can get wrong past the checks of the fields themselves; the key, and anything
else, is reported on the password field."""


def _config(conn: Connection) -> ClientConfig:
    extra = _extras(conn.extra)
    host = _host(conn.host, conn.port)
    key = conn.password or None
    login = conn.login or None
    if login is not None and (":" in login or any(c.isspace() for c in login)):
        raise _FieldError("login", "the Basic-auth user must not contain ':' or whitespace")
    rack = _string(extra, "rack")
    verify_ssl = _boolean(extra, "verify_ssl", default=True)
    ca_bundle = _string(extra, "ca_bundle")
    if ca_bundle is not None and not os.path.isfile(ca_bundle):
        raise _FieldError("ca_bundle", f"no file at {ca_bundle!r} on this machine")
    timeout = _number(extra, "timeout", default=30.0)
    retry = RetryConfig(
        max_retries=_integer(extra, "max_retries", default=3),
        retry_on_500=_boolean(extra, "retry_on_500", default=False),
    )
    verify: bool | str = ca_bundle if verify_ssl and ca_bundle else verify_ssl
    try:
        config = ClientConfig.create(
            host, key, rack=rack, username=login, verify=verify, timeout=timeout, retry=retry
        )
    except ConvoxConfigError as exc:
        raise _field_error(exc, host, key) from None
    actor = _actor(extra, key)
    if actor not in (AUTO_ACTOR, None):
        config = dataclasses.replace(config, actor=actor)
    if rack is not None and not _is_org_rack(rack):
        raise _FieldError(
            "rack",
            "the rack must be '<org>/<rack>' without whitespace (e.g. acme/production); "
            "leave it empty for a direct rack API URL",
        )
    return config


AUTO_ACTOR = "auto"
"""The ``actor`` setting of a connection without the extra: each task names itself."""

_ACTOR_OFF = frozenset({"off", "false", "none", "no", "0"})


def actor_setting(conn: Connection) -> str | None:
    """The connection's ``actor`` extra: :data:`AUTO_ACTOR` (unset), None (off) or a name."""
    return _actor(_extras(conn.extra), conn.password or None)


def _actor(extra: Mapping[str, Any], key: str | None) -> str | None:
    value = _string(extra, "actor")
    if value is None or value.lower() == AUTO_ACTOR:
        return AUTO_ACTOR
    if value.lower() in _ACTOR_OFF:
        return None
    if not all(32 <= ord(c) < 127 for c in value):
        raise _FieldError("actor", "the actor name must be printable ASCII (an HTTP header)")
    if key and key in value:
        raise _FieldError("actor", "the actor name must not contain the key")
    return value


def actor_of_current_task() -> str | None:
    """``airflow:<dag_id>/<run_id>/<task_id>[<map_index>]`` of the running task, or None
    outside one; characters an HTTP header cannot carry are percent-encoded."""
    try:
        from airflow.sdk import get_current_context  # noqa: PLC0415 - a task's runtime only

        ti = get_current_context()["ti"]
    except Exception:  # no task running in this process (a script, the triggerer)
        return None
    name = f"airflow:{ti.dag_id}/{ti.run_id}/{ti.task_id}"
    map_index = getattr(ti, "map_index", -1)
    if isinstance(map_index, int) and map_index >= 0:
        name += f"[{map_index}]"
    return "".join(c if 32 <= ord(c) < 127 and c != "%" else quote(c, safe="") for c in name)


def _field_error(exc: ConvoxConfigError, host: str, key: str | None) -> _FieldError:
    """The connection field to fix for ``exc``. A connection cannot set the client's
    ``allow_insecure_http``, so its refusal of plain ``http://`` gets advice a connection can
    follow."""
    if exc.setting == "api_key" and not (key or "").strip():
        return _FieldError(
            "password",
            "no key: enter the deploy key (console) or the rack API password (direct rack API)",
        )
    if exc.setting == "allow_insecure_http":
        return _FieldError(
            "host",
            f"Refusing plain http:// for {urlsplit(host).hostname}: the key would be sent "
            "unencrypted. Use https://; plain http:// is accepted for loopback hosts only",
        )
    return _FieldError(_SETTING_FIELDS.get(exc.setting or "", "password"), str(exc))


def _host(host: str | None, port: int | None) -> str:
    host = (host or "").strip()
    if not host or not port:
        return host
    parts = urlsplit(host if "://" in host else f"//{host}")
    try:
        own_port = parts.port
    except ValueError:
        raise _FieldError("host", "the host has an invalid port") from None
    if own_port is not None:
        if own_port != port:
            raise _FieldError(
                "port", f"the host already names port {own_port}, but the port field says {port}"
            )
        return host
    if not parts.netloc:
        raise _FieldError("host", "the host has no host name")
    netloc = f"{parts.netloc}:{port}"
    rebuilt = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return rebuilt if "://" in host else rebuilt.removeprefix("//")


def _is_org_rack(rack: str) -> bool:
    org, slash, name = rack.partition("/")
    return (
        bool(slash and org and name)
        and "/" not in name
        and not any(c.isspace() or ord(c) < 32 for c in rack)
    )


def _extras(raw: str | None) -> Mapping[str, Any]:
    if not raw or not raw.strip():
        return {}
    try:
        extra = json.loads(raw)
    except ValueError:
        raise _FieldError("extra", "the extra is not valid JSON") from None
    if not isinstance(extra, dict):
        raise _FieldError("extra", "the extra must be a JSON object")
    for key in extra:
        name = str(key).removeprefix(_EXTRA_PREFIX)
        if name not in _EXTRAS:
            close = difflib.get_close_matches(name, _EXTRAS, n=1, cutoff=0.4)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise _FieldError(
                "extra",
                f"unknown extra {str(key)!r}: {hint}a Convox connection reads only "
                f"{', '.join(_EXTRAS)}",
            )
    return extra


def _value(extra: Mapping[str, Any], name: str) -> Any:
    """An extra by name (or its pre-3.2 form ``extra__convox__<name>``); empty means unset."""
    value = extra.get(name)
    if value is None or value == "":
        value = extra.get(_EXTRA_PREFIX + name)
    if isinstance(value, str):
        value = value.strip()
    return None if value is None or value == "" else value


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _string(extra: Mapping[str, Any], name: str) -> str | None:
    value = _value(extra, name)
    if value is not None and not isinstance(value, str):
        raise _FieldError(name, f"expected text, got {_shown(value)}")
    return value


def _boolean(extra: Mapping[str, Any], name: str, *, default: bool) -> bool:
    value = _value(extra, name)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise _FieldError(name, f"expected true or false, got {_shown(value)}")


def _integer(extra: Mapping[str, Any], name: str, *, default: int) -> int:
    value = _value(extra, name)
    if value is None:
        return default
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif (isinstance(value, float) and value.is_integer()) or (
        isinstance(value, str) and value.lstrip("+").isdigit()
    ):
        number = int(value)
    if number is None or number < 0:
        raise _FieldError(name, f"expected a whole number, 0 or more, got {_shown(value)}")
    return number


def _number(extra: Mapping[str, Any], name: str, *, default: float) -> float:
    value = _value(extra, name)
    if value is None:
        return default
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not math.isfinite(number) or number <= 0:
        raise _FieldError(name, f"expected a number of seconds above 0, got {_shown(value)}")
    return number


def _describe(config: ClientConfig) -> str:
    if config.rack:
        return f"rack {config.rack} through {config.base_url}"
    return f"rack API {config.base_url}"


def _connected_message(config: ClientConfig, system: Any) -> str:
    info = system if isinstance(system, dict) else {}
    name = info.get("name") or config.rack or config.host
    version = info.get("version") or "unknown"
    via = f" through {config.host}" if config.rack else ""
    return f"Connected to rack {name} (version {version}){via}"


def _failure_message(exc: Exception) -> str:
    if isinstance(exc, ConvoxConnectionConfigError):
        return as_sentence(exc.fix)
    if isinstance(exc, ConvoxAuthError):
        # The advice below replaces the client's own hint.
        detail = str(exc).removesuffix(f"; {exc.hint}") if exc.hint else str(exc)
        return (
            f"Authentication failed ({detail}); check the deploy key or rack password, and that "
            "the key may read this rack"
        )
    if isinstance(exc, ConvoxConnectionError):
        return f"Could not reach the rack: {exc}"
    if isinstance(exc, ConvoxError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _scrub(message: str, secret: str | None) -> str:
    if secret and secret in message:
        return message.replace(secret, "***")
    return message
