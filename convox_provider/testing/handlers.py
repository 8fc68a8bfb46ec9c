"""HTTP route handlers: turn a parsed request into state calls, like the rack's controllers.

Option parsing happens where the Go controller does it, so the order of errors matches (for
example promote checks run before its options are parsed, convox-api.md §4.4).
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .encoding import sniff_content_type
from .errors import RackError
from .messages import Request, Response
from .routes import Ctx, Route
from .state import RunOptions

__all__ = ["http_routes"]

_UNIMPLEMENTED = "unimplemented"


def _unimplemented(_: Request, __: Ctx) -> Response:
    raise RackError(501, _UNIMPLEMENTED)


# --- apps ----------------------------------------------------------------------------------


def app_list(_: Request, ctx: Ctx) -> Response:
    return Response.json(ctx.state.app_list())


def app_create(req: Request, ctx: Ctx) -> Response:
    name = req.value("name")
    req.param("generation")
    timeout = req.as_int(req.param("timeout"))
    return Response.json(ctx.state.app_create(name, timeout=timeout))


def app_get(req: Request, ctx: Ctx) -> Response:
    return Response.json(ctx.state.app_get(req.params["name"]))


def app_update(req: Request, ctx: Ctx) -> Response:
    lock = req.as_bool(req.param("lock"))
    parameters = req.as_map(req.param("parameters"))
    ctx.state.app_update(req.params["name"], lock=lock, parameters=parameters)
    return Response.ok()


def app_delete(req: Request, ctx: Ctx) -> Response:
    ctx.state.app_delete(req.params["name"])
    return Response.ok()


def app_cancel(req: Request, ctx: Ctx) -> Response:
    ctx.state.app_cancel(req.params["name"])
    return Response.ok()


def config_list(req: Request, ctx: Ctx) -> Response:
    return Response.json(ctx.state.config_list(req.params["app"]))


def config_get(req: Request, ctx: Ctx) -> Response:
    return Response.json(ctx.state.config_get(req.params["app"], req.params["name"]))


def config_set(req: Request, ctx: Ctx) -> Response:
    ctx.state.config_set(req.params["app"], req.params["name"], req.value("value"))
    return Response.ok()


def manifest_service(req: Request, ctx: Ctx) -> Response:
    return Response.json(ctx.state.manifest_service(req.params["app"], req.params["service"]))


def budget_get(req: Request, ctx: Ctx) -> Response:
    """No budget is ever configured here: ``{"config": null, "state": null}`` like a real rack.

    The CLI's ``ps``, ``scale`` and ``services`` fetch this and print an error line on stderr
    when it fails (*pkg/cli/budget_status.go*).
    """
    ctx.state.app_get(req.params["app"])
    return Response.json({"config": None, "state": None})


def balancer_list(req: Request, ctx: Ctx) -> Response:
    ctx.state.app_get(req.params["app"])
    return Response.json([])


def metrics_by_service(req: Request, ctx: Ctx) -> Response:
    ctx.state.app_get(req.params["app"])
    services = [s for s in (req.param("services") or "").split(",") if s]
    return Response.json([{"name": s, "metrics": []} for s in services])


# --- objects -------------------------------------------------------------------------------


def _object_key(raw: str) -> str:
    cleaned = posixpath.normpath("/" + raw).lstrip("/") if raw else ""
    if cleaned in ("", ".") or cleaned.strip() == "" or ".." in raw.split("/"):
        raise RackError(400, "invalid object key")
    return cleaned


def object_store(req: Request, ctx: Ctx) -> Response:
    key = req.params["key"]
    if key != "":
        key = _object_key(key)
    req.as_bool(req.header("Public"))
    url = ctx.state.object_store_file(req.params["app"], key, req.body_path)
    req.body_path = None
    return Response.json({"Url": url})


def object_fetch(req: Request, ctx: Ctx) -> Response:
    path = ctx.state.object_path(req.params["app"], _object_key(req.params["key"]))
    with path.open("rb") as handle:
        head = handle.read(512)
    return Response(headers=[("Content-Type", sniff_content_type(head))], file=path)


def object_exists(req: Request, ctx: Ctx) -> Response:
    exists = ctx.state.object_exists(req.params["app"], _object_key(req.params["key"]))
    return Response.json(exists)


def object_delete(req: Request, ctx: Ctx) -> Response:
    ctx.state.object_delete(req.params["app"], _object_key(req.params["key"]))
    return Response.ok()


def object_list(req: Request, ctx: Ctx) -> Response:
    prefix = req.value("prefix")
    if ".." in prefix.split("/"):
        raise RackError(400, "invalid prefix")
    raise RackError(501, _UNIMPLEMENTED)


# --- builds --------------------------------------------------------------------------------


async def build_create(req: Request, ctx: Ctx) -> Response:
    app = req.params["app"]
    url = req.value("url")
    req.as_list(req.param("build-args"))
    description = req.param("description")
    req.as_bool(req.param("development"))
    external = req.as_bool(req.param("external")) or False
    manifest = req.param("manifest")
    req.as_bool(req.param("no-cache"))
    req.as_bool(req.param("wildcard-domain"))
    git_sha = req.param("git-sha")
    ctx.state.app_get(app)
    source: Path | None = None
    parts = urlsplit(url)
    if parts.scheme == "object":
        try:
            source = ctx.state.object_path(parts.hostname or "", parts.path.lstrip("/"))
        except RackError:
            source = None
    build = await asyncio.to_thread(
        ctx.state.build_create,
        app,
        url,
        description=description,
        git_sha=git_sha,
        manifest=manifest,
        external=external,
        source_path=source,
    )
    return Response.json(build)


def _export(ctx: Ctx, app: str, build_id: str) -> Path:
    handle, name = tempfile.mkstemp(dir=ctx.spool, suffix=".tgz")
    os.close(handle)
    target = Path(name)
    try:
        ctx.state.build_export(app, build_id, target)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target


async def build_export(req: Request, ctx: Ctx) -> Response:
    target = await asyncio.to_thread(_export, ctx, req.params["app"], req.params["id"])
    return Response(headers=[("Content-Type", "application/x-gzip")], file=target, delete_file=True)


def build_get(req: Request, ctx: Ctx) -> Response:
    return Response.json(ctx.state.build_get(req.params["app"], req.params["id"]))


async def build_import(req: Request, ctx: Ctx) -> Response:
    app = req.params["app"]
    ctx.state.app_get(app)
    if req.body_path is None:
        raise RackError(500, "EOF")
    build = await asyncio.to_thread(ctx.state.build_import, app, req.body_path)
    return Response.json(build)


def build_import_image(req: Request, ctx: Ctx) -> Response:
    image = req.value("image")
    if image == "":
        raise RackError(422, "image param required")
    req.param("src-creds-user")
    req.param("src-creds-pass")
    ctx.state.build_import_image(req.params["app"], req.params["id"], image)
    return Response(status=202)


def build_list(req: Request, ctx: Ctx) -> Response:
    limit = req.as_int(req.query_param("limit"))
    return Response.json(ctx.state.build_list(req.params["app"], limit))


def build_update(req: Request, ctx: Ctx) -> Response:
    fields: dict[str, Any] = {}
    ended = req.as_time(req.param("ended"))
    if ended is not None:
        fields["ended"] = ended
    for name in ("entrypoint", "logs", "manifest", "release", "status"):
        value = req.param(name)
        if value is not None:
            fields[name] = value
    started = req.as_time(req.param("started"))
    if started is not None:
        fields["started"] = started
    return Response.json(ctx.state.build_update(req.params["app"], req.params["id"], fields))


# --- releases ------------------------------------------------------------------------------


def release_create(req: Request, ctx: Ctx) -> Response:
    release = ctx.state.release_create(
        req.params["app"],
        build=req.param("build"),
        env=req.param("env"),
        description=req.param("description"),
        parent=req.param("parent-release"),
    )
    return Response.json(release)


def release_get(req: Request, ctx: Ctx) -> Response:
    return Response.json(ctx.state.release_get(req.params["app"], req.params["id"]))


def release_list(req: Request, ctx: Ctx) -> Response:
    limit = req.as_int(req.query_param("limit"))
    return Response.json(ctx.state.release_list(req.params["app"], limit))


def release_promote(req: Request, ctx: Ctx) -> Response:
    app, release_id = req.params["app"], req.params["id"]
    force = req.param("force") == "true"
    ctx.state.promote_check(app, release_id, force=force)
    req.as_bool(req.param("development"))
    req.as_bool(req.param("idle"))
    req.as_int(req.param("min"))
    req.as_int(req.param("max"))
    timeout = req.as_int(req.param("timeout"))
    ctx.state.release_promote(app, release_id, force=force, timeout=timeout)
    return Response.ok()


# --- services ------------------------------------------------------------------------------


def service_list(req: Request, ctx: Ctx) -> Response:
    return Response.json(ctx.state.service_list(req.params["app"]))


def service_update(req: Request, ctx: Ctx) -> Response:
    count = req.as_int(req.param("count"))
    cpu = req.as_int(req.param("cpu"))
    req.as_int(req.param("gpu"))
    req.param("gpu-vendor")
    memory = req.as_int(req.param("memory"))
    req.as_int(req.param("min"))
    req.as_int(req.param("max"))
    ctx.state.service_update(
        req.params["app"], req.params["name"], count=count, cpu=cpu, memory=memory
    )
    return Response.ok()


def service_restart(req: Request, ctx: Ctx) -> Response:
    ctx.state.service_restart(req.params["app"], req.params["name"])
    return Response.ok()


# --- processes -----------------------------------------------------------------------------


def process_list(req: Request, ctx: Ctx) -> Response:
    release = req.query_param("release")
    service = req.query_param("service")
    return Response.json(
        ctx.state.process_list(req.params["app"], service=service, release=release)
    )


def process_get(req: Request, ctx: Ctx) -> Response:
    return Response.json(ctx.state.process_get(req.params["app"], req.params["pid"]))


def process_stop(req: Request, ctx: Ctx) -> Response:
    ctx.state.process_stop(req.params["app"], req.params["pid"])
    return Response.ok()


def process_run(req: Request, ctx: Ctx) -> Response:
    app = req.params["app"]
    ctx.state.app_get(app)
    command = req.header("Command")
    cpu = req.as_int(req.header("Cpu"))
    req.as_int(req.header("Cpu-Limit"))
    environment = req.as_map(req.header("Environment")) or {}
    gpu = req.as_int(req.header("Gpu"))
    req.header("Gpu-Vendor")
    req.as_int(req.header("Height"))
    image = req.header("Image")
    memory = req.as_int(req.header("Memory"))
    req.as_int(req.header("Memory-Limit"))
    release = req.header("Release")
    req.as_map(req.header("Volumes"))
    req.as_bool(req.header("Use-Service-Volume"))
    req.as_int(req.header("Width"))
    req.as_bool(req.header("Privileged"))
    req.header("Node-Labels")
    req.as_bool(req.header("System-Critical"))
    options = RunOptions(
        command=command,
        release=release,
        environment=environment,
        cpu=cpu,
        memory=memory,
        gpu=gpu,
        image=image,
    )
    return Response.json(ctx.state.process_run(app, req.params["service"], options))


def process_files(req: Request, ctx: Ctx) -> Response:
    ctx.state.process_get(req.params["app"], req.params["pid"])
    raise RackError(501, _UNIMPLEMENTED)


# --- system, instances, registries, resources, certificates ---------------------------------


def system_get(_: Request, ctx: Ctx) -> Response:
    return Response.json(ctx.state.system())


def system_update(req: Request, _: Ctx) -> Response:
    req.as_int(req.param("count"))
    req.as_bool(req.param("force"))
    req.as_map(req.param("parameters"))
    raise RackError(
        501,
        "direct rack doesn't support update, "
        "make sure you are not using RACK_URL environment variable",
    )


def system_processes(req: Request, ctx: Ctx) -> Response:
    req.as_bool(req.query_param("all"))
    return Response.json(ctx.state.system_processes())


def system_releases(_: Request, __: Ctx) -> Response:
    raise RackError(501, "release history is unavailable")


def system_capacity(_: Request, ctx: Ctx) -> Response:
    return Response.json(
        {
            "cluster-cpu": 2000,
            "cluster-memory": 7820,
            "process-count": len(ctx.state.instance_list()),
            "process-memory": 0,
            "process-cpu": 0,
        }
    )


def jwt_token(req: Request, ctx: Ctx) -> Response:
    roles = {"read": "r", "write": "rw", "admin": "rwa"}
    role = req.param("role") or "read"
    if role not in roles:
        raise RackError(400, f"invalid role: {role}")
    if role == "admin" and "a" not in req.role:
        raise RackError(403, "admin role required to create admin token")
    hours_raw = req.param("durationInHour") or "1"
    try:
        hours = int(hours_raw)
    except ValueError as exc:
        raise RackError(400, f"invalid duration: {hours_raw}") from exc
    if not 1 <= hours <= 8760:
        raise RackError(400, "duration must be between 1 and 8760 hours")
    return Response.json({"token": ctx.state.jwt_mint(roles[role], hours)})


def jwt_rotate(req: Request, ctx: Ctx) -> Response:
    if "a" not in req.role:
        raise RackError(403, "admin role required")
    ctx.state.jwt_rotate()
    return Response.ok()


def instance_list(_: Request, ctx: Ctx) -> Response:
    return Response.json(ctx.state.instance_list())


def instance_terminate(req: Request, ctx: Ctx) -> Response:
    ctx.state.instance_terminate(req.params["id"])
    return Response.ok()


def registry_add(req: Request, ctx: Ctx) -> Response:
    registry = ctx.state.registry_add(
        req.value("server"), req.value("username"), req.value("password")
    )
    return Response.json(registry)


def registry_list(_: Request, ctx: Ctx) -> Response:
    return Response.json(ctx.state.registry_list())


def registry_remove(req: Request, ctx: Ctx) -> Response:
    ctx.state.registry_remove(req.params["server"])
    return Response.ok()


def resource_list(req: Request, ctx: Ctx) -> Response:
    return Response.json(ctx.state.app_resources(req.params["app"]))


def resource_get(req: Request, ctx: Ctx) -> Response:
    return Response.json(ctx.state.app_resource(req.params["app"], req.params["name"]))


def _database(req: Request, ctx: Ctx, action: str) -> str:
    resource = ctx.state.app_resource(req.params["app"], req.params["name"])
    kind = str(resource["type"])
    if not any(db in kind for db in ("postgres", "mysql", "mariadb")):
        raise RackError(400, f"{action} not available for resources of type: {kind}")
    return kind


def resource_export(req: Request, ctx: Ctx) -> Response:
    kind = _database(req, ctx, "export")
    body = f"-- emulated {kind} dump of {req.params['name']}\n".encode()
    return Response(headers=[("Content-Type", "text/plain; charset=utf-8")], body=body)


def resource_import(req: Request, ctx: Ctx) -> Response:
    _database(req, ctx, "import")
    return Response.ok()


def system_resource_create(req: Request, ctx: Ctx) -> Response:
    kind = req.value("kind")
    name = req.param("name")
    parameters = req.as_map(req.param("parameters")) or {}
    if kind != "webhook":
        raise RackError(400, f"rack resource type unknown: {kind}")
    if "Url" not in parameters:
        raise RackError(400, "parameter required: Url")
    return Response.json(ctx.state.webhook_create(name or None, parameters["Url"]))


def system_resource_list(_: Request, ctx: Ctx) -> Response:
    return Response.json(ctx.state.webhook_list())


def system_resource_get(req: Request, ctx: Ctx) -> Response:
    return Response.json(ctx.state.webhook_get(req.params["name"]))


def system_resource_delete(req: Request, ctx: Ctx) -> Response:
    ctx.state.webhook_delete(req.params["name"])
    return Response.ok()


def system_resource_types(_: Request, __: Ctx) -> Response:
    return Response.json(
        [
            {
                "name": "webhook",
                "parameters": [
                    {
                        "default": "",
                        "description": "url to which to post rack events",
                        "name": "Url",
                    }
                ],
            }
        ]
    )


def unavailable_on_v3(_: Request, __: Ctx) -> Response:
    raise RackError(400, "unavailable on v3 racks")


def certificate_list(req: Request, ctx: Ctx) -> Response:
    req.as_bool(req.param("generated"))
    return Response.json(ctx.state.certificate_list())


def certificate_create(req: Request, ctx: Ctx) -> Response:
    pub = req.value("pub")
    req.value("key")
    req.param("chain")
    if "BEGIN CERTIFICATE" not in pub:
        raise RackError(500, "failed to decode certificate pem")
    return Response.json(ctx.state.certificate_add("", status="issued"))


def certificate_generate(req: Request, ctx: Ctx) -> Response:
    domains = [d for d in (req.param("domains") or "").split(",") if d]
    req.param("issuer")
    req.param("duration")
    if not domains:
        raise RackError(400, "domains required")
    return Response.json(ctx.state.certificate_add(domains[0], status="pending"))


def certificate_delete(req: Request, ctx: Ctx) -> Response:
    ctx.state.certificate_delete(req.params["id"])
    return Response.ok()


def certificate_renew(req: Request, ctx: Ctx) -> Response:
    ctx.state.certificate_get(req.params["id"])
    return Response.ok()


def event_send(req: Request, _: Ctx) -> Response:
    req.param("action")
    req.as_map(req.param("data"))
    req.param("error")
    req.param("status")
    return Response.ok()


def auth_ok(_: Request, __: Ctx) -> Response:
    return Response.ok()


def karpenter_cleanup(_: Request, __: Ctx) -> Response:
    return Response.ok()


def http_routes(sockets: dict[str, Route]) -> list[Route]:
    """All routes in the rack's registration order (*convox/convox pkg/api/routes.go*)."""

    def r(method: str, pattern: str, handler: Any = None, **extra: Any) -> Route:
        if method == "SOCKET":
            return sockets[pattern]
        return Route(method, pattern, handler=handler, **extra)

    return [
        r("GET", "/auth", auth_ok, authorized=False),
        r("POST", "/apps/{name}/cancel", app_cancel),
        r("POST", "/apps", app_create),
        r("DELETE", "/apps/{name}", app_delete),
        r("GET", "/apps/{app}/diagnose", _unimplemented),
        r("GET", "/apps/{name}", app_get),
        r("GET", "/apps", app_list),
        r("SOCKET", "/apps/{name}/logs"),
        r("GET", "/apps/{app}/manifest/services/{service}", manifest_service),
        r("GET", "/apps/{name}/metrics", _unimplemented),
        r("GET", "/apps/{app}/metrics-by-service", metrics_by_service),
        r("PUT", "/apps/{name}", app_update),
        r("GET", "/apps/{app}/budget", budget_get),
        r("POST", "/apps/{app}/budget", _unimplemented),
        r("DELETE", "/apps/{app}/budget", _unimplemented),
        r("POST", "/apps/{app}/budget/reset", _unimplemented),
        r("GET", "/apps/{app}/budget/shutdown-state", _unimplemented),
        r("POST", "/apps/{app}/budget/simulate-shutdown", _unimplemented),
        r("POST", "/apps/{app}/budget/dismiss-recovery", _unimplemented),
        r("GET", "/apps/{app}/cost", _unimplemented),
        r("GET", "/apps/{app}/balancers", balancer_list),
        r("POST", "/apps/{app}/builds", build_create),
        r("GET", "/apps/{app}/builds/{id}.tgz", build_export),
        r("GET", "/apps/{app}/builds/{id}", build_get),
        r("POST", "/apps/{app}/builds/import", build_import, raw_body=True),
        r("POST", "/apps/{app}/builds/{id}/image", build_import_image),
        r("GET", "/apps/{app}/builds", build_list),
        r("SOCKET", "/apps/{app}/builds/{id}/logs"),
        r("PUT", "/apps/{app}/builds/{id}", build_update),
        r("GET", "/apps/{app}/configs", config_list),
        r("GET", "/apps/{app}/configs/{name}", config_get),
        r("PUT", "/apps/{app}/configs/{name}", config_set),
        r("GET", "/system/capacity", system_capacity),
        r("PUT", "/apps/{app}/ssl/{service}/{port}", _unimplemented),
        r("POST", "/certificates", certificate_create),
        r("DELETE", "/certificates/{id}", certificate_delete),
        r("POST", "/certificates/{id}/renew", certificate_renew),
        r("POST", "/certificates/generate", certificate_generate),
        r("GET", "/certificates", certificate_list),
        r("GET", "/letsencrypt/config", _unimplemented),
        r("PUT", "/letsencrypt/config", _unimplemented),
        r("POST", "/events", event_send),
        r("DELETE", "/apps/{app}/processes/{pid}/files", process_files),
        r("GET", "/apps/{app}/processes/{pid}/files", process_files),
        r("POST", "/apps/{app}/processes/{pid}/files", process_files),
        r("POST", "/instances/keyroll", _unimplemented),
        r("GET", "/instances", instance_list),
        r("SOCKET", "/instances/{id}/shell"),
        r("DELETE", "/instances/{id}", instance_terminate),
        r("DELETE", "/apps/{app}/objects/{key:.*}", object_delete),
        r("HEAD", "/apps/{app}/objects/{key:.*}", object_exists),
        r("GET", "/apps/{app}/objects/{key:.*}", object_fetch),
        r("GET", "/apps/{app}/objects", object_list),
        r("POST", "/apps/{app}/objects/{key:.*}", object_store, raw_body=True),
        r("SOCKET", "/apps/{app}/processes/{pid}/exec"),
        r("GET", "/apps/{app}/processes/{pid}", process_get),
        r("GET", "/apps/{app}/processes", process_list),
        r("SOCKET", "/apps/{app}/processes/{pid}/logs"),
        r("POST", "/apps/{app}/services/{service}/processes", process_run),
        r("SOCKET", "/apps/{app}/services/{service}/logs"),
        r("DELETE", "/apps/{app}/processes/{pid}", process_stop),
        r("SOCKET", "/proxy/{host}/{port}"),
        r("POST", "/registries", registry_add),
        r("GET", "/registries", registry_list),
        r("ANY", "/v2/{path:.*}", _unimplemented),
        r("DELETE", "/registries/{server:.*}", registry_remove),
        r("POST", "/apps/{app}/releases", release_create),
        r("GET", "/apps/{app}/releases/{id}", release_get),
        r("GET", "/apps/{app}/releases", release_list),
        r("POST", "/apps/{app}/releases/{id}/promote", release_promote),
        r("SOCKET", "/apps/{app}/resources/{name}/console"),
        r("GET", "/apps/{app}/resources/{name}/data", resource_export),
        r("GET", "/apps/{app}/resources/{name}", resource_get),
        r("PUT", "/apps/{app}/resources/{name}/data", resource_import, raw_body=True),
        r("GET", "/apps/{app}/resources", resource_list),
        r("GET", "/apps/{app}/services", service_list),
        r("GET", "/apps/{app}/services/{service}/metrics", _unimplemented),
        r("POST", "/apps/{app}/services/{name}/restart", service_restart),
        r("POST", "/apps/{app}/services/{service}/scale-override", _unimplemented),
        r("POST", "/apps/{app}/services/{service}/triggers/disable", _unimplemented),
        r("POST", "/apps/{app}/services/{service}/triggers/enable", _unimplemented),
        r("POST", "/apps/{app}/services/{service}/triggers/threshold", _unimplemented),
        r("PUT", "/apps/{app}/services/{name}", service_update),
        r("GET", "/system", system_get),
        r("SOCKET", "/system/logs"),
        r("GET", "/system/metrics", _unimplemented),
        r("PUT", "/system/jwt/rotate", jwt_rotate),
        r("POST", "/system/jwt/token", jwt_token),
        r("GET", "/system/processes", system_processes),
        r("GET", "/system/releases", system_releases),
        r("POST", "/resources", system_resource_create),
        r("DELETE", "/resources/{name}", system_resource_delete),
        r("GET", "/resources/{name}", system_resource_get),
        r("POST", "/resources/{name}/links", unavailable_on_v3),
        r("GET", "/resources", system_resource_list),
        r("OPTIONS", "/resources", system_resource_types),
        r("DELETE", "/resources/{name}/links/{app}", unavailable_on_v3),
        r("PUT", "/resources/{name}", unavailable_on_v3),
        r("PUT", "/system", system_update),
        r("POST", "/system/karpenter/cleanup", karpenter_cleanup),
        r("ANY", "/custom/http/proxy/{path:.*}", _unimplemented),
    ]
