"""What triggers, operators and sensors share, without importing Airflow or the client's HTTP side.

* Trigger event payloads: one JSON-native dict per wait, ``status`` one of :data:`STATUSES`.
  :func:`event_for_error` turns the client's typed errors into the non-success ones.
* :class:`OutputLines`: build output (raw bytes in arbitrary chunks) as log lines.
* :func:`describe`: a client workflow event (:mod:`convox_provider.client.workflows.events`) as a
  log level and message. Workflow events never carry environment values or credentials.

Operators import this module at DAG-parse time, so it imports nothing heavy: the client's
errors and line decoder are only imported inside functions.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from convox_provider.client.workflows.events import WorkflowEvent

__all__ = [
    "ERROR",
    "FAILED",
    "ROLLBACK",
    "STATUSES",
    "SUCCESS",
    "SUPERSEDED",
    "TIMEOUT",
    "OutputLines",
    "describe",
    "event_for_error",
    "rollback_event",
    "timeout_event",
]

SUCCESS = "success"
FAILED = "failed"
ROLLBACK = "rollback"
SUPERSEDED = "superseded"
TIMEOUT = "timeout"
ERROR = "error"
STATUSES = frozenset({SUCCESS, FAILED, ROLLBACK, SUPERSEDED, TIMEOUT, ERROR})
"""Every ``status`` a Convox trigger event may carry."""


def timeout_event(message: str) -> dict[str, Any]:
    """``{"status": "timeout", "message"}``: the wait's absolute deadline passed."""
    return {"status": TIMEOUT, "message": message}


def rollback_event(
    message: str, *, app: str, release_id: str, active_release: str, status: str = ROLLBACK
) -> dict[str, Any]:
    """``{"status": "rollback", ...}``: the rollout of ``release_id`` was rolled back; with
    ``status=SUPERSEDED``, a newer release ``active_release`` was promoted over it."""
    return {
        "status": status,
        "message": message,
        "app": app,
        "release_id": release_id,
        "active_release": active_release,
    }


def event_for_error(exc: BaseException) -> dict[str, Any]:
    """The event for a wait that ended with ``exc`` (never ``success``).

    A failed build carries its id and the tail of its log, a rollback the release promoted and
    the release the app is back on, a superseded rollout the newer release the app runs; a
    client wait timeout is ``timeout``; anything else (auth,
    not found, ``max_errors`` consecutive transient errors, a bad connection) is ``error``.
    """
    from convox_provider.client.errors import (  # noqa: PLC0415 - module doc
        ConvoxBuildFailedError,
        ConvoxRolloutEndedError,
        ConvoxSupersededError,
        ConvoxWaitTimeoutError,
    )

    if isinstance(exc, ConvoxBuildFailedError):
        return {
            "status": FAILED,
            "message": str(exc),
            "build_id": exc.build_id,
            "logs_tail": exc.logs_tail,
        }
    if isinstance(exc, ConvoxRolloutEndedError):
        return rollback_event(
            str(exc),
            app=exc.app,
            release_id=exc.release_id,
            active_release=exc.active_release,
            status=SUPERSEDED if isinstance(exc, ConvoxSupersededError) else ROLLBACK,
        )
    if isinstance(exc, ConvoxWaitTimeoutError):
        return timeout_event(str(exc))
    return {"status": ERROR, "message": f"{type(exc).__name__}: {exc}"}


class OutputLines:
    """Turn output chunks into log lines: complete lines go to ``emit`` as they arrive.

    The client's :class:`~convox_provider.client._frames.LineDecoder` splits them: a partial
    line waits for the rest of it in the next chunk, no more than ``max_line_bytes``
    characters of it are held (beyond that it is emitted in pieces), UTF-8 is decoded with
    invalid bytes replaced, so a character split across chunks stays whole. With ``max_lines``,
    lines beyond that many are counted, not emitted, and :meth:`close` says how many were left
    out.
    """

    def __init__(
        self,
        emit: Callable[[str], None],
        *,
        max_lines: int | None = None,
        max_line_bytes: int = 64 * 1024,
    ) -> None:
        from convox_provider.client._frames import LineDecoder  # noqa: PLC0415 - module doc

        self._emit = emit
        self._max_lines = max_lines
        self._lines = LineDecoder(max_line_chars=max_line_bytes)
        self.emitted = 0
        self.dropped = 0

    def feed(self, chunk: bytes) -> None:
        """Take the next chunk of output."""
        for line in self._lines.feed(chunk):
            self._line(line)

    def close(self) -> None:
        """Emit what is left of a last line without a newline, and the count of lines left out."""
        for line in self._lines.flush():
            self._line(line)
        if self.dropped:
            self._emit(
                f"... {self.dropped} more line(s) of output not logged here "
                f"(limit {self._max_lines} lines)"
            )
            self.dropped = 0

    def _line(self, text: str) -> None:
        if self._max_lines is not None and self.emitted >= self._max_lines:
            self.dropped += 1
            return
        self.emitted += 1
        self._emit(text)


_MESSAGES: dict[str, tuple[int, str]] = {
    "SourceUploaded": (logging.INFO, "Uploaded the source of app {app} ({size} bytes) to {url}"),
    "PreviousBuildChecked": (
        logging.INFO,
        "Build {build_id} of app {app} from a previous try ({status}): {verdict}",
    ),
    "BuildCreated": (logging.INFO, "Build {build_id} of app {app} started (build pod {process})"),
    "BuildCopyStarted": (
        logging.INFO,
        "Copying build {build_id} of app {app} into app {target_app} on the target rack",
    ),
    "BuildCopyProgress": (logging.INFO, "Copying build {build_id}: {received} bytes so far"),
    "BuildCopied": (
        logging.INFO,
        "Build {source_build} is build {build_id} (release {release_id}) of app {target_app}"
        " on the target rack ({size} bytes; found from an earlier try: {reused}). Not"
        " verified: {unverified}",
    ),
    "BuildStatusChanged": (logging.INFO, "Build {build_id} of app {app}: status {status}"),
    "BuildLogProgress": (logging.DEBUG, "Build {build_id}: {total_bytes} bytes of output so far"),
    "StreamInterrupted": (logging.WARNING, "The {what} stream ended early ({error}); polling on"),
    "WaitRetrying": (
        logging.WARNING,
        "Waiting for {waiting_for}: transient error {failures} of {limit} in a row: {error}",
    ),
    "PromoteSubmitted": (logging.INFO, "Promoting release {release_id} of app {app}"),
    "PromoteNotNeeded": (
        logging.INFO,
        "Release {release_id} of app {app} is already {state}: not promoting it again",
    ),
    "EnvironmentUnchanged": (
        logging.INFO,
        "Release {release_id} of app {app} already has this change to {keys}: no release created",
    ),
    "RollbackTargetChosen": (logging.INFO, "Rolling back app {app} to release {release_id}"),
    "ReleaseCreated": (
        logging.INFO,
        "Created release {release_id} of app {app} from build {build_id} ({description})",
    ),
    "AppStatusChanged": (logging.INFO, "App {app}: status {status}, release {release}"),
    "AppLifecycle": (logging.INFO, "App {app}: {step}"),
    "ServicesRestarted": (
        logging.INFO,
        "Restarting service(s) {services} of app {app}; replacing process(es) {replaced}",
    ),
    "ProcessStateChanged": (
        logging.INFO,
        "Process {process_id} ({service}) of app {app}: {previous} -> {status}",
    ),
}


def describe(event: WorkflowEvent) -> tuple[int, str]:
    """A workflow event as ``(logging level, message)``."""
    fields = {
        name: "(none)" if value is None else value
        for name, value in dataclasses.asdict(event).items()
    }
    level, template = _MESSAGES.get(type(event).__name__, (logging.INFO, ""))
    if not template:
        shown = ", ".join(f"{name}={value!r}" for name, value in fields.items())
        return level, f"{type(event).__name__}: {shown}"
    parts = {
        name: ", ".join(value) if isinstance(value, tuple) else value
        for name, value in fields.items()
    }
    return level, template.format(**parts)
