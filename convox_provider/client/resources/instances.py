"""Instances: the rack's cluster nodes (docs/rack-api.md §4.10)."""

from __future__ import annotations

import builtins

from convox_provider.client.encoding import segment
from convox_provider.client.models import Instance, KeyPair
from convox_provider.client.operation import (
    Call,
    D,
    Resource,
    operation,
    parse_list,
    parse_model,
    parse_ok,
)

__all__ = ["Instances"]


class Instances(Resource[D]):
    """``client.instances``. Node shells are a WebSocket route."""

    @operation
    def list(self) -> Call[builtins.list[Instance]]:
        """The cluster nodes, sorted by id."""
        return Call("GET", "/instances", parse_list(Instance))

    @operation
    def terminate(self, instance_id: str) -> Call[None]:
        """Terminate a node (its pods are rescheduled elsewhere). Not retried."""
        path = "/instances/" + segment(instance_id, kind="instance id")
        return Call("DELETE", path, parse_ok)

    @operation
    def keyroll(self) -> Call[KeyPair]:
        """Replace the instances' SSH key pair (``POST /instances/keyroll``): v3 racks answer 501
        ``unimplemented`` (``ConvoxNotImplementedError``, §8 item 10). Not retried."""
        return Call("POST", "/instances/keyroll", parse_model(KeyPair))
