"""HTTP route handlers: turn a parsed request into state calls, like the rack's controllers.

Option parsing happens where the Go controller does it, so the order of errors matches (for
example promote checks run before its options are parsed, docs/rack-api.md §4.4). Options the rack
accepts but the emulator ignores are still parsed when parsing them can fail (ints, durations,
maps), so a bad value gives the rack's error; the others are not read at all. The route table
that maps paths to these handlers is in ``routes``.
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .encoding import sniff_content_type
from .errors import RackError
from .messages import Request, Response
from .state import BuildCreateOptions, RunOptions

if TYPE_CHECKING:
    from .context import Ctx, HttpHandler
    from .state import RackState

StateCall = Callable[["RackState"], Callable[..., object]]

_UNIMPLEMENTED = "unimplemented"


def unimplemented(_: Request, __: Ctx) -> Response:
    """Routes the generic k8s provider does not implement."""
    raise RackError(501, _UNIMPLEMENTED)


def _json(call: StateCall, *params: str) -> HttpHandler:
    """A handler answering, as JSON, the state call on the path variables ``params``.

    ``call`` picks the state method at request time (``lambda state: state.app_get``).
    """

    def handler(req: Request, ctx: Ctx) -> Response:
        return Response.json(call(ctx.state)(*(req.params[p] for p in params)))

    return handler


def _ok(call: StateCall, *params: str) -> HttpHandler:
    """A handler making the state call on the path variables ``params``, answering ``ok``."""

    def handler(req: Request, ctx: Ctx) -> Response:
        call(ctx.state)(*(req.params[p] for p in params))
        return Response.ok()

    return handler


# --- apps ----------------------------------------------------------------------------------


app_list = _json(lambda state: state.app_list)


def app_create(req: Request, ctx: Ctx) -> Response:
    name = req.value("name")
    timeout = req.as_int(req.param("timeout"))
    return Response.json(ctx.state.app_create(name, timeout=timeout))


app_get = _json(lambda state: state.app_get, "name")


def app_update(req: Request, ctx: Ctx) -> Response:
    lock = req.as_bool(req.param("lock"))
    parameters = req.as_map(req.param("parameters"))
    ctx.state.app_update(req.params["name"], lock=lock, parameters=parameters)
    return Response.ok()


app_delete = _ok(lambda state: state.app_delete, "name")

app_cancel = _ok(lambda state: state.app_cancel, "name")

config_list = _json(lambda state: state.config_list, "app")

config_get = _json(lambda state: state.config_get, "app", "name")


def config_set(req: Request, ctx: Ctx) -> Response:
    ctx.state.config_set(req.params["app"], req.params["name"], req.value("value"))
    return Response.ok()


manifest_service = _json(lambda state: state.manifest_service, "app", "service")


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
    options = BuildCreateOptions(
        description=req.param("description") or "",
        git_sha=req.param("git-sha") or "",
        manifest=req.param("manifest") or "convox.yml",
        external=req.as_bool(req.param("external")) or False,
    )
    ctx.state.app_get(app)
    source: Path | None = None
    parts = urlsplit(url)
    if parts.scheme == "object":
        try:
            source = ctx.state.object_path(parts.hostname or "", parts.path.lstrip("/"))
        except RackError:
            source = None
    build = await asyncio.to_thread(ctx.state.build_create, app, url, options, source)
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


build_get = _json(lambda state: state.build_get, "app", "id")


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


release_get = _json(lambda state: state.release_get, "app", "id")


def release_list(req: Request, ctx: Ctx) -> Response:
    limit = req.as_int(req.query_param("limit"))
    return Response.json(ctx.state.release_list(req.params["app"], limit))


def release_promote(req: Request, ctx: Ctx) -> Response:
    app, release_id = req.params["app"], req.params["id"]
    force = req.param("force") == "true"
    ctx.state.promote_check(app, release_id, force=force)
    req.as_int(req.param("min"))
    req.as_int(req.param("max"))
    timeout = req.as_int(req.param("timeout"))
    ctx.state.release_promote(app, release_id, force=force, timeout=timeout)
    return Response.ok()


# --- services ------------------------------------------------------------------------------


service_list = _json(lambda state: state.service_list, "app")


def service_update(req: Request, ctx: Ctx) -> Response:
    count = req.as_int(req.param("count"))
    cpu = req.as_int(req.param("cpu"))
    req.as_int(req.param("gpu"))
    memory = req.as_int(req.param("memory"))
    req.as_int(req.param("min"))
    req.as_int(req.param("max"))
    ctx.state.service_update(
        req.params["app"], req.params["name"], count=count, cpu=cpu, memory=memory
    )
    return Response.ok()


service_restart = _ok(lambda state: state.service_restart, "app", "name")

# --- processes -----------------------------------------------------------------------------


def process_list(req: Request, ctx: Ctx) -> Response:
    release = req.query_param("release")
    service = req.query_param("service")
    return Response.json(
        ctx.state.process_list(req.params["app"], service=service, release=release)
    )


process_get = _json(lambda state: state.process_get, "app", "pid")

process_stop = _ok(lambda state: state.process_stop, "app", "pid")


def process_run(req: Request, ctx: Ctx) -> Response:
    app = req.params["app"]
    ctx.state.app_get(app)
    command = req.header("Command")
    cpu = req.as_int(req.header("Cpu"))
    req.as_int(req.header("Cpu-Limit"))
    environment = req.as_map(req.header("Environment")) or {}
    gpu = req.as_int(req.header("Gpu"))
    req.as_int(req.header("Height"))
    image = req.header("Image")
    memory = req.as_int(req.header("Memory"))
    req.as_int(req.header("Memory-Limit"))
    release = req.header("Release")
    req.as_map(req.header("Volumes"))
    req.as_int(req.header("Width"))
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


async def process_files(req: Request, ctx: Ctx) -> Response:
    """``convox cp``: tar archives in (POST) and out (GET ``file``); DELETE ``files`` (§4.6)."""
    app, pid = req.params["app"], req.params["pid"]
    ctx.state.app_get(app)
    if req.method == "POST":
        await asyncio.to_thread(ctx.state.files_upload, app, pid, req.body_path)
        return Response.ok()
    if req.method == "DELETE":
        names = [n for n in (req.query_param("files") or "").split(",") if n]
        ctx.state.files_delete(app, pid, names)
        return Response.ok()
    data = ctx.state.files_download(app, pid, req.query_param("file") or "")
    return Response(headers=[("Content-Type", "application/octet-stream")], body=data)


# --- system, instances, registries, resources, certificates ---------------------------------


system_get = _json(lambda state: state.system)


def system_update(req: Request, _: Ctx) -> Response:
    req.as_int(req.param("count"))
    req.as_map(req.param("parameters"))
    raise RackError(
        501,
        "direct rack doesn't support update, "
        "make sure you are not using RACK_URL environment variable",
    )


system_processes = _json(lambda state: state.system_processes)


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


instance_list = _json(lambda state: state.instance_list)

instance_terminate = _ok(lambda state: state.instance_terminate, "id")


def registry_add(req: Request, ctx: Ctx) -> Response:
    registry = ctx.state.registry_add(
        req.value("server"), req.value("username"), req.value("password")
    )
    return Response.json(registry)


registry_list = _json(lambda state: state.registry_list)

registry_remove = _ok(lambda state: state.registry_remove, "server")

resource_list = _json(lambda state: state.app_resources, "app")

resource_get = _json(lambda state: state.app_resource, "app", "name")


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


system_resource_list = _json(lambda state: state.webhook_list)

system_resource_get = _json(lambda state: state.webhook_get, "name")

system_resource_delete = _ok(lambda state: state.webhook_delete, "name")


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


certificate_list = _json(lambda state: state.certificate_list)


def certificate_create(req: Request, ctx: Ctx) -> Response:
    pub = req.value("pub")
    if "BEGIN CERTIFICATE" not in pub:
        raise RackError(500, "failed to decode certificate pem")
    return Response.json(ctx.state.certificate_add("", status="issued"))


def certificate_generate(req: Request, ctx: Ctx) -> Response:
    domains = [d for d in (req.param("domains") or "").split(",") if d]
    if not domains:
        raise RackError(400, "domains required")
    return Response.json(ctx.state.certificate_add(domains[0], status="pending"))


certificate_delete = _ok(lambda state: state.certificate_delete, "id")

certificate_renew = _ok(lambda state: state.certificate_get, "id")


def event_send(req: Request, _: Ctx) -> Response:
    req.as_map(req.param("data"))
    return Response.ok()


def auth_ok(_: Request, __: Ctx) -> Response:
    return Response.ok()


def karpenter_cleanup(_: Request, __: Ctx) -> Response:
    return Response.ok()
