"""``RackState``: the rack's models around one clock, and the one surface handlers call.

The facade holds the rack's settings, builds the models (each owns its records and behaviour)
and exposes their operations under the names the handlers, the emulator and tests use; every
name is the model's own method, looked up when called, so patching either one works.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, cast

from ..scripts import Scripts
from ..timing import Timing
from .apps import Apps
from .builds import Builds
from .clock import Clock
from .files import Files
from .logs import Logs
from .objects import Objects
from .processes import ExecRecord, Processes
from .releases import Releases
from .system import System

__all__ = ["RackState"]

P = ParamSpec("P")
R = TypeVar("R")


class _Op(Generic[P, R]):
    """A facade name for ``method`` of the model in attribute ``model``."""

    def __init__(self, model: str, method: Callable[Concatenate[Any, P], R]) -> None:
        self._model = model
        self._name = method.__name__
        self.__doc__ = method.__doc__

    def __get__(self, state: object, owner: type | None = None) -> Callable[P, R]:
        return cast("Callable[P, R]", getattr(getattr(state, self._model), self._name))


class RackState:
    """Everything the emulated rack knows, with the server's semantics (docs/rack-api.md §4-§5)."""

    def __init__(
        self,
        *,
        timing: Timing,
        scripts: Scripts,
        storage: Path,
        password: str | None,
        name: str = "emulator",
        domain: str = "emulator.convox.localhost",
        version: str = "3.24.9",
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.timing = timing
        self.scripts = scripts
        self.password = password
        self.name = name
        self.domain = domain
        self.version = version
        self.rack_url = ""  # the emulator's own RACK_URL, set once it listens
        self._storage = storage
        self.clock = Clock(clock)
        self.objects = Objects(self, storage)
        self.rack_system = System(self)
        self.apps = Apps(self)
        self.builds = Builds(self)
        self.releases = Releases(self)
        self.processes = Processes(self)
        self.logs = Logs(self)
        self.files = Files(self)
        self.execs: list[ExecRecord] = self.processes.execs

    @property
    def storage(self) -> Path:
        """The directory of the rack's files (objects, kept image archives, exports)."""
        return self._storage

    @property
    def started(self) -> int:
        """When the rack started, in epoch nanoseconds."""
        return self.rack_system.started

    def now(self) -> int:
        """The rack's clock in epoch nanoseconds."""
        return self.clock.now()

    def locked(self) -> AbstractContextManager[int]:
        """Hold the state lock with all due transitions applied; yields the current time."""
        return self.clock.locked()

    def next_due(self) -> int | None:
        """When the next queued transition is due, if any."""
        return self.clock.next_due()

    namespace = _Op("apps", Apps.namespace)
    registry = _Op("apps", Apps.registry)
    app_list = _Op("apps", Apps.app_list)
    app_get = _Op("apps", Apps.app_get)
    app_status = _Op("apps", Apps.app_status)
    app_create = _Op("apps", Apps.app_create)
    app_update = _Op("apps", Apps.app_update)
    app_delete = _Op("apps", Apps.app_delete)
    app_cancel = _Op("apps", Apps.app_cancel)
    config_list = _Op("apps", Apps.config_list)
    config_get = _Op("apps", Apps.config_get)
    config_set = _Op("apps", Apps.config_set)
    manifest_service = _Op("apps", Apps.manifest_service)
    service_list = _Op("apps", Apps.service_list)
    service_update = _Op("apps", Apps.service_update)
    service_restart = _Op("apps", Apps.service_restart)

    object_store_file = _Op("objects", Objects.object_store_file)
    object_store_bytes = _Op("objects", Objects.object_store_bytes)
    object_path = _Op("objects", Objects.object_path)
    object_exists = _Op("objects", Objects.object_exists)
    object_delete = _Op("objects", Objects.object_delete)

    build_get = _Op("builds", Builds.build_get)
    build_record = _Op("builds", Builds.build_record)
    build_list = _Op("builds", Builds.build_list)
    build_create = _Op("builds", Builds.build_create)
    build_update = _Op("builds", Builds.build_update)
    build_import_image = _Op("builds", Builds.build_import_image)
    build_import = _Op("builds", Builds.build_import)
    build_export = _Op("builds", Builds.build_export)
    seed_release = _Op("builds", Builds.seed_release)

    release_get = _Op("releases", Releases.release_get)
    release_list = _Op("releases", Releases.release_list)
    release_create = _Op("releases", Releases.release_create)
    promote_check = _Op("releases", Releases.promote_check)
    release_promote = _Op("releases", Releases.release_promote)
    seed_env = _Op("releases", Releases.seed_env)

    process_list = _Op("processes", Processes.process_list)
    process_get = _Op("processes", Processes.process_get)
    process_stop = _Op("processes", Processes.process_stop)
    process_run = _Op("processes", Processes.process_run)
    exec_target = _Op("processes", Processes.exec_target)
    pod_status = _Op("processes", Processes.pod_status)
    service_pods = _Op("processes", Processes.service_pods)

    file_store = _Op("files", Files.live_store)
    files_upload = _Op("files", Files.upload)
    files_download = _Op("files", Files.download)
    files_delete = _Op("files", Files.delete)

    emit_log = _Op("logs", Logs.emit_log)
    log_entries = _Op("logs", Logs.log_entries)

    system = _Op("rack_system", System.system)
    system_processes = _Op("rack_system", System.system_processes)
    instance_list = _Op("rack_system", System.instance_list)
    instance_terminate = _Op("rack_system", System.instance_terminate)
    instance_exists = _Op("rack_system", System.instance_exists)
    registry_list = _Op("rack_system", System.registry_list)
    registry_add = _Op("rack_system", System.registry_add)
    registry_remove = _Op("rack_system", System.registry_remove)
    webhook_list = _Op("rack_system", System.webhook_list)
    webhook_create = _Op("rack_system", System.webhook_create)
    webhook_get = _Op("rack_system", System.webhook_get)
    webhook_delete = _Op("rack_system", System.webhook_delete)
    app_resources = _Op("rack_system", System.app_resources)
    app_resource = _Op("rack_system", System.app_resource)
    certificate_list = _Op("rack_system", System.certificate_list)
    certificate_add = _Op("rack_system", System.certificate_add)
    certificate_delete = _Op("rack_system", System.certificate_delete)
    certificate_get = _Op("rack_system", System.certificate_get)
    jwt_mint = _Op("rack_system", System.jwt_mint)
    jwt_role = _Op("rack_system", System.jwt_role)
    jwt_rotate = _Op("rack_system", System.jwt_rotate)
