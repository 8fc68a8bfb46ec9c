"""Certificates: TLS certificates stored on the rack (docs/rack-api.md §4.11)."""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from datetime import timedelta

from convox_provider.client.encoding import Fields, encode_int, segment
from convox_provider.client.models import Certificate
from convox_provider.client.operation import (
    Call,
    D,
    Resource,
    operation,
    parse_list,
    parse_model,
    parse_ok,
)
from convox_provider.client.resources._common import app_path, hidden, pairs

__all__ = ["Certificates"]


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
