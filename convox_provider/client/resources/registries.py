"""Registries: credentials for private image registries (docs/rack-api.md §4.11)."""

from __future__ import annotations

import builtins

from convox_provider.client.encoding import Fields, segment
from convox_provider.client.errors import ConvoxInputError
from convox_provider.client.models import Registry
from convox_provider.client.operation import (
    Call,
    D,
    Resource,
    operation,
    parse_list,
    parse_model,
    parse_ok,
)
from convox_provider.client.resources._common import hidden

__all__ = ["Registries"]


def _server_path(server: str) -> str:
    """``/registries/<server>``, keeping the server's ``/`` (the route takes the rest of the path).

    The rack's router cleans paths and redirects instead of routing when cleaning changes them,
    so a server with an empty, ``.`` or ``..`` segment (``https://…`` included) cannot be
    addressed; it is refused here. One trailing ``/`` survives cleaning and is kept.
    """
    if not isinstance(server, str) or not server:
        raise ConvoxInputError("invalid registry server: expected a non-empty str")
    parts = server.split("/")
    if parts[-1] == "" and len(parts) > 1:
        parts = parts[:-1]
        trailing = "/"
    else:
        trailing = ""
    if "" in parts or "." in parts or ".." in parts:
        raise ConvoxInputError(
            f"invalid registry server {server!r}: empty, '.' or '..' path segments (as in"
            " 'https://') cannot be routed by the rack, which would redirect instead of removing it"
        )
    return "/registries/" + "/".join(segment(p, kind="registry server") for p in parts) + trailing


class Registries(Resource[D]):
    """``client.registries``; registry passwords are masked in ``repr``."""

    @operation
    def list(self) -> Call[builtins.list[Registry]]:
        """The registries the rack pulls from, with their credentials."""
        return Call("GET", "/registries", parse_list(Registry))

    @operation
    def add(self, server: str, username: str, password: str) -> Call[Registry]:
        """Add or replace the credentials for ``server`` (e.g. ``ghcr.io``).

        Retried like a GET: the rack stores the credentials under the server name, so a repeat
        writes the same entry again.
        """
        form = Fields().add("server", server).add("username", username).add("password", password)
        return Call(
            "POST", "/registries", parse_model(Registry), form=hidden(form), retry_safe=True
        )

    @operation
    def remove(self, server: str) -> Call[None]:
        """Remove the credentials for ``server`` (which may contain ``/``); 404 when unknown."""
        return Call("DELETE", _server_path(server), parse_ok)
