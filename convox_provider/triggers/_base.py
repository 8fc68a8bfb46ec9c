"""What every Convox trigger does: one event per wait, and never an exception out of ``run()``."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import sys
import time
from abc import abstractmethod
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from convox_provider.client.waiting import MAX_ERRORS, WaitOptions
from convox_provider.triggers._events import describe, event_for_error, timeout_event

if TYPE_CHECKING:
    from convox_provider.client.client import AsyncConvoxClient
    from convox_provider.client.workflows.events import WorkflowEvent
    from convox_provider.hooks.convox import ConvoxHook

__all__ = ["ON_KILL_TIMEOUT", "RESUME_HOLD", "ConvoxTrigger", "configured_resume_hold"]

_HOOK_MODULE = "convox_provider.hooks.convox"
_OFF_LOOP_IMPORTS = (
    "convox_provider.client.client",
    "anyio._backends._asyncio",
    "httpcore._backends.anyio",
    _HOOK_MODULE,
)
"""Imported in a thread by the first trigger of a process (the hook module last: its presence
says all were tried)."""

ON_KILL_TIMEOUT = 30.0
"""Seconds ``on_kill`` may spend cancelling remote work."""

RESUME_HOLD = 30.0
"""Default seconds after the deferral before a trigger run by a triggerer hands over its event
(Airflow config ``[convox] resume_hold``, ``AIRFLOW__CONVOX__RESUME_HOLD``; 0 turns it off).

Airflow 3.1-3.3 fail a resumed task as "killed externally" when the scheduler handles the
executor's report of the worker that exited on ``defer()`` only after the resumed try is
already queued or running (the same try number; apache/airflow#71580, #72716). A Convox wait
that ends a second or two after its deferral (a rollout of a small app) loses that race on a
busy scheduler: in this project's system tests on 2 cores the report came 6 to 8 s after the
deferral with a few deploys at once, and 12 s with 20, and those deploys were failed. Holding
the event until 30 s after the deferral keeps the resumed try behind it; a wait that ends later
is not held.
"""


def configured_resume_hold() -> float:
    """``[convox] resume_hold`` (seconds, :data:`RESUME_HOLD` when unset; a bad value is logged
    and the default used)."""
    from airflow.configuration import conf  # noqa: PLC0415 - the triggerer's, read when used

    try:
        return max(0.0, conf.getfloat("convox", "resume_hold", fallback=RESUME_HOLD))
    except Exception as exc:
        logging.getLogger(__name__).warning(
            "[convox] resume_hold is not a number of seconds (%s); using %gs", exc, RESUME_HOLD
        )
        return RESUME_HOLD


async def _hook_class() -> type[ConvoxHook]:
    """``ConvoxHook``, its client and what the client's first request loads, imported off the
    event loop the first time.

    Together they cost 0.5 s or more on a busy triggerer (httpx, pydantic models, tenacity,
    and anyio's backend, which httpcore imports on its first request), which would stall every
    other trigger sharing the loop.
    """
    if _OFF_LOOP_IMPORTS[-1] not in sys.modules:
        await asyncio.to_thread(_import_all)
    hook_class: type[ConvoxHook] = sys.modules[_HOOK_MODULE].ConvoxHook
    return hook_class


@contextlib.asynccontextmanager
async def _pooled_client(convox_conn_id: str) -> AsyncIterator[AsyncConvoxClient]:
    """The hook's pooled async client of the connection (one pool per connection in the
    triggerer, shared by every trigger on it)."""
    hook_class = await _hook_class()
    async with hook_class(convox_conn_id=convox_conn_id) as hook:
        yield await hook.get_async_conn()


def _import_all() -> None:
    for name in _OFF_LOOP_IMPORTS:
        try:
            importlib.import_module(name)
        except ImportError:  # an httpcore without this backend module: loaded when needed
            if name == _HOOK_MODULE:
                raise


class ConvoxTrigger(BaseTrigger):
    """Wait for one thing on a Convox rack, with the hook's shared async client.

    ``end_time`` is absolute (epoch seconds), so a trigger restarted on another triggerer keeps its
    deadline; so is ``deferred_at``, when the task deferred (set by the operator): run by a
    triggerer, the event is held until ``[convox] resume_hold`` seconds after it (an Airflow race,
    see :data:`RESUME_HOLD`). ``actor`` is the ``Convox-Actor`` of the task that deferred (its
    hook's :meth:`~convox_provider.hooks.convox.ConvoxHook.task_actor`; a trigger has no task
    context on Airflow 3.1): every request of the wait carries it, through a view of the shared
    client (:meth:`~convox_provider.client.client.AsyncConvoxClient.with_actor`), so the pool stays
    shared. ``run()`` yields exactly one event (see :mod:`._events`): a transient error (5xx, 429,
    broken connection) is retried, and only ``max_errors`` of them in a row end the wait with an
    ``error`` event.
    """

    initial_delay: float = 0.0
    """Seconds before the first poll (a trigger with its own ``initial_delay`` argument sets it)."""

    resume_hold: float | None = None
    """Seconds after ``deferred_at`` before the event is handed over; None: the configured
    ones (:func:`configured_resume_hold`)."""

    def __init__(
        self,
        *,
        convox_conn_id: str,
        app: str,
        end_time: float,
        poll_interval: float = 5.0,
        max_errors: int = MAX_ERRORS,
        actor: str | None = None,
        deferred_at: float | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.actor = actor
        self.deferred_at = None if deferred_at is None else float(deferred_at)
        self.convox_conn_id = convox_conn_id
        self.app = app
        self.end_time = float(end_time)
        self.poll_interval = float(poll_interval)
        self.max_errors = int(max_errors)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Class path and the keyword arguments that re-create this trigger (JSON-native)."""
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            "convox_conn_id": self.convox_conn_id,
            "app": self.app,
            "end_time": self.end_time,
            "poll_interval": self.poll_interval,
            "max_errors": self.max_errors,
            **({"actor": self.actor} if self.actor else {}),
            **({"deferred_at": self.deferred_at} if self.deferred_at is not None else {}),
            **self._own_kwargs(),
        }

    _own: tuple[str, ...] = ()
    """The keyword arguments of the subclass's own ``__init__``, kept as attributes of the same
    names and serialized with the rest."""

    def _own_kwargs(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._own}

    @property
    @abstractmethod
    def subject(self) -> str:
        """What this trigger waits for, in words (for messages)."""

    @abstractmethod
    async def _wait(self, client: AsyncConvoxClient, timeout: float) -> dict[str, Any]:
        """Wait at most ``timeout`` seconds; return the success event or raise a client error."""

    @abstractmethod
    async def _cancel(self, client: AsyncConvoxClient) -> None:
        """Cancel the remote work this trigger waits for, if it is still going."""

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Wait, then yield one event: success, failed/rollback, timeout or error."""
        event = await self._outcome()
        self.log.info("Done waiting for %s: %s", self.subject, event["status"])
        await self._hold()
        yield TriggerEvent(event)  # type: ignore[no-untyped-call]

    async def _hold(self) -> None:
        """Wait until ``resume_hold`` seconds after ``deferred_at`` when a triggerer runs this
        (it gave the trigger its task instance; ``dag.test()``, which resumes the task in the
        same process, does not, and has no race to avoid)."""
        if self.deferred_at is None or self.task_instance is None:
            return
        hold = configured_resume_hold() if self.resume_hold is None else self.resume_hold
        left = self.deferred_at + hold - time.time()
        if left > 0:
            self.log.info(
                "Handing the event over in %.1fs, %gs after the deferral (an Airflow race, see "
                "[convox] resume_hold in docs/deferrable.md)",
                left,
                hold,
            )
            await asyncio.sleep(left)

    async def _outcome(self) -> dict[str, Any]:
        left = self.end_time - time.time()
        if left <= 0:
            return self._timed_out()
        try:
            async with _pooled_client(self.convox_conn_id) as pooled:
                client = self._as_actor(pooled)
                # The client's wait stops at its own deadline; this also bounds a log stream
                # that would outlive it.
                backstop = left + self.poll_interval + 1.0
                return await asyncio.wait_for(self._wait(client, left), backstop)
        except asyncio.TimeoutError:
            return self._timed_out()
        except Exception as exc:
            return event_for_error(exc)

    def _as_actor(self, client: AsyncConvoxClient) -> AsyncConvoxClient:
        """The shared client, or a view of it whose requests name the task (``actor``)."""
        return client.with_actor(self.actor) if self.actor else client

    def _timed_out(self) -> dict[str, Any]:
        deadline = datetime.fromtimestamp(self.end_time, timezone.utc)
        return timeout_event(
            f"gave up waiting for {self.subject}: the wait's deadline "
            f"{deadline.isoformat(timespec='seconds')} passed"
        )

    def _waiting(self, timeout: float) -> WaitOptions:
        """The client wait's options: this trigger's serialized ones, ``timeout`` seconds left
        of its absolute ``end_time``, events to the triggerer log."""
        return WaitOptions(
            timeout=timeout,
            poll_interval=self.poll_interval,
            initial_delay=self.initial_delay,
            max_errors=self.max_errors,
            on_event=self._log_event,
        )

    def _log_event(self, event: WorkflowEvent) -> None:
        level, message = describe(event)
        self.log.log(level, "%s", message)

    def _log_output(self, line: str) -> None:
        self.log.info("%s", line)

    async def on_kill(self) -> None:
        """Cancel the remote work when a user marks the deferred task failed/success or clears it.

        Called by Airflow 3.3+ only (never on a triggerer restart); errors are logged, not
        raised.
        """
        try:
            async with _pooled_client(self.convox_conn_id) as pooled:
                await asyncio.wait_for(self._cancel(self._as_actor(pooled)), ON_KILL_TIMEOUT)
        except Exception:
            self.log.warning("Could not cancel %s", self.subject, exc_info=True)
