"""Apps: list, create, read, update, lock, delete, cancel, configs (docs/rack-api.md §4.1)."""

from __future__ import annotations

import base64
import builtins
from collections.abc import Iterable, Mapping
from datetime import datetime

from convox_provider.client.encoding import Fields, segment, validate_app_name
from convox_provider.client.errors import ConvoxInputError
from convox_provider.client.models import App, AppConfig, Metric
from convox_provider.client.operation import (
    Call,
    D,
    parse_list,
    parse_model,
    parse_ok,
    route,
)
from convox_provider.client.resources._common import app_path, hidden, pairs, whole_numbers
from convox_provider.client.resources.streams import AppLogs

__all__ = [
    "AppRoutes",
    "cancel",
    "config_get",
    "config_list",
    "config_set",
    "create",
    "delete",
    "get",
    "list",
    "metrics",
    "metrics_query",
    "submit_delete",
    "update",
]


def _config_path(app: str, name: str) -> str:
    return app_path(app, "configs", segment(name, kind="config name"))


def list() -> Call[builtins.list[App]]:
    """All apps, sorted by name. Status comes from a cached annotation (may lag a moment)."""
    return Call("GET", "/apps", parse_list(App))


def get(name: str) -> Call[App]:
    """One app. ``release`` is the current rollout target, not proof of success (§5.1)."""
    return Call("GET", app_path(name), parse_model(App))


def create(name: str, *, generation: str | None = None, timeout: int | None = None) -> Call[App]:
    """Create an app; it is ``updating`` until its empty first release settles.

    ``generation`` is sent as given, ``"2"`` when not (the only generation v3 racks run).
    ``timeout`` is the rollout deadline of that first deploy in seconds (server default 300).
    Not retried: a second POST after a lost answer would get 409 ``app already exists``.
    """
    validate_app_name(name)
    whole_numbers(timeout=timeout)
    generation = "2" if generation is None else generation
    form = Fields().add("name", name).add("generation", generation).add("timeout", timeout)
    return Call("POST", "/apps", parse_model(App), form=pairs(form))


def update(
    name: str,
    *,
    parameters: Mapping[str, str] | None = None,
    lock: bool | None = None,
) -> Call[None]:
    """Set app parameters (``BuildCpu``, ``BuildMem``, ``BuildLabels``) and/or the lock.

    Unlike the official SDK, ``parameters`` travel as ONE form field holding an url-encoded
    string, the only form the server reads (docs/rack-api.md §2.2, §8 item 3); the SDK's
    ``parameters[KEY]`` fields are silently ignored. The server drops unknown keys, and
    re-applies the current release as a side effect, so the app briefly goes ``updating``.
    """
    form = Fields().add("lock", lock).add_map("parameters", parameters)
    return Call("PUT", app_path(name), parse_ok, form=pairs(form))


def delete(name: str) -> Call[None]:
    """Delete an app (asynchronous: ``deleting``, then 404); 409 when locked."""
    return Call("DELETE", app_path(name), parse_ok)


def submit_delete(name: str) -> Call[None]:
    """:func:`delete`, retried like a GET: a repeated DELETE of an app already ``deleting``
    changes nothing, and 404 means it is gone (the workflows read it so)."""
    return Call("DELETE", app_path(name), parse_ok, retry_safe=True)


def cancel(name: str) -> Call[None]:
    """Cancel a rollout in progress, which then rolls back; 403 unless ``updating``.

    Unlike ``convox apps cancel``, this does not copy the newest release afterwards (§7.9).
    """
    return Call("POST", app_path(name, "cancel"), parse_ok)


def metrics_query(
    start: str | datetime | None,
    end: str | datetime | None,
    period: int | None,
    metrics: Iterable[str] | None = None,
) -> Fields:
    """The query of the metrics routes: times as the rack's ``YYYYMMDD.HHMMSS.nnnnnnnnn``
    (a ``str`` is sent as given), ``period`` in seconds, ``metrics`` comma-joined (§4.8)."""
    whole_numbers(period=period)
    query = Fields()
    for name, value in (("start", start), ("end", end)):
        if isinstance(value, datetime):
            query.add_time(name, value)
        else:
            query.add(name, value)
    return query.add("period", period).add_list("metrics", metrics)


def metrics(
    name: str,
    *,
    start: str | datetime | None = None,
    end: str | datetime | None = None,
    period: int | None = None,
    metrics: Iterable[str] | None = None,
) -> Call[builtins.list[Metric]]:
    """The app's metrics. v3 racks on the generic Kubernetes provider answer 501
    ``unimplemented`` (``ConvoxNotImplementedError``, docs/rack-api.md §8 item 10)."""
    query = pairs(metrics_query(start, end, period, metrics))
    return Call("GET", app_path(name, "metrics"), parse_list(Metric), query=query)


def config_list(app: str) -> Call[builtins.list[AppConfig]]:
    """The app's named configs (the CLI keeps its env mask list under ``cli-env-mask``)."""
    return Call("GET", app_path(app, "configs"), parse_list(AppConfig))


def config_get(app: str, name: str) -> Call[AppConfig]:
    """One config; its ``value`` is the stored text itself (not base64); 404 when unset."""
    return Call("GET", _config_path(app, name), parse_model(AppConfig))


def config_set(
    app: str,
    name: str,
    value_base64: str | None = None,
    *,
    value: str | bytes | None = None,
) -> Call[None]:
    """Store a config under ``name``, replacing any earlier value; give exactly one of:

    ``value_base64`` (the third positional argument, as in the official SDK): the value
    already base64-encoded, checked and sent as given; ``value=`` (keyword only): the plain
    value, text (stored as UTF-8) or bytes, encoded here. The rack answers the stored value
    decoded (see :meth:`config_get`). Anything else (bytes or a number in the third place,
    text that is not strict padded base64) is a :class:`ConvoxInputError` before sending; its
    message never holds the value. Retried like a GET: writing the same value twice leaves
    the same config.
    """
    path = _config_path(app, name)
    if (value is None) == (value_base64 is None):
        raise ConvoxInputError(
            "config_set needs exactly one of value_base64 (the third argument, base64 text) "
            "and value= (the plain value)"
        )
    if value_base64 is not None:
        encoded = _checked_base64(value_base64)
    elif isinstance(value, (str, bytes)):
        data = value.encode("utf-8") if isinstance(value, str) else value
        encoded = base64.b64encode(data).decode("ascii")
    else:
        raise ConvoxInputError(f"config value= must be str or bytes, got {type(value).__name__}")
    form = Fields().add("value", encoded)
    return Call("PUT", path, parse_ok, form=hidden(form), retry_safe=True)


def _checked_base64(value_base64: object) -> str:
    if not isinstance(value_base64, str):
        raise ConvoxInputError(
            f"config value_base64 must be base64 text (str), got {type(value_base64).__name__};"
            " pass a plain value as value="
        )
    try:
        base64.b64decode(value_base64, validate=True)
    except ValueError:  # binascii.Error; `from None`: the value (maybe a secret) stays out
        raise ConvoxInputError(
            "config value_base64 is not valid base64 (standard alphabet, padded); pass a "
            "plain value as value= to have it encoded"
        ) from None
    return value_base64


class AppRoutes(AppLogs[D]):
    """The routes of ``client.apps`` (its workflows: :mod:`..workflows.waits`)."""

    list = route(list)
    get = route(get)
    create = route(create)
    update = route(update)
    delete = route(delete)
    submit_delete = route(submit_delete)
    cancel = route(cancel)
    metrics = route(metrics)
    config_list = route(config_list)
    config_get = route(config_get)
    config_set = route(config_set)
