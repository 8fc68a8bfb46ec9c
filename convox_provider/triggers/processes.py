"""``ConvoxProcessTrigger``: wait on the triggerer for a process to reach a status or end."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from convox_provider.triggers._base import ConvoxTrigger
from convox_provider.triggers._events import FAILED, SUCCESS

if TYPE_CHECKING:
    from convox_provider.client.client import AsyncConvoxClient

__all__ = ["ConvoxProcessTrigger"]


class ConvoxProcessTrigger(ConvoxTrigger):
    """Wait until process ``process_id`` of ``app`` is in one of ``statuses``, or (without
    them) has ended: ``client.processes.wait_for_process``, whose reading decides.

    Success is ``{"status": "success", "app", "process_id", "process_status", "exit_code"}``
    (``exit_code`` 0 for ``complete``, None where the rack reports none: a ``failed`` pod or a
    pod gone, when ``accept`` holds that outcome). A process that failed, ended before a
    status waited for, or is gone is ``{"status": "failed", "message", "process_id",
    "process_status"}``; also ``timeout`` and ``error``
    (see :class:`~convox_provider.triggers._base.ConvoxTrigger`). The process is never stopped:
    it is not this wait's to stop.

    :param convox_conn_id: the Airflow connection of the rack.
    :param app: the Convox app.
    :param process_id: the pod to watch.
    :param end_time: when to give up, in epoch seconds (absolute).
    :param statuses: process statuses that end the wait (None: the process ending does).
    :param accept: outcomes that count as ended besides ``complete``: ``"failed"`` (its exit
        code is not known), ``"gone"`` (a process the rack no longer has).
    :param poll_interval: seconds between polls; keep it under 5 (the rack deletes a pod ~5 s
        after it ends).
    :param max_errors: consecutive transient errors that end the wait (default 5).
    """

    _own = ("process_id", "statuses", "accept")

    def __init__(
        self,
        convox_conn_id: str,
        app: str,
        process_id: str,
        end_time: float,
        *,
        statuses: list[str] | None = None,
        accept: list[str] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(convox_conn_id=convox_conn_id, app=app, end_time=end_time, **options)
        self.process_id = process_id
        self.statuses = None if statuses is None else sorted(statuses)
        self.accept = sorted(accept or ())

    @property
    def subject(self) -> str:
        """What this trigger waits for, in words."""
        what = "to end" if self.statuses is None else f"to be {' or '.join(self.statuses)}"
        return f"process {self.process_id} of app {self.app} {what}"

    async def _wait(self, client: AsyncConvoxClient, timeout: float) -> dict[str, Any]:
        waiting = self._waiting(timeout)
        reading = await client.processes.wait_for_process(
            self.app, self.process_id, statuses=self.statuses, accept=self.accept, waiting=waiting
        )
        found = {"app": self.app, "process_id": self.process_id, "process_status": reading.status}
        if reading.state == reading.FAILED:
            return {"status": FAILED, "message": reading.message, **found}
        return {"status": SUCCESS, **found, "exit_code": reading.exit_code}

    async def _cancel(self, client: AsyncConvoxClient) -> None:
        """Nothing: the process belongs to whoever started it."""
