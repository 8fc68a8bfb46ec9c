"""Rack: the rack itself (credentials check, JWTs, metrics), its cluster nodes, TLS
certificates and private registry credentials (docs/rack-api.md §1.6, §4.8, §4.10, §4.11).
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

from convox_provider.client.encoding import Fields, encode_int, segment
from convox_provider.client.errors import ConvoxInputError
from convox_provider.client.models import (
    Capacity,
    Certificate,
    Instance,
    KeyPair,
    LetsEncryptConfig,
    Metric,
    Process,
    Registry,
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
from convox_provider.client.resources._common import app_path, hidden, pairs, whole_numbers
from convox_provider.client.resources.apps import metrics_query

__all__ = ["Certificates", "Instances", "Registries", "SystemResource"]

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


class Certificates(Resource[D]):
    """``client.certificates``.

    ``apply`` answers 501 on v3 racks, and ``renew`` reads its id as an app name there; both
    are offered because the official SDK has them, and send what it sends.
    """

    @operation
    def list(self, *, generated: bool | None = None) -> Call[builtins.list[Certificate]]:
        """Uploaded certificates, or with ``generated=True`` the Let's Encrypt ones."""
        query = pairs(Fields().add("generated", generated))
        return Call("GET", "/certificates", parse_list(Certificate), query=query)

    @operation
    def create(self, pub: str, key: str, *, chain: str | None = None) -> Call[Certificate]:
        """Upload a certificate (PEM ``pub``, private ``key``, optional intermediate ``chain``).

        The key never appears in the call's ``repr``. Not retried: a repeat stores a second copy.
        """
        form = Fields().add("pub", pub).add("key", key).add("chain", chain)
        return Call("POST", "/certificates", parse_model(Certificate), form=hidden(form))

    @operation
    def generate(
        self,
        domains: Iterable[str],
        *,
        issuer: str | None = None,
        duration: timedelta | int | float | str | None = None,
    ) -> Call[Certificate]:
        """Generate a certificate: self-signed for exactly one domain, or with
        ``issuer="letsencrypt"`` a Let's Encrypt one for up to 10 domains, valid ``duration``
        (seconds, timedelta or Go duration string; rack default 4320h). Not retried.
        """
        form = (
            Fields()
            .add_list("domains", domains)
            .add("issuer", issuer)
            .add_duration("duration", duration)
        )
        return Call("POST", "/certificates/generate", parse_model(Certificate), form=pairs(form))

    @operation
    def apply(self, app: str, service: str, port: int, cert_id: str) -> Call[None]:
        """Put certificate ``cert_id`` on ``port`` of ``service``
        (``PUT /apps/{app}/ssl/{service}/{port}``): 501 ``unimplemented`` on v3 racks
        (``ConvoxNotImplementedError``). Retried like a GET: applying twice changes nothing."""
        port_text = encode_int(port, name="port")
        path = app_path(app, "ssl", segment(service, kind="service name"), port_text)
        form = Fields().add("id", cert_id)
        return Call("PUT", path, parse_ok, form=pairs(form), retry_safe=True)

    @operation
    def renew(self, cert_id: str) -> Call[None]:
        """``POST /certificates/{id}/renew``. v3 racks read the id as an APP name and renew that
        app's generated certificates (docs/rack-api.md §4.11). Not retried."""
        path = "/certificates/" + segment(cert_id, kind="certificate id") + "/renew"
        return Call("POST", path, parse_ok)

    @operation
    def delete(self, cert_id: str) -> Call[None]:
        """Delete a certificate."""
        path = "/certificates/" + segment(cert_id, kind="certificate id")
        return Call("DELETE", path, parse_ok)


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
