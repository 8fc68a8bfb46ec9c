"""The rack's route table and router (gorilla/mux semantics as stdapi uses them, §3.5).

``ROUTE_TABLE`` is the table as data: every HTTP and SOCKET route in the rack's registration
order, one a line (``METHOD PATTERN HANDLER [raw] [public]``), the handler named in ``handlers``
(HTTP) or ``sockets`` (SOCKET); ``raw`` hands the body over unread, ``public`` skips
authentication. ``rack_routes`` resolves it into ``Route`` values (``context``). Routes are tried
in registration order; ``{name}`` matches one path segment, ``{name:.*}`` anything. A SOCKET route
matches only a GET whose ``Upgrade`` header is exactly ``websocket``. A path that matches some
route with another method gives 405 with an empty body; anything else unmatched gives 404 with an
empty body (both without Request-Id or authentication).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import handlers, sockets
from .context import Ctx, HttpHandler, Route, SocketHandler

__all__ = ["ROUTE_TABLE", "Ctx", "Match", "Route", "Router", "rack_routes"]

# The rack's registration order (*convox/convox pkg/api/routes.go*).
ROUTE_TABLE = """
GET     /auth                                             auth_ok                public
POST    /apps/{name}/cancel                               app_cancel
POST    /apps                                             app_create
DELETE  /apps/{name}                                      app_delete
GET     /apps/{app}/diagnose                              unimplemented
GET     /apps/{name}                                      app_get
GET     /apps                                             app_list
SOCKET  /apps/{name}/logs                                 app_logs
GET     /apps/{app}/manifest/services/{service}           manifest_service
GET     /apps/{name}/metrics                              unimplemented
GET     /apps/{app}/metrics-by-service                    metrics_by_service
PUT     /apps/{name}                                      app_update
GET     /apps/{app}/budget                                budget_get
POST    /apps/{app}/budget                                unimplemented
DELETE  /apps/{app}/budget                                unimplemented
POST    /apps/{app}/budget/reset                          unimplemented
GET     /apps/{app}/budget/shutdown-state                 unimplemented
POST    /apps/{app}/budget/simulate-shutdown              unimplemented
POST    /apps/{app}/budget/dismiss-recovery               unimplemented
GET     /apps/{app}/cost                                  unimplemented
GET     /apps/{app}/balancers                             balancer_list
POST    /apps/{app}/builds                                build_create
GET     /apps/{app}/builds/{id}.tgz                       build_export
GET     /apps/{app}/builds/{id}                           build_get
POST    /apps/{app}/builds/import                         build_import           raw
POST    /apps/{app}/builds/{id}/image                     build_import_image
GET     /apps/{app}/builds                                build_list
SOCKET  /apps/{app}/builds/{id}/logs                      build_logs
PUT     /apps/{app}/builds/{id}                           build_update
GET     /apps/{app}/configs                               config_list
GET     /apps/{app}/configs/{name}                        config_get
PUT     /apps/{app}/configs/{name}                        config_set
GET     /system/capacity                                  system_capacity
PUT     /apps/{app}/ssl/{service}/{port}                  unimplemented
POST    /certificates                                     certificate_create
DELETE  /certificates/{id}                                certificate_delete
POST    /certificates/{id}/renew                          certificate_renew
POST    /certificates/generate                            certificate_generate
GET     /certificates                                     certificate_list
GET     /letsencrypt/config                               unimplemented
PUT     /letsencrypt/config                               unimplemented
POST    /events                                           event_send
DELETE  /apps/{app}/processes/{pid}/files                 process_files
GET     /apps/{app}/processes/{pid}/files                 process_files
POST    /apps/{app}/processes/{pid}/files                 process_files          raw
POST    /instances/keyroll                                unimplemented
GET     /instances                                        instance_list
SOCKET  /instances/{id}/shell                             instance_shell
DELETE  /instances/{id}                                   instance_terminate
DELETE  /apps/{app}/objects/{key:.*}                      object_delete
HEAD    /apps/{app}/objects/{key:.*}                      object_exists
GET     /apps/{app}/objects/{key:.*}                      object_fetch
GET     /apps/{app}/objects                               object_list
POST    /apps/{app}/objects/{key:.*}                      object_store           raw
SOCKET  /apps/{app}/processes/{pid}/exec                  process_exec
GET     /apps/{app}/processes/{pid}                       process_get
GET     /apps/{app}/processes                             process_list
SOCKET  /apps/{app}/processes/{pid}/logs                  process_logs
POST    /apps/{app}/services/{service}/processes          process_run
SOCKET  /apps/{app}/services/{service}/logs               service_logs
DELETE  /apps/{app}/processes/{pid}                       process_stop
SOCKET  /proxy/{host}/{port}                              unimplemented
POST    /registries                                       registry_add
GET     /registries                                       registry_list
ANY     /v2/{path:.*}                                     unimplemented
DELETE  /registries/{server:.*}                           registry_remove
POST    /apps/{app}/releases                              release_create
GET     /apps/{app}/releases/{id}                         release_get
GET     /apps/{app}/releases                              release_list
POST    /apps/{app}/releases/{id}/promote                 release_promote
SOCKET  /apps/{app}/resources/{name}/console              resource_console
GET     /apps/{app}/resources/{name}/data                 resource_export
GET     /apps/{app}/resources/{name}                      resource_get
PUT     /apps/{app}/resources/{name}/data                 resource_import        raw
GET     /apps/{app}/resources                             resource_list
GET     /apps/{app}/services                              service_list
GET     /apps/{app}/services/{service}/metrics            unimplemented
POST    /apps/{app}/services/{name}/restart               service_restart
POST    /apps/{app}/services/{service}/scale-override     unimplemented
POST    /apps/{app}/services/{service}/triggers/disable   unimplemented
POST    /apps/{app}/services/{service}/triggers/enable    unimplemented
POST    /apps/{app}/services/{service}/triggers/threshold unimplemented
PUT     /apps/{app}/services/{name}                       service_update
GET     /system                                           system_get
SOCKET  /system/logs                                      unimplemented
GET     /system/metrics                                   unimplemented
PUT     /system/jwt/rotate                                jwt_rotate
POST    /system/jwt/token                                 jwt_token
GET     /system/processes                                 system_processes
GET     /system/releases                                  system_releases
POST    /resources                                        system_resource_create
DELETE  /resources/{name}                                 system_resource_delete
GET     /resources/{name}                                 system_resource_get
POST    /resources/{name}/links                           unavailable_on_v3
GET     /resources                                        system_resource_list
OPTIONS /resources                                        system_resource_types
DELETE  /resources/{name}/links/{app}                     unavailable_on_v3
PUT     /resources/{name}                                 unavailable_on_v3
PUT     /system                                           system_update
POST    /system/karpenter/cleanup                         karpenter_cleanup
ANY     /custom/http/proxy/{path:.*}                      unimplemented
"""

_FLAGS = frozenset({"raw", "public"})


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


def _route(line: str) -> Route:
    method, pattern, name, *flags = line.split()
    unknown = set(flags) - _FLAGS
    if unknown:
        raise ValueError(f"route {method} {pattern}: unknown flags {sorted(unknown)}")
    if method == "SOCKET":
        socket: SocketHandler = getattr(sockets, name)
        return Route(method, pattern, socket=socket)
    handler: HttpHandler = getattr(handlers, name)
    return Route(
        method, pattern, handler=handler, raw_body="raw" in flags, authorized="public" not in flags
    )


def rack_routes() -> list[Route]:
    """All routes in the rack's registration order, resolved from ``ROUTE_TABLE``."""
    return [_route(line) for line in ROUTE_TABLE.splitlines() if line.strip()]
