"""What a rack model stands on: ``Model``, ``AppRecords`` and the ``Rack`` it is handed.

A model reaches its siblings through ``Model.rack``, typed here as ``Rack``: a Protocol naming
the rack's settings and, for each sibling model, only the calls the other models make on it
(``AppsPort``, ``BuildsPort``, ...). ``RackState`` (``rack``) satisfies it structurally, so the
facade imports the models and no model imports the facade or, for its type, a sibling.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Generic, Protocol, TypedDict, TypeVar

from typing_extensions import NotRequired, Unpack

from ..errors import RackError
from ..models import App, Build, Pod, Release
from ..scripts import Scripts
from ..timing import Timing
from .clock import Clock

__all__ = [
    "AppRecords",
    "AppStore",
    "AppsPort",
    "BuildsPort",
    "FilesPort",
    "LogsPort",
    "Model",
    "NewPod",
    "ObjectsPort",
    "ProcessesPort",
    "Rack",
    "ReleaseFields",
    "ReleasesPort",
    "SystemPort",
]

T = TypeVar("T")


class ReleaseFields(TypedDict, total=False):
    """What a new release may set: ``build``, ``env``, ``description`` and the ``parent`` forked."""

    build: str | None
    env: str | None
    description: str | None
    parent: str | None


class NewPod(TypedDict):
    """A new pod: what it is for, its release, command, image, creation time and template."""

    kind: str
    release: str
    args: list[str]
    image: str
    at: int
    template: NotRequired[str | None]


class AppStore(Protocol):
    """A model holding records per app: made room for on create, emptied on delete."""

    def open_app(self, app: str) -> None:
        """Make room for a new app's records."""

    def drop_app(self, app: str) -> None:
        """Forget a deleted app's records."""


class AppsPort(Protocol):
    """What the other models call on ``Apps``."""

    def app(self, name: str) -> App: ...
    def find(self, name: str) -> App | None: ...
    def namespace(self, app: str) -> str: ...
    def registry(self, app: str) -> str: ...
    def settle_on(self, app: App, at: int, release_id: str) -> None: ...
    def rollout(
        self, app: App, at: int, target: str, *, kind: str, timeout: int | None
    ) -> None: ...
    def deploy(
        self, app: App, at: int, release_id: str, only: str | None = None, *, seeded: bool = False
    ) -> None: ...


class BuildsPort(AppStore, Protocol):
    """What the other models call on ``Builds``."""

    def build(self, app: str, build_id: str) -> Build: ...
    def find(self, app: str, build_id: str) -> Build | None: ...


class ReleasesPort(AppStore, Protocol):
    """What the other models call on ``Releases``."""

    def release(self, app: str, release_id: str) -> Release: ...
    def find(self, app: str, release_id: str) -> Release | None: ...
    def newest(self, app: str) -> Release | None: ...
    def create(self, app: str, at: int, **fields: Unpack[ReleaseFields]) -> Release: ...


class ProcessesPort(AppStore, Protocol):
    """What the other models call on ``Processes``."""

    def pods_of(self, app: str) -> list[Pod]: ...
    def count(self) -> int: ...
    def pod(self, app: str, pid: str) -> Pod: ...
    def alive(self, pod: Pod, token: int) -> bool: ...
    def new_pod(self, app: str, service: str, **spec: Unpack[NewPod]) -> Pod: ...
    def start_pod(self, pod: Pod, at: int, then: Callable[[int], None] | None = None) -> None: ...
    def crash_loop(self, pod: Pod, at: int, lines: Sequence[str]) -> None: ...
    def end_pod(self, pod: Pod, at: int, exit_code: int) -> None: ...
    def remove_pod(self, pod: Pod) -> None: ...
    def environment(
        self, app: str, release_id: str, service: str, *, strict: bool = False
    ) -> dict[str, str]: ...


class LogsPort(AppStore, Protocol):
    """What the other models call on ``Logs``."""

    def log(self, app: str, at: int, stream: str, message: bytes, pod: Pod | None = None) -> None:
        """Append one log line."""


class FilesPort(Protocol):
    """What the other models call on ``Files``."""

    def store(self, app: str, pid: str) -> dict[str, bytes]: ...
    def forget(self, app: str, pid: str) -> None: ...


class ObjectsPort(Protocol):
    """What the other models call on ``Objects``."""

    def drop_app(self, app: str) -> None: ...
    def object_store_bytes(self, app: str, key: str, data: bytes) -> str: ...


class SystemPort(Protocol):
    """What the other models call on ``System``."""

    def first_instance(self) -> str: ...


class Rack(Protocol):
    """The rack as its models see it: settings, the clock and the sibling models' ports."""

    @property
    def name(self) -> str: ...
    @property
    def domain(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def password(self) -> str | None: ...
    @property
    def rack_url(self) -> str: ...
    @property
    def timing(self) -> Timing: ...
    @property
    def scripts(self) -> Scripts: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def apps(self) -> AppsPort: ...
    @property
    def builds(self) -> BuildsPort: ...
    @property
    def releases(self) -> ReleasesPort: ...
    @property
    def processes(self) -> ProcessesPort: ...
    @property
    def logs(self) -> LogsPort: ...
    @property
    def files(self) -> FilesPort: ...
    @property
    def objects(self) -> ObjectsPort: ...
    @property
    def rack_system(self) -> SystemPort: ...


class Model:
    """One concern of the rack: its own records, the shared clock and its sibling models."""

    def __init__(self, rack: Rack) -> None:
        self.rack = rack
        self.clock = rack.clock

    @property
    def timing(self) -> Timing:
        """How long things take on this rack."""
        return self.rack.timing

    @property
    def scripts(self) -> Scripts:
        """What commands, builds and rollouts do on this rack."""
        return self.rack.scripts

    def locked(self) -> AbstractContextManager[int]:
        """The shared clock's lock (see ``Clock.locked``)."""
        return self.clock.locked()

    def _at(self, due: int, action: Callable[[int], None]) -> None:
        self.clock.at(due, action)

    def _stamp(self, at: int) -> int:
        return self.clock.stamp(at)


class AppRecords(Model, Generic[T]):
    """A model holding records by app and id: room made on app create, emptied on delete."""

    def __init__(self, rack: Rack) -> None:
        super().__init__(rack)
        self._records: dict[str, dict[str, T]] = {}

    def open_app(self, app: str) -> None:
        """Make room for a new app's records."""
        self._records[app] = {}

    def drop_app(self, app: str) -> None:
        """Forget a deleted app's records."""
        self._records.pop(app, None)

    def _record(self, app: str, record_id: str, resource: str) -> T:
        """A record by case-insensitive id; 500 ``<resource> "<id>" not found`` like k8s."""
        record = self._records.get(app, {}).get(record_id.upper())
        if record is None:
            raise RackError(500, f'{resource} "{record_id.lower()}" not found')
        return record
