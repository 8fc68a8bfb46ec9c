"""``ConvoxProcessSensor``: wait for a process to reach a status, or to end."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import Context, PokeReturnValue

from convox_provider.operators._base import AirflowFailException, check_argument
from convox_provider.sensors._base import ConvoxBaseSensor

if TYPE_CHECKING:
    from convox_provider.client.client import ConvoxClient
    from convox_provider.client.workflows.watch import ProcessReading
    from convox_provider.triggers.processes import ConvoxProcessTrigger

__all__ = ["PROCESS_POKE_INTERVAL", "ConvoxProcessSensor"]

PROCESS_POKE_INTERVAL = 2.0
"""The sensor's default ``poke_interval``: the rack deletes a pod about 5 s after it ends
(docs/rack-api.md §4.6), so a slower sensor would mostly find it gone."""


class ConvoxProcessSensor(ConvoxBaseSensor):
    """Wait for process ``process_id`` of ``app`` to end, or to be in one of ``statuses``.

    Waiting for the end (no ``statuses``): ``complete`` is an exit code of 0; ``failed`` (a
    non-zero exit, an eviction…) fails the sensor (``AirflowFailException``) unless
    ``allow_failure``. The rack reports no exit code other than through an attached exec, so a
    ``failed`` process has ``exit_code`` None. A finished pod is deleted by the rack about 5 s
    after it ends; a pod already gone has an unknown outcome and fails the sensor unless
    ``allow_gone`` (hence ``poke_interval`` defaults to 2 s). With ``statuses`` (e.g.
    ``"running"``), a process that ends first, or is gone, fails the sensor.

    Returns ``{"process_id", "status", "exit_code"}`` (``status`` the rack's, or ``"gone"``)
    and pushes ``exit_code`` and ``process_status`` to XCom. The process is never stopped.
    The decisions are the client's (``client.processes.process_state`` /
    ``wait_for_process``).

    :param app: the Convox app.
    :param process_id: the pod to watch: a one-off process started detached (``convox run
        --detach``, ``client.processes.run``), a timer's or a service's pod.
    :param statuses: one status or several that end the wait (docs/rack-api.md §5.5).
    :param allow_failure: return on ``failed`` instead of failing.
    :param allow_gone: return when the pod is gone (``exit_code`` None) instead of failing.
    :param convox_conn_id: the Airflow connection of the rack.
    :param deferrable: wait on the triggerer (default ``[operators] default_deferrable``).
    """

    _id_key = "process_id"
    _subject_key = "process_id"
    template_fields = ("convox_conn_id", "app", "process_id")
    ui_color = "#e8dcf2"

    def __init__(
        self,
        *,
        app: str,
        process_id: str,
        statuses: str | Sequence[str] | None = None,
        allow_failure: bool = False,
        allow_gone: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", PROCESS_POKE_INTERVAL)
        super().__init__(app=app, **kwargs)
        check_argument(self, "statuses", statuses, (str, list, tuple), optional=True)
        check_argument(self, "allow_failure", allow_failure, bool)
        check_argument(self, "allow_gone", allow_gone, bool)
        self.process_id = process_id
        self.statuses = [statuses] if isinstance(statuses, str) else statuses
        self.allow_failure = allow_failure
        self.allow_gone = allow_gone

    def _check(self, context: Context, client: ConvoxClient) -> PokeReturnValue | bool:
        reading = client.processes.process_state(
            self.app, self.process_id, statuses=self.statuses, accept=self._accept()
        )
        if reading.state == reading.WAITING:
            self.log.info("Process %s of app %s: %s", self.process_id, self.app, reading.status)
            return False
        if reading.state == reading.FAILED:
            raise AirflowFailException(reading.message)
        return PokeReturnValue(is_done=True, xcom_value=self._done(context, reading))

    def _done(self, context: Context, reading: ProcessReading) -> dict[str, Any]:
        return self._result(context, reading.status, reading.exit_code)

    def _result(self, context: Context, status: str, exit_code: int | None) -> dict[str, Any]:
        context["ti"].xcom_push(key="exit_code", value=exit_code)
        self._push(context, "process_status", status)
        return {"process_id": self.process_id, "status": status, "exit_code": exit_code}

    @staticmethod
    def _trigger_type() -> type[ConvoxProcessTrigger]:
        from convox_provider.triggers.processes import ConvoxProcessTrigger  # noqa: PLC0415

        return ConvoxProcessTrigger

    def _accept(self) -> list[str]:
        """The outcomes the client's process wait takes as done besides ``complete``."""
        return [
            name for name, on in (("failed", self.allow_failure), ("gone", self.allow_gone)) if on
        ]

    def _trigger_options(self) -> dict[str, Any]:
        statuses = None if self.statuses is None else list(self.statuses)
        return {"statuses": statuses, "accept": self._accept()}

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger: the process's outcome, or raise for any other."""
        done = self._check_event(event, self._id_key)
        return self._result(context, done["process_status"], done.get("exit_code"))
