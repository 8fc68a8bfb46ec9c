"""System: the rack itself, its credentials check and JWTs (docs/rack-api.md §1.6, §4.8)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from convox_provider.client.encoding import Fields
from convox_provider.client.errors import ConvoxInputError
from convox_provider.client.models import Capacity, Process, Release, System, SystemJwt
from convox_provider.client.operation import (
    Call,
    D,
    Resource,
    operation,
    parse_list,
    parse_model,
    parse_ok,
)
from convox_provider.client.resources._common import pairs, whole_numbers

__all__ = ["SystemResource"]

_JWT_ROLES = ("read", "write", "admin")
_JWT_MAX_HOURS = 8760


class SystemResource(Resource[D]):
    """``client.system``."""

    @operation
    def get(self) -> Call[System]:
        """The rack: name, version, provider, domains. On v3 ``status`` is always ``running``."""
        return Call("GET", "/system", parse_model(System))

    @operation
    def update(
        self,
        *,
        count: int | None = None,
        force: bool | None = None,
        parameters: Mapping[str, str] | None = None,
        type: str | None = None,
        version: str | None = None,
    ) -> Call[None]:
        """Update the rack (version, parameters); the update runs asynchronously.

        ``parameters`` travel as ONE url-encoded field, the only form the rack reads; the
        official SDK's ``parameters[KEY]`` fields are silently ignored (§8 item 3). Not retried.
        """
        whole_numbers(count=count)
        form = (
            Fields()
            .add("count", count)
            .add("force", force)
            .add_map("parameters", parameters)
            .add("type", type)
            .add("version", version)
        )
        return Call("PUT", "/system", parse_ok, form=pairs(form))

    @operation
    def processes(self, *, all: bool | None = None) -> Call[list[Process]]:
        """The rack's own pods (``all=True``: every pod of the rack namespaces)."""
        query = pairs(Fields().add("all", all))
        return Call("GET", "/system/processes", parse_list(Process), query=query)

    @operation
    def releases(self) -> Call[list[Release]]:
        """The rack's version history."""
        return Call("GET", "/system/releases", parse_list(Release))

    @operation
    def capacity(self) -> Call[Capacity]:
        """Cluster capacity and what the app processes reserve of it."""
        return Call("GET", "/system/capacity", parse_model(Capacity))

    @operation
    def jwt_token(
        self, *, role: Literal["read", "write", "admin"], duration_in_hour: int
    ) -> Call[SystemJwt]:
        """Mint a JWT (direct racks), used as the password with Basic user ``jwt``.

        ``duration_in_hour`` is 1 to 8760; an ``admin`` token needs an admin caller. The token
        is masked in ``repr``. Not retried: each call mints another token.
        """
        if role not in _JWT_ROLES:
            raise ConvoxInputError(f"invalid JWT role {role!r}: expected read, write or admin")
        whole_numbers(duration_in_hour=duration_in_hour)
        if not 1 <= duration_in_hour <= _JWT_MAX_HOURS:
            raise ConvoxInputError(
                f"invalid duration_in_hour {duration_in_hour}: the rack accepts 1 to 8760"
            )
        form = Fields().add("role", role).add("durationInHour", duration_in_hour)
        return Call("POST", "/system/jwt/token", parse_model(SystemJwt), form=pairs(form))

    @operation
    def jwt_rotate(self) -> Call[None]:
        """Rotate the JWT signing key, invalidating every token (admin role). Not retried."""
        return Call("PUT", "/system/jwt/rotate", parse_ok)

    @operation
    def auth(self) -> Call[None]:
        """Check the credentials (``GET /auth``); raises ``ConvoxAuthError`` when they fail."""
        return Call("GET", "/auth", parse_ok)

    @operation
    def check(self) -> Call[None]:
        """Check that the rack answers (``GET /check``, which needs no credentials)."""
        return Call("GET", "/check", parse_ok)
