"""Copy a build from one rack to another: the export streamed straight into the import.

``client.builds.copy(app, build_id, to=other_client)`` runs on the source client's driver; what
it asks of the target rack goes to the other client's driver through the :class:`On` effect, so
one definition serves both clients (two sync clients, or two async ones). The export body
(``GET …/builds/{id}.tgz``) becomes the import body (``POST …/builds/import``) chunk by chunk
through :class:`~convox_provider.client.relay.ExportRelay`: constant memory, no temporary file.

The copy is durable: the imported build's description carries a marker naming the source rack,
app and build (:func:`copy_marker`), and the copy first looks for a complete build with that
marker among the target app's newest builds, so a retry after a lost answer does not import a
second time. The import is synchronous and the rack discards registry push errors
(docs/rack-api.md §4.3): the copy checks what the API shows (the new build is complete, its
manifest is the source's, its release is of that build with that manifest) and says what it
cannot check (that the images were pushed).
"""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass
from typing import Any, TypeVar

from convox_provider.client.encoding import segment
from convox_provider.client.errors import (
    ConvoxError,
    ConvoxInputError,
    ConvoxNotFoundError,
    ConvoxWaitTimeoutError,
)
from convox_provider.client.models import Build
from convox_provider.client.operation import Call, D, Flow, On, Resource, call, operation
from convox_provider.client.relay import ConvoxCopyError, ExportRelay
from convox_provider.client.resources import apps as app_routes
from convox_provider.client.resources import builds as build_routes
from convox_provider.client.resources import releases as release_routes
from convox_provider.client.resources._common import TRANSFER_TIMEOUT
from convox_provider.client.status import AppStatus
from convox_provider.client.workflows.events import (
    BuildCopied,
    BuildCopyProgress,
    BuildCopyStarted,
    EventCallback,
)
from convox_provider.client.workflows.waits import Deadline, emit

__all__ = [
    "COPY_SEARCH",
    "COPY_TIMEOUT",
    "UNVERIFIED",
    "BuildCopyWorkflows",
    "ConvoxCopyError",
    "CopiedBuild",
    "copy_build",
    "copy_marker",
    "other_driver",
]

T = TypeVar("T")

COPY_TIMEOUT = 2 * 3600.0
"""Seconds a copy may take by default (export, import and the image pushes of the import)."""

COPY_SEARCH = 50
"""The target app's newest builds searched for an earlier try's import."""

UNVERIFIED = (
    "that the images were pushed to the target rack's registry: the rack discards push errors"
    " of an import (docs/rack-api.md §4.3); run a smoke test after promoting"
)


@dataclass(frozen=True)
class CopiedBuild:
    """The build a copy made (or found, ``reused``) on the target rack."""

    app: str
    build_id: str
    release_id: str
    source_app: str
    source_build: str
    size: int
    reused: bool
    unverified: str = UNVERIFIED


class _Rack:
    """One side of the copy: its driver (None: the driver running the flow) and its name."""

    def __init__(self, side: str, driver: Any, here: bool) -> None:
        self.side = side
        self.driver = driver
        self.here = here
        config = getattr(driver, "config", None)
        host = str(getattr(config, "base_url", "") or getattr(config, "host", "") or "?")
        rack = getattr(config, "rack", None)
        self.name = f"{host} (rack {rack})" if rack else host
        self.key = f"{host}|{rack or ''}"

    def call(self, request: Call[T]) -> Flow[T]:
        """Flow: send ``request`` to this rack; an error names the rack."""
        try:
            if self.here:
                return (yield from call(request))
            return (yield On(self.driver, request))  # type: ignore[no-any-return]
        except (ConvoxCopyError, ConvoxWaitTimeoutError, ConvoxInputError):
            raise
        except ConvoxError as exc:
            raise ConvoxCopyError(f"{self.side} rack {self.name}: {exc}", rack=self.side) from exc


def other_driver(mine: Any, client: Any, name: str, what: str) -> Any:
    """The driver of ``client``, the client of another rack given as argument ``name``; refused
    unless it is a client of the same kind as the one of driver ``mine`` (sync or async)."""
    other = getattr(getattr(client, "builds", None), "_driver", None)
    if other is None:
        raise ConvoxInputError(f"{name}= must be the client of {what}, got {type(client).__name__}")
    ours = inspect.iscoroutinefunction(getattr(mine, "open_download", None))
    theirs = inspect.iscoroutinefunction(getattr(other, "open_download", None))
    if ours != theirs:
        raise ConvoxInputError(
            f"{name}= must be a client of the same kind as this one: both ConvoxClient or both"
            " AsyncConvoxClient"
        )
    return other


def copy_marker(source_key: str, app: str, build_id: str) -> str:
    """The marker an imported build's description carries: the source rack (hashed), app and
    build, so that it names what was copied and nothing else."""
    rack = hashlib.sha256(source_key.encode()).hexdigest()[:10]
    return f"convox-copy:{rack}/{app}/{build_id}"


def _described(description: str, marker: str) -> str:
    return f"{description} [{marker}]" if description else f"[{marker}]"


def _check(target: _Rack, source: Build, imported: Build, target_app: str) -> Flow[str]:
    """Flow: raise unless ``imported`` is what the API can show a copy of ``source`` to be;
    return its release id."""
    problem = ""
    if imported.status != "complete" or not imported.release:
        problem = f"it is {imported.status!r} with release {imported.release or '(none)'}"
    elif imported.manifest != source.manifest:
        problem = "its manifest differs from the source build's"
    else:
        release = yield from target.call(release_routes.get(target_app, imported.release))
        if release.build != imported.id:
            problem = f"its release {release.id} is of build {release.build or '(none)'}"
        elif release.manifest and release.manifest != source.manifest:
            problem = f"its release {release.id} has another manifest than the source build"
    if problem:
        raise ConvoxCopyError(
            f"target rack {target.name}: build {imported.id} of app {target_app}, imported from"
            f" build {source.id}, is not a copy of it: {problem}. It stays on the target rack"
            " (builds cannot be deleted); do not promote it",
            rack="target",
        )
    return imported.release


def copy_build(
    source: _Rack,
    target: _Rack,
    app: str,
    build_id: str,
    target_app: str,
    *,
    timeout: float,
    on_event: EventCallback | None,
) -> Flow[CopiedBuild]:
    """Flow: :meth:`BuildCopyWorkflows.copy`."""
    if source.key == target.key and app == target_app:
        raise ConvoxInputError(
            f"the source and the target of the copy are the same app {app} on the same rack"
            f" {source.name}: give another target app or another target rack"
        )
    deadline = yield from Deadline.start(timeout)
    build = yield from source.call(build_routes.get(app, build_id))
    if build.status != "complete" or not build.release:
        raise ConvoxInputError(
            f"build {build_id} of app {app} on the source rack {source.name} is"
            f" {build.status or 'not complete'!r}: only a complete build (with its release) can"
            " be exported; wait for it to complete, or copy another build"
        )
    try:
        found = yield from target.call(app_routes.get(target_app))
    except ConvoxCopyError as exc:
        if isinstance(exc.__cause__, ConvoxNotFoundError):
            raise ConvoxInputError(
                f"app {target_app} does not exist on the target rack {target.name}: create it"
                " first (client.apps.create_and_wait, or ConvoxCreateAppOperator)"
            ) from None
        raise
    if found.app_status is AppStatus.DELETING:
        raise ConvoxInputError(
            f"app {target_app} on the target rack {target.name} is being deleted; nothing was"
            " copied"
        )
    marker = copy_marker(source.key, app, build_id)
    newest = yield from target.call(build_routes.list(target_app, limit=COPY_SEARCH))
    for earlier in newest:
        if marker in earlier.description and earlier.status == "complete" and earlier.release:
            release_id = yield from _check(target, build, earlier, target_app)
            emit(
                on_event,
                BuildCopied(target_app, earlier.id, release_id, build_id, 0, True, UNVERIFIED),
            )
            return CopiedBuild(target_app, earlier.id, release_id, app, build_id, 0, True)
    emit(on_event, BuildCopyStarted(app, build_id, target_app))
    left = yield from deadline.remaining()
    if left <= 0:
        raise ConvoxWaitTimeoutError(f"gave up copying build {build_id} after {timeout:g}s")
    relay = ExportRelay(
        describe=lambda description: _described(description, marker),
        source=f"source rack {source.name}, build {build_id} of app {app}",
        timeout=left,
        on_progress=lambda size: emit(on_event, BuildCopyProgress(app, build_id, size)),
    )
    export = build_routes.export(app, build_id, lambda chunk: None)
    assert isinstance(export, Call)
    export_call = Call("GET", export.path, export.parse, timeout=min(left, TRANSFER_TIMEOUT))
    opener = source.driver.open_download
    if inspect.iscoroutinefunction(opener):
        body: Any = relay.async_body(lambda: opener(export_call))
    else:
        body = relay.sync_body(lambda: opener(export_call))
    imported = yield from target.call(
        build_routes.import_build(target_app, body, timeout=min(left, TRANSFER_TIMEOUT))
    )
    release_id = yield from _check(target, build, imported, target_app)
    emit(
        on_event,
        BuildCopied(
            target_app, imported.id, release_id, build_id, relay.received, False, UNVERIFIED
        ),
    )
    return CopiedBuild(target_app, imported.id, release_id, app, build_id, relay.received, False)


class BuildCopyWorkflows(Resource[D]):
    """The copy workflow of ``client.builds``."""

    @operation
    def copy(
        self,
        app: str,
        build_id: str,
        *,
        to: Any,
        target_app: str | None = None,
        timeout: float = COPY_TIMEOUT,
        on_event: EventCallback | None = None,
    ) -> Flow[CopiedBuild]:
        """Copy complete build ``build_id`` of ``app`` into ``target_app`` (default: the same
        name) on the rack of client ``to``; return the new build and its release (not promoted).

        The export is streamed into the import as it arrives (constant memory, no temporary
        file), with :class:`~.events.BuildCopyProgress` events; an export that is cut short is
        never imported as a complete build (the import is aborted). ``timeout`` (seconds)
        bounds the whole copy. Durable: the imported build's description ends with a marker
        ``[convox-copy:…]``, and a complete build carrying it among the target app's newest
        builds is returned (``reused``) instead of importing again. The result's
        ``unverified`` says what the rack cannot confirm: that the images were pushed.

        Refused before anything is written (:class:`ConvoxInputError`): the same app on the
        same rack, a build that is not complete, a target app that does not exist or is being
        deleted, an invalid name. Other failures raise :class:`ConvoxCopyError` naming the
        rack (``rack`` is ``"source"`` or ``"target"``). ``to`` must be of the same kind as
        this client (both sync or both async).
        """
        segment(app, kind="app name")
        segment(build_id, kind="build id")
        target_app = app if target_app is None else target_app
        segment(target_app, kind="app name")
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            raise ConvoxInputError(f"invalid timeout {timeout!r}: give seconds > 0")
        other = other_driver(self._driver, to, "to", "the target rack")
        source = _Rack("source", self._driver, here=True)
        target = _Rack("target", other, here=False)
        return copy_build(
            source, target, app, build_id, target_app, timeout=timeout, on_event=on_event
        )
