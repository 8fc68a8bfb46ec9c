"""The rack's route table and router (gorilla/mux semantics as stdapi uses them, §3.5).

``rack_routes`` is the table: every HTTP and SOCKET route in the rack's registration order, each
with its handler from ``handlers`` (HTTP) or ``sockets`` (WebSocket). Routes are tried in
registration order; ``{name}`` matches one path segment, ``{name:.*}``
anything. A SOCKET route matches only a GET whose ``Upgrade`` header is exactly ``websocket``.
A path that matches some route with another method gives 405 with an empty body; anything else
unmatched gives 404 with an empty body (both without Request-Id or authentication).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import handlers, sockets

if TYPE_CHECKING:
    from .messages import Request, Response
    from .state import RackState
    from .websocket import WebSocket

__all__ = ["Ctx", "Match", "Route", "Router", "rack_routes"]


@dataclass
class Ctx:
    """What handlers need besides the request: the rack state and a spool directory."""

    state: RackState
    spool: Path


HttpHandler = Callable[["Request", Ctx], "Response | Awaitable[Response]"]
SocketHandler = Callable[["Request", Ctx, "WebSocket"], Awaitable[None]]


@dataclass(frozen=True)
class Route:
    """One route: ``method`` is an HTTP method, ``SOCKET`` or ``ANY``."""

    method: str
    pattern: str
    handler: HttpHandler | None = None
    socket: SocketHandler | None = None
    raw_body: bool = False
    authorized: bool = True

    def regex(self) -> re.Pattern[str]:
        """The compiled path pattern."""
        out = []
        for piece in re.split(r"(\{[^}]+\})", self.pattern):
            if piece.startswith("{"):
                name, _, expr = piece[1:-1].partition(":")
                out.append(f"(?P<{name}>{expr or '[^/]+'})")
            else:
                out.append(re.escape(piece))
        return re.compile("".join(out))


@dataclass(frozen=True)
class Match:
    """A routed request: the route and the path variables."""

    route: Route
    params: dict[str, str]


class Router:
    """Ordered routes with mux's matching rules."""

    def __init__(self, routes: list[Route]) -> None:
        self._routes = [(route, route.regex()) for route in routes]

    def match(self, method: str, path: str, upgrade: str | None) -> Match | int:
        """The matching route, or 405/404 when none matches."""
        method_mismatch = False
        for route, regex in self._routes:
            found = regex.fullmatch(path)
            if found is None:
                continue
            if route.method == "SOCKET":
                if upgrade != "websocket":
                    continue
                if method != "GET":
                    method_mismatch = True
                    continue
            elif route.method not in ("ANY", method):
                method_mismatch = True
                continue
            return Match(route, found.groupdict())
        return 405 if method_mismatch else 404


def _http(
    method: str,
    pattern: str,
    handler: HttpHandler,
    *,
    raw_body: bool = False,
    authorized: bool = True,
) -> Route:
    return Route(method, pattern, handler=handler, raw_body=raw_body, authorized=authorized)


def _socket(pattern: str, handler: SocketHandler) -> Route:
    return Route("SOCKET", pattern, socket=handler)


def rack_routes() -> list[Route]:
    """All routes in the rack's registration order (*convox/convox pkg/api/routes.go*)."""
    return [
        _http("GET", "/auth", handlers.auth_ok, authorized=False),
        _http("POST", "/apps/{name}/cancel", handlers.app_cancel),
        _http("POST", "/apps", handlers.app_create),
        _http("DELETE", "/apps/{name}", handlers.app_delete),
        _http("GET", "/apps/{app}/diagnose", handlers.unimplemented),
        _http("GET", "/apps/{name}", handlers.app_get),
        _http("GET", "/apps", handlers.app_list),
        _socket("/apps/{name}/logs", sockets.app_logs),
        _http("GET", "/apps/{app}/manifest/services/{service}", handlers.manifest_service),
        _http("GET", "/apps/{name}/metrics", handlers.unimplemented),
        _http("GET", "/apps/{app}/metrics-by-service", handlers.metrics_by_service),
        _http("PUT", "/apps/{name}", handlers.app_update),
        _http("GET", "/apps/{app}/budget", handlers.budget_get),
        _http("POST", "/apps/{app}/budget", handlers.unimplemented),
        _http("DELETE", "/apps/{app}/budget", handlers.unimplemented),
        _http("POST", "/apps/{app}/budget/reset", handlers.unimplemented),
        _http("GET", "/apps/{app}/budget/shutdown-state", handlers.unimplemented),
        _http("POST", "/apps/{app}/budget/simulate-shutdown", handlers.unimplemented),
        _http("POST", "/apps/{app}/budget/dismiss-recovery", handlers.unimplemented),
        _http("GET", "/apps/{app}/cost", handlers.unimplemented),
        _http("GET", "/apps/{app}/balancers", handlers.balancer_list),
        _http("POST", "/apps/{app}/builds", handlers.build_create),
        _http("GET", "/apps/{app}/builds/{id}.tgz", handlers.build_export),
        _http("GET", "/apps/{app}/builds/{id}", handlers.build_get),
        _http("POST", "/apps/{app}/builds/import", handlers.build_import, raw_body=True),
        _http("POST", "/apps/{app}/builds/{id}/image", handlers.build_import_image),
        _http("GET", "/apps/{app}/builds", handlers.build_list),
        _socket("/apps/{app}/builds/{id}/logs", sockets.build_logs),
        _http("PUT", "/apps/{app}/builds/{id}", handlers.build_update),
        _http("GET", "/apps/{app}/configs", handlers.config_list),
        _http("GET", "/apps/{app}/configs/{name}", handlers.config_get),
        _http("PUT", "/apps/{app}/configs/{name}", handlers.config_set),
        _http("GET", "/system/capacity", handlers.system_capacity),
        _http("PUT", "/apps/{app}/ssl/{service}/{port}", handlers.unimplemented),
        _http("POST", "/certificates", handlers.certificate_create),
        _http("DELETE", "/certificates/{id}", handlers.certificate_delete),
        _http("POST", "/certificates/{id}/renew", handlers.certificate_renew),
        _http("POST", "/certificates/generate", handlers.certificate_generate),
        _http("GET", "/certificates", handlers.certificate_list),
        _http("GET", "/letsencrypt/config", handlers.unimplemented),
        _http("PUT", "/letsencrypt/config", handlers.unimplemented),
        _http("POST", "/events", handlers.event_send),
        _http("DELETE", "/apps/{app}/processes/{pid}/files", handlers.process_files),
        _http("GET", "/apps/{app}/processes/{pid}/files", handlers.process_files),
        _http("POST", "/apps/{app}/processes/{pid}/files", handlers.process_files, raw_body=True),
        _http("POST", "/instances/keyroll", handlers.unimplemented),
        _http("GET", "/instances", handlers.instance_list),
        _socket("/instances/{id}/shell", sockets.instance_shell),
        _http("DELETE", "/instances/{id}", handlers.instance_terminate),
        _http("DELETE", "/apps/{app}/objects/{key:.*}", handlers.object_delete),
        _http("HEAD", "/apps/{app}/objects/{key:.*}", handlers.object_exists),
        _http("GET", "/apps/{app}/objects/{key:.*}", handlers.object_fetch),
        _http("GET", "/apps/{app}/objects", handlers.object_list),
        _http("POST", "/apps/{app}/objects/{key:.*}", handlers.object_store, raw_body=True),
        _socket("/apps/{app}/processes/{pid}/exec", sockets.process_exec),
        _http("GET", "/apps/{app}/processes/{pid}", handlers.process_get),
        _http("GET", "/apps/{app}/processes", handlers.process_list),
        _socket("/apps/{app}/processes/{pid}/logs", sockets.process_logs),
        _http("POST", "/apps/{app}/services/{service}/processes", handlers.process_run),
        _socket("/apps/{app}/services/{service}/logs", sockets.service_logs),
        _http("DELETE", "/apps/{app}/processes/{pid}", handlers.process_stop),
        _socket("/proxy/{host}/{port}", sockets.unimplemented),
        _http("POST", "/registries", handlers.registry_add),
        _http("GET", "/registries", handlers.registry_list),
        _http("ANY", "/v2/{path:.*}", handlers.unimplemented),
        _http("DELETE", "/registries/{server:.*}", handlers.registry_remove),
        _http("POST", "/apps/{app}/releases", handlers.release_create),
        _http("GET", "/apps/{app}/releases/{id}", handlers.release_get),
        _http("GET", "/apps/{app}/releases", handlers.release_list),
        _http("POST", "/apps/{app}/releases/{id}/promote", handlers.release_promote),
        _socket("/apps/{app}/resources/{name}/console", sockets.resource_console),
        _http("GET", "/apps/{app}/resources/{name}/data", handlers.resource_export),
        _http("GET", "/apps/{app}/resources/{name}", handlers.resource_get),
        _http("PUT", "/apps/{app}/resources/{name}/data", handlers.resource_import, raw_body=True),
        _http("GET", "/apps/{app}/resources", handlers.resource_list),
        _http("GET", "/apps/{app}/services", handlers.service_list),
        _http("GET", "/apps/{app}/services/{service}/metrics", handlers.unimplemented),
        _http("POST", "/apps/{app}/services/{name}/restart", handlers.service_restart),
        _http("POST", "/apps/{app}/services/{service}/scale-override", handlers.unimplemented),
        _http("POST", "/apps/{app}/services/{service}/triggers/disable", handlers.unimplemented),
        _http("POST", "/apps/{app}/services/{service}/triggers/enable", handlers.unimplemented),
        _http("POST", "/apps/{app}/services/{service}/triggers/threshold", handlers.unimplemented),
        _http("PUT", "/apps/{app}/services/{name}", handlers.service_update),
        _http("GET", "/system", handlers.system_get),
        _socket("/system/logs", sockets.unimplemented),
        _http("GET", "/system/metrics", handlers.unimplemented),
        _http("PUT", "/system/jwt/rotate", handlers.jwt_rotate),
        _http("POST", "/system/jwt/token", handlers.jwt_token),
        _http("GET", "/system/processes", handlers.system_processes),
        _http("GET", "/system/releases", handlers.system_releases),
        _http("POST", "/resources", handlers.system_resource_create),
        _http("DELETE", "/resources/{name}", handlers.system_resource_delete),
        _http("GET", "/resources/{name}", handlers.system_resource_get),
        _http("POST", "/resources/{name}/links", handlers.unavailable_on_v3),
        _http("GET", "/resources", handlers.system_resource_list),
        _http("OPTIONS", "/resources", handlers.system_resource_types),
        _http("DELETE", "/resources/{name}/links/{app}", handlers.unavailable_on_v3),
        _http("PUT", "/resources/{name}", handlers.unavailable_on_v3),
        _http("PUT", "/system", handlers.system_update),
        _http("POST", "/system/karpenter/cleanup", handlers.karpenter_cleanup),
        _http("ANY", "/custom/http/proxy/{path:.*}", handlers.unimplemented),
    ]
