"""Services: list, scale and resize, restart (docs/rack-api.md §4.5)."""

from __future__ import annotations

import builtins

from convox_provider.client.encoding import Fields, segment
from convox_provider.client.errors import ConvoxInputError
from convox_provider.client.models import Service
from convox_provider.client.operation import Call, D, parse_list, parse_ok, route
from convox_provider.client.resources._common import app_path, pairs, whole_numbers
from convox_provider.client.resources.streams import ServiceLogs

__all__ = ["ServiceRoutes", "list", "restart", "update"]


def _service_path(app: str, name: str, *rest: str) -> str:
    return app_path(app, "services", segment(name, kind="service name"), *rest)


def list(app: str) -> Call[builtins.list[Service]]:
    """The services of the active release (``[]`` before the first release)."""
    return Call("GET", app_path(app, "services"), parse_list(Service))


def update(
    app: str,
    name: str,
    *,
    count: int | None = None,
    cpu: int | None = None,
    memory: int | None = None,
    gpu: int | None = None,
    gpu_vendor: str | None = None,
    min: int | None = None,
    max: int | None = None,
) -> Call[None]:
    """Scale or resize a service in place (no new release); the rollout is asynchronous.

    ``cpu`` in millicores, ``memory`` in MiB. ``min``/``max`` set an autoscaling range and
    need an ``autoscale`` block in ``convox.yml`` (or KEDA, rack 3.24.6+); they cannot be
    combined with ``count``, as in the CLI. Retried like a GET: every value is absolute,
    so a repeat changes nothing.
    """
    if count is not None and (min is not None or max is not None):
        raise ConvoxInputError(
            "give either count or min/max: a fixed count and an autoscaling range exclude"
            " each other"
        )
    whole_numbers(count=count, cpu=cpu, memory=memory, gpu=gpu, min=min, max=max)
    form = (
        Fields()
        .add("count", count)
        .add("cpu", cpu)
        .add("memory", memory)
        .add("gpu", gpu)
        .add("gpu-vendor", gpu_vendor)
        .add("min", min)
        .add("max", max)
    )
    return Call("PUT", _service_path(app, name), parse_ok, form=pairs(form), retry_safe=True)


def restart(app: str, name: str) -> Call[None]:
    """Start a rolling restart of the service's pods; no waiting. Not retried."""
    return Call("POST", _service_path(app, name, "restart"), parse_ok)


class ServiceRoutes(ServiceLogs[D]):
    """The routes of ``client.services`` (its workflows: :mod:`..workflows.scale`)."""

    list = route(list)
    update = route(update)
    restart = route(restart)
