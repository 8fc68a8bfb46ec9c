"""Progress events the workflows report to an ``on_event`` callback.

Small frozen dataclasses, one per thing that happened, so a caller (an Airflow task log, a CLI
progress line) can render them or ignore them by type. None carries an environment value or a
credential: environment events name keys only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

__all__ = [
    "AppLifecycle",
    "AppStatusChanged",
    "BuildCopied",
    "BuildCopyProgress",
    "BuildCopyStarted",
    "BuildCreated",
    "BuildLogProgress",
    "BuildStatusChanged",
    "EnvironmentConflict",
    "EnvironmentUnchanged",
    "EventCallback",
    "ProcessCleanupFailed",
    "ProcessDeleted",
    "ProcessStarted",
    "ProcessStateChanged",
    "PromoteNotNeeded",
    "PromoteSubmitted",
    "PreviousBuildChecked",
    "ReleaseCreated",
    "RollbackTargetChosen",
    "ServicesRestarted",
    "SourceUploaded",
    "StreamInterrupted",
    "WaitRetrying",
    "WorkflowEvent",
]


@dataclass(frozen=True)
class WaitRetrying:
    """A poll failed with a transient error (5xx, 429, connection); the wait goes on.

    ``failures`` counts consecutive failures, ``limit`` is how many end the wait. ``error`` is the
    error's message (rack messages carry no secrets).
    """

    waiting_for: str
    error: str
    failures: int
    limit: int


@dataclass(frozen=True)
class AppStatusChanged:
    """``GET /apps/{app}`` reported a new status (or a new release) during a rollout wait."""

    app: str
    status: str
    previous: str | None
    release: str


@dataclass(frozen=True)
class ProcessStateChanged:
    """A pod of the app changed status while a rollout was watched (``previous`` None: new pod).

    Pods already ``running`` when first seen are not reported, like the CLI (docs/rack-api.md §7.4).
    """

    app: str
    process_id: str
    service: str
    status: str
    previous: str | None
    release: str


@dataclass(frozen=True)
class PromoteSubmitted:
    """The rack accepted ``POST …/releases/{id}/promote``; the rollout runs asynchronously."""

    app: str
    release_id: str
    force: bool


@dataclass(frozen=True)
class PromoteNotNeeded:
    """``release_id`` is already the app's release, so it is not promoted again: ``state`` is
    ``"running"`` (nothing to do) or ``"rolling out"`` (its rollout is waited for)."""

    app: str
    release_id: str
    state: str


@dataclass(frozen=True)
class ReleaseCreated:
    """A new release exists (``description`` as the rack wrote it, e.g. ``env add:KEY``)."""

    app: str
    release_id: str
    build_id: str
    description: str


@dataclass(frozen=True)
class PreviousBuildChecked:
    """A build an earlier attempt started was found; ``verdict`` says whether it is used
    (``"re-attaching"``, ``"complete: using it"``) or why a new build is needed."""

    app: str
    build_id: str
    status: str
    usable: bool
    verdict: str


@dataclass(frozen=True)
class RollbackTargetChosen:
    """A rollback goes back to ``release_id`` (given, or the release before the active one)."""

    app: str
    release_id: str


@dataclass(frozen=True)
class EnvironmentConflict:
    """Another writer created a release while the environment was being changed.

    ``attempt`` is the write that was overtaken; the changes are re-applied on top of
    ``newest_release`` (keys only here, never values).
    """

    app: str
    attempt: int
    release_id: str
    newest_release: str
    keys: tuple[str, ...]


@dataclass(frozen=True)
class EnvironmentUnchanged:
    """Release ``release_id`` already has the change to ``keys``: no release was created."""

    app: str
    release_id: str
    keys: tuple[str, ...]


@dataclass(frozen=True)
class SourceUploaded:
    """The source archive was stored through the objects API at ``url`` (``object://…``)."""

    app: str
    url: str
    size: int


@dataclass(frozen=True)
class BuildCreated:
    """``POST /apps/{app}/builds`` answered: the build pod ``process`` was launched."""

    app: str
    build_id: str
    process: str


@dataclass(frozen=True)
class BuildStatusChanged:
    """A build poll saw a new status."""

    app: str
    build_id: str
    status: str
    previous: str | None


@dataclass(frozen=True)
class BuildLogProgress:
    """A build-log stream ended; ``total_bytes`` were delivered to ``on_output`` so far."""

    app: str
    build_id: str
    total_bytes: int


@dataclass(frozen=True)
class StreamInterrupted:
    """A WebSocket stream (build logs) ended early; the workflow carries on by polling."""

    what: str
    error: str


@dataclass(frozen=True)
class ProcessStarted:
    """A one-off pod was created (``POST …/services/{service}/processes``)."""

    app: str
    process_id: str
    service: str


@dataclass(frozen=True)
class ProcessDeleted:
    """The one-off pod was deleted."""

    app: str
    process_id: str


@dataclass(frozen=True)
class ProcessCleanupFailed:
    """Deleting the one-off pod failed; it ends by itself when its ``sleep`` runs out."""

    app: str
    process_id: str
    error: str


@dataclass(frozen=True)
class BuildCopyStarted:
    """The export of build ``build_id`` of ``app`` on the source rack is being imported into
    ``target_app`` on the target rack."""

    app: str
    build_id: str
    target_app: str


@dataclass(frozen=True)
class BuildCopyProgress:
    """``received`` bytes of the export archive were relayed into the import so far."""

    app: str
    build_id: str
    received: int


@dataclass(frozen=True)
class BuildCopied:
    """Build ``source_build`` is build ``build_id`` (release ``release_id``) of ``target_app``
    on the target rack; ``reused``: an earlier try's import was found. ``unverified`` says what
    could not be checked."""

    target_app: str
    build_id: str
    release_id: str
    source_build: str
    size: int
    reused: bool
    unverified: str


@dataclass(frozen=True)
class AppLifecycle:
    """A step of an app's create or delete: ``creating`` (``POST /apps`` is about to be sent:
    from here on the app may exist), ``created`` (by this call or an earlier attempt of it),
    ``existing`` (it was there and is used as it is), ``deleting`` (``DELETE`` was taken, or
    the app already read ``deleting``)."""

    app: str
    step: str


@dataclass(frozen=True)
class ServicesRestarted:
    """A rolling restart of ``services`` was sent, the app on ``release_id``; the pods
    ``replaced`` ran them before."""

    app: str
    release_id: str
    services: tuple[str, ...]
    replaced: tuple[str, ...]


WorkflowEvent: TypeAlias = (
    WaitRetrying
    | AppStatusChanged
    | ProcessStateChanged
    | PromoteSubmitted
    | PromoteNotNeeded
    | ReleaseCreated
    | PreviousBuildChecked
    | RollbackTargetChosen
    | EnvironmentConflict
    | EnvironmentUnchanged
    | SourceUploaded
    | BuildCreated
    | BuildCopyStarted
    | BuildCopyProgress
    | BuildCopied
    | BuildStatusChanged
    | BuildLogProgress
    | StreamInterrupted
    | ProcessStarted
    | ProcessDeleted
    | ProcessCleanupFailed
    | AppLifecycle
    | ServicesRestarted
)

EventCallback: TypeAlias = Callable[[WorkflowEvent], None]
"""``on_event``: called synchronously inside the flow, for both clients (keep it quick)."""
