"""The route declarations the workflows send, looked up on first use.

The resource classes (``Apps``, ``Releases``…) inherit the workflow mixins, so the workflow
modules cannot import the resource modules while they are being imported: each accessor here
imports its resource module when a flow first runs (one ``sys.modules`` lookup afterwards).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from convox_provider.client.operation import Call, Flow, Resource, operation

if TYPE_CHECKING:
    from convox_provider.client.resources.apps import Apps
    from convox_provider.client.resources.builds import Builds
    from convox_provider.client.resources.objects import Objects
    from convox_provider.client.resources.processes import Processes
    from convox_provider.client.resources.releases import Releases
    from convox_provider.client.resources.services import Services
    from convox_provider.client.resources.streams import BuildLogs, ProcessStreams

__all__ = [
    "apps",
    "build_logs",
    "builds",
    "objects",
    "perform",
    "process_streams",
    "processes",
    "promote_request",
    "releases",
    "send",
    "services",
]

P = ParamSpec("P")
T = TypeVar("T")


def send(
    op: operation[P, T], resource: Resource[Any], *args: P.args, **kwargs: P.kwargs
) -> Flow[T]:
    """Inside a flow: perform route ``op`` (a call) or workflow ``op`` (a flow), typed.

    ``op`` is the operation as found on the class (``Apps.get``); ``resource`` is the flow's own
    resource, which only lends its driver (route builders do not use ``self``).
    """
    return (yield from perform(op.describe(resource, *args, **kwargs)))


def perform(built: Call[T] | Flow[T]) -> Flow[T]:
    """Inside a flow: perform what an operation's ``describe`` returned (a call or a flow)."""
    if isinstance(built, Generator):
        return (yield from built)
    return cast(T, (yield built))


def apps() -> type[Apps[Any]]:
    """``Apps``."""
    from convox_provider.client.resources.apps import Apps  # noqa: PLC0415 - see module doc

    return Apps


def builds() -> type[Builds[Any]]:
    """``Builds``."""
    from convox_provider.client.resources.builds import Builds  # noqa: PLC0415 - see module doc

    return Builds


def objects() -> type[Objects[Any]]:
    """``Objects``."""
    from convox_provider.client.resources.objects import Objects  # noqa: PLC0415 - see module doc

    return Objects


def processes() -> type[Processes[Any]]:
    """``Processes``."""
    from convox_provider.client.resources.processes import Processes  # noqa: PLC0415 - see module doc

    return Processes


def releases() -> type[Releases[Any]]:
    """``Releases``."""
    from convox_provider.client.resources.releases import Releases  # noqa: PLC0415 - see module doc

    return Releases


def services() -> type[Services[Any]]:
    """``Services``."""
    from convox_provider.client.resources.services import Services  # noqa: PLC0415 - see module doc

    return Services


def build_logs() -> type[BuildLogs[Any]]:
    """``BuildLogs`` (the build-log WebSocket route)."""
    from convox_provider.client.resources.streams import BuildLogs  # noqa: PLC0415 - see module doc

    return BuildLogs


def process_streams() -> type[ProcessStreams[Any]]:
    """``ProcessStreams`` (process logs and exec)."""
    from convox_provider.client.resources.streams import ProcessStreams  # noqa: PLC0415 - see module doc

    return ProcessStreams


def promote_request() -> operation[..., None]:
    """The single ``POST …/releases/{id}/promote`` route (the waiting promote is a workflow)."""
    from convox_provider.client.resources.releases import Releases  # noqa: PLC0415 - see module doc

    return Releases.submit_promote
