"""Builds: create from an uploaded source, list, read, update, export, import.

Routes of docs/rack-api.md §4.3.

Build logs are a WebSocket route (§4.7); they live with the other streams, not here.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterable, Iterable, Mapping
from datetime import datetime

from convox_provider.client.encoding import Fields, encode_build_args, segment
from convox_provider.client.errors import ConvoxInputError
from convox_provider.client.models import Build
from convox_provider.client.operation import (
    Call,
    D,
    Flow,
    parse_model,
    parse_ok,
    route,
)
from convox_provider.client.resources._common import (
    TRANSFER_TIMEOUT,
    Destination,
    FileSource,
    app_path,
    download,
    file_body,
    hidden,
    newest_first,
    pairs,
)
from convox_provider.client.resources.streams import BuildLogs

__all__ = [
    "BuildRoutes",
    "create",
    "export",
    "get",
    "import_build",
    "import_image",
    "list",
    "update",
]

_SOURCE_SCHEMES = ("object://", "dir://")


def _build_path(app: str, build_id: str, *rest: str, suffix: str = "") -> str:
    return app_path(app, "builds", segment(build_id, kind="build id") + suffix, *rest)


def create(
    app: str,
    url: str | None = None,
    *,
    description: str | None = None,
    manifest: str | None = None,
    no_cache: bool | None = None,
    development: bool | None = None,
    build_args: Mapping[str, str] | Iterable[str] | None = None,
    git_sha: str | None = None,
    external: bool | None = None,
    wildcard_domain: bool | None = None,
) -> Call[Build]:
    """Start a build of the source at ``url``; returns it ``running`` (the build pod's name is
    in ``process``).

    ``url`` must be the ``object://<app>/<key>`` URL that ``client.objects.store`` returned
    (or ``dir://`` on the builder): build pods fail any other scheme, ``https://`` included,
    with ``unknown source type`` — the official SDK's example does exactly that (§8 item 4),
    so it is refused here. It may be omitted only with ``external=True``.

    ``no_cache=True`` really builds without the layer cache. The rack reads its ``no-cache``
    field inverted — as "use the cache", default true (§4.3) — so ``no_cache=True`` is sent
    as ``no-cache=false`` and ``no_cache=False`` as ``no-cache=true``; ``None`` sends nothing
    (cache on). ``build_args`` is a mapping or ``"K=V"`` strings; values cannot contain
    commas, whitespace or quotes (the builder splits its command line). ``manifest`` is the
    manifest's path inside the source (default ``convox.yml``). ``wildcard_domain`` is
    accepted and unused by v3 racks. Not retried: a repeat would start a second build.
    """
    if url is None and not external:
        raise ConvoxInputError(
            "a build needs the source url returned by client.objects.store (object://...),"
            " unless external=True"
        )
    if url is not None and not external and not url.startswith(_SOURCE_SCHEMES):
        raise ConvoxInputError(
            f"invalid build url {url!r}: build pods only fetch object:// (from"
            " client.objects.store) or dir:// sources and fail anything else with 'unknown"
            " source type'; upload the tarball with client.objects.store first"
        )
    form = (
        Fields()
        .add("url", url)
        .add("description", description)
        .add("manifest", manifest)
        .add("no-cache", None if no_cache is None else not no_cache)
        .add("development", development)
        .add("build-args", None if build_args is None else encode_build_args(build_args))
        .add("git-sha", git_sha)
        .add("external", external)
        .add("wildcard-domain", wildcard_domain)
    )
    return Call("POST", app_path(app, "builds"), parse_model(Build), form=pairs(form))


def list(app: str, *, limit: int | None = None) -> Call[builtins.list[Build]]:
    """The newest builds first (by ``started``); the rack returns 10 unless ``limit`` says."""
    return newest_first(app, "builds", Build, limit)


def get(app: str, build_id: str) -> Call[Build]:
    """One build; a missing id is a 500 ``… not found``, raised as ``ConvoxNotFoundError``."""
    return Call("GET", _build_path(app, build_id), parse_model(Build))


def update(
    app: str,
    build_id: str,
    *,
    status: str | None = None,
    release: str | None = None,
    manifest: str | None = None,
    logs: str | None = None,
    entrypoint: str | None = None,
    started: datetime | None = None,
    ended: datetime | None = None,
) -> Call[Build]:
    """Overwrite build fields (what the build pod and external builds do); returns the build.

    Retried like a GET: every field is set to an absolute value, so a repeat changes nothing.
    """
    form = (
        Fields()
        .add("status", status)
        .add("release", release)
        .add("manifest", manifest)
        .add("logs", logs)
        .add("entrypoint", entrypoint)
        .add_time("started", started)
        .add_time("ended", ended)
    )
    return Call(
        "PUT",
        _build_path(app, build_id),
        parse_model(Build),
        form=pairs(form),
        retry_safe=True,
    )


def export(
    app: str,
    build_id: str,
    sink: Destination,
    *,
    timeout: float | None = TRANSFER_TIMEOUT,
) -> Call[int] | Flow[int]:
    """Stream the build's export archive (gzip tar: ``build.json`` plus one image archive per
    service) to ``sink`` chunk by chunk; returns the number of bytes written.

    ``sink`` is a path, a binary file object (written as chunks arrive, left open) or a
    callable taking each chunk. A path is written through a temporary file beside it that
    replaces it only once the whole archive arrived, so a broken download never leaves a
    truncated archive there. An error after streaming began cannot change the status code:
    the archive is merely cut short (§3.1), so verify it before relying on it. A connection
    that breaks mid-stream raises ``ConvoxConnectionError`` and is not retried.
    """
    return download(_build_path(app, build_id, suffix=".tgz"), sink, timeout=timeout)


def import_build(
    app: str,
    data: bytes | FileSource | Iterable[bytes] | AsyncIterable[bytes],
    *,
    timeout: float | None = TRANSFER_TIMEOUT,
) -> Call[Build]:
    """Import an export archive; returns a new build, already ``complete``, with a new
    release (nothing is promoted).

    Synchronous on the rack: it answers only after pushing every image, so the read wait is
    long; ``timeout`` bounds each read and write wait, in seconds (``None``: no limit).
    ``data`` is bytes; a path (``str`` or ``os.PathLike``) or a binary file object, read in
    1 MiB chunks as they are sent (in a worker thread on the async client); or chunks
    streamed as they come (an iterable for the sync client, an async iterable for the async
    one). The rack discards registry push errors, so a "successful" import may lack images.
    Not retried: a repeat would create a second build and release.
    """
    return Call(
        "POST",
        app_path(app, "builds", "import"),
        parse_model(Build),
        content=file_body(data),
        timeout=timeout,
    )


def import_image(
    app: str,
    build_id: str,
    image: str,
    *,
    src_creds_user: str | None = None,
    src_creds_pass: str | None = None,
) -> Call[None]:
    """Start copying a prebuilt ``image`` into build ``build_id`` (created with
    ``external=True``); the rack answers 202 and works on; poll the build until
    ``complete`` (it then has no release: create one) or ``failed``.

    ``src_creds_*`` authenticate to the source registry. Not retried.
    """
    if not isinstance(image, str) or not image:
        raise ConvoxInputError("import_image needs an image reference")
    form = (
        Fields()
        .add("image", image)
        .add("src-creds-user", src_creds_user)
        .add("src-creds-pass", src_creds_pass)
    )
    return Call("POST", _build_path(app, build_id, "image"), parse_ok, form=hidden(form))


class BuildRoutes(BuildLogs[D]):
    """The routes of ``client.builds`` (its workflows: :mod:`..workflows.builds`)."""

    create = route(create)
    list = route(list)
    get = route(get)
    update = route(update)
    export = route(export)
    import_build = route(import_build)
    import_image = route(import_image)
