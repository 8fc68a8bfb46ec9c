"""Instances: the rack's cluster nodes (docs/rack-api.md §4.10)."""

from __future__ import annotations

import builtins

from convox_provider.client.encoding import segment
from convox_provider.client.models import Instance
from convox_provider.client.operation import Call, D, Resource, operation, parse_list, parse_ok

__all__ = ["Instances"]


class Instances(Resource[D]):
    """``client.instances``.

    There is no ``keyroll``: v3 racks answer it 501 ``unimplemented``. Node shells are a
    WebSocket route.
    """

    @operation
    def list(self) -> Call[builtins.list[Instance]]:
        """The cluster nodes, sorted by id."""
        return Call("GET", "/instances", parse_list(Instance))

    @operation
    def terminate(self, instance_id: str) -> Call[None]:
        """Terminate a node (its pods are rescheduled elsewhere). Not retried."""
        path = "/instances/" + segment(instance_id, kind="instance id")
        return Call("DELETE", path, parse_ok)
