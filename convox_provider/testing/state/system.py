"""The rack itself: system info, instances, registries, webhooks, certificates, JWTs, resources.

Covers ``/system``, ``/instances``, ``/registries``, ``/resources`` (webhooks, the only rack
resources on v3), ``/certificates``, ``/system/jwt`` and an app's manifest resources
(docs/rack-api.md §4.9, §5.7, §5.9).
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from ..encoding import format_time
from ..errors import RackError
from ..models import Pod
from ._base import Model, Rack
from .apps import template_hash
from .releases import parse_manifest

__all__ = ["System"]

_NS_PER_S = 1_000_000_000


class System(Model):
    """What belongs to the rack rather than to one app."""

    def __init__(self, rack: Rack) -> None:
        super().__init__(rack)
        self._registries: dict[str, tuple[str, str]] = {}
        self._webhooks: dict[str, str] = {}
        self._certificates: dict[str, dict[str, Any]] = {}
        self._tokens: dict[str, tuple[str, int]] = {}
        self.started = self.clock.now()
        self._instances: dict[str, dict[str, Any]] = {
            f"ip-10-0-1-{n}.{rack.name}.internal": {"ip": f"10.0.1.{n}", "started": self.started}
            for n in (10,)
        }

    def first_instance(self) -> str:
        """The node new pods are placed on (``""`` once every node is terminated)."""
        return next(iter(self._instances), "")

    # --- system ----------------------------------------------------------------------------

    def system(self) -> dict[str, Any]:
        """``GET /system`` (§5.7)."""
        rack = self.rack
        return {
            "count": 0,
            "domain": f"router.{rack.domain}",
            "name": rack.name,
            "provider": "k8s",
            "rack-domain": f"api.{rack.domain}",
            "router-internal": "",
            "region": "",
            "status": "running",
            "type": "",
            "version": rack.version,
        }

    def system_processes(self) -> list[dict[str, Any]]:
        """``GET /system/processes``: the rack's own components."""
        version = self.rack.version
        processes = []
        for service in ("api", "atom", "router"):
            pod = Pod(
                id=f"{service}-{template_hash('system', service, 0, 0, 0)}-{service[:1]}rack",
                app="system",
                service=service,
                release=version,
                kind="service",
                args=[],
                image=f"convox/convox:{version}",
                created=self.started,
                status="running",
                instance=self.first_instance(),
            )
            processes.append(pod.to_wire())
        return processes

    # --- instances and registries ----------------------------------------------------------

    def instance_list(self) -> list[dict[str, Any]]:
        """``GET /instances`` (§5.9)."""
        with self.locked():
            pods = self.rack.processes.count()
            return [
                {
                    "agent": False,
                    "cpu": 0.05,
                    "cpu-capacity": 2,
                    "cpu-allocatable": 1.93,
                    "gpu-capacity": 0,
                    "gpu-allocatable": 0,
                    "id": node,
                    "memory": 812.5,
                    "memory-capacity": 7820,
                    "memory-allocatable": 7100,
                    "private-ip": info["ip"],
                    "processes": pods,
                    "public-ip": "",
                    "status": "running",
                    "started": format_time(info["started"]),
                }
                for node, info in sorted(self._instances.items())
            ]

    def instance_terminate(self, node: str) -> None:
        """``DELETE /instances/{id}``."""
        with self.locked():
            if self._instances.pop(node, None) is None:
                raise RackError(500, f'nodes "{node}" not found')

    def instance_exists(self, node: str) -> bool:
        """Whether ``node`` is a node of the rack."""
        with self.locked():
            return node in self._instances

    def registry_list(self) -> list[dict[str, str]]:
        """``GET /registries``."""
        with self.locked():
            return [
                {"server": s, "username": u, "password": p}
                for s, (u, p) in sorted(self._registries.items())
            ]

    def registry_add(self, server: str, username: str, password: str) -> dict[str, str]:
        """``POST /registries``."""
        with self.locked():
            self._registries[server] = (username, password)
            return {"server": server, "username": username, "password": password}

    def registry_remove(self, server: str) -> None:
        """``DELETE /registries/{server}``."""
        with self.locked():
            if self._registries.pop(server, None) is None:
                raise RackError(500, f'secrets "registry-{server}" not found')

    # --- resources -------------------------------------------------------------------------

    def webhook_list(self) -> list[dict[str, Any]]:
        """Rack resources: only webhooks exist on v3 (§4.9)."""
        with self.locked():
            return [
                {
                    "name": n,
                    "parameters": {"Url": u},
                    "status": "running",
                    "type": "webhook",
                    "url": "",
                }
                for n, u in sorted(self._webhooks.items())
            ]

    def webhook_create(self, name: str | None, url: str) -> dict[str, Any]:
        """Create a webhook resource."""
        with self.locked():
            key = (
                name
                or "webhook-"
                + hashlib.sha256(f"{url}-{secrets.randbits(62)}".encode()).hexdigest()[:6]
            )
            self._webhooks[key] = url
        return self.webhook_get(key)

    def webhook_get(self, name: str) -> dict[str, Any]:
        """One rack resource; 404 ``no such resource``."""
        return _named(self.webhook_list(), name, "no such resource")

    def webhook_delete(self, name: str) -> None:
        """Delete a webhook resource."""
        self.webhook_get(name)
        with self.locked():
            self._webhooks.pop(name, None)

    def app_resources(self, app: str) -> list[dict[str, Any]]:
        """``GET /apps/{app}/resources``: resources declared in the active manifest."""
        with self.locked():
            target = self.rack.apps.app(app)
            if not target.release:
                return []
            release = self.rack.releases.release(app, target.release)
            namespace = self.rack.apps.namespace(app)
            return [
                {
                    "name": name,
                    "status": "running",
                    "type": kind,
                    "url": f"{kind}://{app}:password@resource-{name}.{namespace}.svc.cluster.local/app",
                }
                for name, kind in parse_manifest(release.manifest).resources
            ]

    def app_resource(self, app: str, name: str) -> dict[str, Any]:
        """``GET /apps/{app}/resources/{name}``."""
        return _named(self.app_resources(app), name, "resource not found")

    # --- certificates and tokens -----------------------------------------------------------

    def certificate_list(self) -> list[dict[str, Any]]:
        """``GET /certificates``."""
        with self.locked():
            return [self._certificates[k] for k in sorted(self._certificates, key=str.upper)]

    def certificate_add(self, domain: str, *, status: str) -> dict[str, Any]:
        """Create (or generate) a certificate record."""
        with self.locked() as now:
            cert_id = "cert-" + secrets.token_hex(5)
            cert = {
                "id": cert_id,
                "domain": domain,
                "domains": [domain] if domain else [],
                "expiration": format_time(now + 90 * 86400 * _NS_PER_S),
                "status": status,
            }
            self._certificates[cert_id] = cert
            return cert

    def certificate_delete(self, cert_id: str) -> None:
        """``DELETE /certificates/{id}``."""
        with self.locked():
            if self._certificates.pop(cert_id, None) is None:
                raise RackError(500, f'secrets "{cert_id}" not found')

    def certificate_get(self, cert_id: str) -> dict[str, Any]:
        """One certificate."""
        with self.locked():
            cert = self._certificates.get(cert_id)
            if cert is None:
                raise RackError(500, f'secrets "{cert_id}" not found')
            return cert

    def jwt_mint(self, role: str, hours: int) -> str:
        """Mint a token for Basic user ``jwt``; ``role`` is ``r``, ``rw`` or ``rwa``."""
        token = secrets.token_urlsafe(32)
        with self.locked() as now:
            self._tokens[token] = (role, now + hours * 3600 * _NS_PER_S)
        return token

    def jwt_role(self, token: str) -> str:
        """The role of a minted token; raises ``RackError(401)`` when invalid or expired."""
        with self.locked() as now:
            entry = self._tokens.get(token)
            if entry is None:
                raise RackError(
                    401,
                    "invalid authentication: token is malformed: "
                    "token contains an invalid number of segments",
                )
            role, expires = entry
            if expires < now:
                raise RackError(
                    401, "invalid authentication: token has invalid claims: token is expired"
                )
            return role

    def jwt_rotate(self) -> None:
        """``PUT /system/jwt/rotate``: every minted token stops working."""
        with self.locked():
            self._tokens.clear()


def _named(resources: list[dict[str, Any]], name: str, missing: str) -> dict[str, Any]:
    """The resource called ``name``; 404 ``<missing>: <name>``."""
    for resource in resources:
        if resource["name"] == name:
            return resource
    raise RackError(404, f"{missing}: {name}")
