"""Processes: list, read, stop, and start one-off processes (docs/rack-api.md §4.6).

Exec and process logs are WebSocket routes (§4.6, §4.7); attached runs with an exit code are a
workflow over them.
"""

from __future__ import annotations

import builtins
import shlex
from collections.abc import Mapping, Sequence

from convox_provider.client.encoding import Fields, encode_list, segment
from convox_provider.client.errors import ConvoxInputError
from convox_provider.client.models import Process
from convox_provider.client.operation import Call, D, parse_list, parse_model, parse_ok, route
from convox_provider.client.resources._common import app_path, header_pairs, pairs, whole_numbers
from convox_provider.client.resources.streams import ProcessStreams

__all__ = ["ProcessRoutes", "delete", "get", "list", "run_detached", "stop"]


def _process_path(app: str, pid: str) -> str:
    return app_path(app, "processes", segment(pid, kind="process id"))


def _stop(app: str, pid: str) -> Call[None]:
    return Call("DELETE", _process_path(app, pid), parse_ok)


def _command(command: str | Sequence[str] | None) -> str | None:
    if command is None or isinstance(command, str):
        return command
    if not all(isinstance(arg, str) for arg in command):
        raise ConvoxInputError("command arguments must be str")
    return shlex.join(command)


def _node_labels(labels: Mapping[str, str] | None) -> str | None:
    if labels is None:
        return None
    if not isinstance(labels, Mapping):
        raise ConvoxInputError(f"node_labels must be a mapping, got {type(labels).__name__}")
    for key in labels:
        if not isinstance(key, str) or not key or "=" in key:
            raise ConvoxInputError(f"invalid node label {key!r}: keys must be non-empty, no '='")
    return encode_list([f"{key}={value}" for key, value in labels.items()], name="node_labels")


def list(
    app: str, *, service: str | None = None, release: str | None = None
) -> Call[builtins.list[Process]]:
    """The app's pods: service pods, one-off processes, timers and build pods (service
    ``build``), optionally only those of ``service`` or ``release``."""
    query = pairs(Fields().add("service", service).add("release", release))
    return Call("GET", app_path(app, "processes"), parse_list(Process), query=query)


def get(app: str, pid: str) -> Call[Process]:
    """One pod. A pod that ended is deleted about 5 s later; then this raises
    ``ConvoxNotFoundError`` (the rack's 500 ``pods "…" not found``)."""
    return Call("GET", _process_path(app, pid), parse_model(Process))


def stop(app: str, pid: str) -> Call[None]:
    """Delete the pod. Not retried (a repeat would fail with not found)."""
    return _stop(app, pid)


def delete(app: str, pid: str) -> Call[None]:
    """Same as :meth:`stop` (``DELETE /apps/{app}/processes/{pid}``)."""
    return _stop(app, pid)


def run_detached(
    app: str,
    service: str,
    *,
    command: str | Sequence[str] | None = None,
    release: str | None = None,
    environment: Mapping[str, str] | None = None,
    cpu: int | None = None,
    cpu_limit: int | None = None,
    memory: int | None = None,
    memory_limit: int | None = None,
    gpu: int | None = None,
    gpu_vendor: str | None = None,
    image: str | None = None,
    volumes: Mapping[str, str] | None = None,
    use_service_volume: bool | None = None,
    node_labels: Mapping[str, str] | None = None,
    privileged: bool | None = None,
    system_critical: bool | None = None,
    height: int | None = None,
    width: int | None = None,
) -> Call[Process]:
    """Start a detached one-off process of ``service``; returns its pod, usually ``pending``.
    ``client.processes.run`` and ``run_detached`` (its older name) are this route;
    ``run_attached`` runs a command to its exit code.

    All options travel as headers (§4.6). ``command`` is split shell-style by the rack (no
    shell: use ``["sh", "-c", "a && b"]``); a list is quoted for that split. ``release``
    defaults to the active one. ``environment`` adds variables to this process only; its
    values never appear in errors or in the call's ``repr``. ``cpu``/``cpu_limit`` in
    millicores, ``memory``/``memory_limit`` in MiB; ``volumes`` maps host path to container
    path; ``node_labels`` select nodes; ``privileged`` is honoured only for the internal
    ``build`` service. Header values must be printable ASCII.

    No exit code comes back: the pod is deleted about 5 s after it ends, so a detached
    process can be seen ``complete``/``failed`` only briefly (§4.6). Not retried: a repeat
    would run the command twice.
    """
    whole_numbers(
        cpu=cpu,
        cpu_limit=cpu_limit,
        memory=memory,
        memory_limit=memory_limit,
        gpu=gpu,
        height=height,
        width=width,
    )
    headers = (
        Fields()
        .add("Command", _command(command))
        .add("Release", release)
        .add_map("Environment", environment)
        .add("Cpu", cpu)
        .add("Cpu-Limit", cpu_limit)
        .add("Memory", memory)
        .add("Memory-Limit", memory_limit)
        .add("Gpu", gpu)
        .add("Gpu-Vendor", gpu_vendor)
        .add("Image", image)
        .add_map("Volumes", volumes)
        .add("Use-Service-Volume", use_service_volume)
        .add("Node-Labels", _node_labels(node_labels))
        .add("Privileged", privileged)
        .add("System-Critical", system_critical)
        .add("Height", height)
        .add("Width", width)
    )
    path = app_path(app, "services", segment(service, kind="service name"), "processes")
    return Call("POST", path, parse_model(Process), headers=header_pairs(headers, secret=True))


class ProcessRoutes(ProcessStreams[D]):
    """The routes of ``client.processes`` (its workflows: :mod:`..workflows.run`)."""

    list = route(list)
    get = route(get)
    stop = route(stop)
    delete = route(delete)
    run = route(run_detached)
    run_detached = route(run_detached)
