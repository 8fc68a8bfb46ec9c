"""System: the rack itself, its credentials check and JWTs (docs/rack-api.md §1.6, §4.8)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

from convox_provider.client.encoding import Fields
from convox_provider.client.errors import ConvoxInputError
from convox_provider.client.models import (
    Capacity,
    LetsEncryptConfig,
    Metric,
    Process,
    Release,
    System,
    SystemJwt,
)
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
from convox_provider.client.resources.apps import metrics_query

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
    def metrics(
        self,
        *,
        start: str | datetime | None = None,
        end: str | datetime | None = None,
        period: int | None = None,
        metrics: Iterable[str] | None = None,
    ) -> Call[list[Metric]]:
        """The rack's metrics (``GET /system/metrics``): 501 ``unimplemented`` on the generic
        Kubernetes provider (``ConvoxNotImplementedError``)."""
        query = pairs(metrics_query(start, end, period, metrics))
        return Call("GET", "/system/metrics", parse_list(Metric), query=query)

    @operation
    def jwt_token(
        self,
        *,
        role: Literal["read", "write", "admin"] | None = None,
        duration_in_hour: int | str | None = None,
    ) -> Call[SystemJwt]:
        """Mint a JWT (direct racks), used as the password with Basic user ``jwt``.

        ``role`` defaults on the rack to ``read`` and ``duration_in_hour`` (1 to 8760, an int
        or its digits as the official SDK's ``str``) to 1. An ``admin`` token needs an admin
        caller. The token is masked in ``repr``. Not retried: each call mints another token.
        """
        if role is not None and role not in _JWT_ROLES:
            raise ConvoxInputError(f"invalid JWT role {role!r}: expected read, write or admin")
        hours = duration_in_hour
        if isinstance(hours, str):
            if not (hours.isascii() and hours.isdigit()):
                raise ConvoxInputError(f"invalid duration_in_hour {hours!r}: give whole hours")
            hours = int(hours)
        whole_numbers(duration_in_hour=hours)
        if hours is not None and not 1 <= hours <= _JWT_MAX_HOURS:
            raise ConvoxInputError(f"invalid duration_in_hour {hours}: the rack accepts 1 to 8760")
        form = Fields().add("role", role).add("durationInHour", hours)
        return Call("POST", "/system/jwt/token", parse_model(SystemJwt), form=pairs(form))

    @operation
    def letsencrypt_config_get(self) -> Call[LetsEncryptConfig]:
        """The Let's Encrypt DNS-01 configuration (``GET /letsencrypt/config``)."""
        return Call("GET", "/letsencrypt/config", parse_model(LetsEncryptConfig))

    @operation
    def letsencrypt_config_apply(self, config: LetsEncryptConfig | Mapping[str, Any]) -> Call[None]:
        """Replace the Let's Encrypt configuration (``PUT /letsencrypt/config``, a JSON body
        with the rack's keys). Retried like a GET: the same body twice leaves the same config."""
        if not isinstance(config, LetsEncryptConfig):
            config = LetsEncryptConfig.model_validate(config)
        body = json.dumps(config.model_dump(mode="json", by_alias=True)).encode("utf-8")
        headers = (("Content-Type", "application/json"),)
        return Call(
            "PUT", "/letsencrypt/config", parse_ok, content=body, headers=headers, retry_safe=True
        )

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
