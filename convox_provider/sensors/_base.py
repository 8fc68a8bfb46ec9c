"""What both Convox sensors do: poke through transient errors, or poke once and defer."""

from __future__ import annotations

import time
from abc import abstractmethod
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, Context, PokeReturnValue

from convox_provider.operators._base import DEFAULT_DEFERRABLE, ConvoxTask, check_argument

if TYPE_CHECKING:
    from convox_provider.client.client import ConvoxClient
    from convox_provider.triggers._base import ConvoxTrigger

__all__ = ["ConvoxBaseSensor"]


class ConvoxBaseSensor(ConvoxTask, BaseSensorOperator):
    """Base of the Convox sensors.

    A poke that fails with a transient error (5xx, 429, a broken connection) is logged and
    counts as "not yet"; any other error (401, 403, 404…) fails the sensor. Deferrable: one poke
    in the worker, then the wait goes on in the triggerer until ``timeout`` (an absolute
    deadline), polling every ``poke_interval`` seconds.

    :param app: the Convox app.
    :param convox_conn_id: the Airflow connection of the rack.
    :param deferrable: wait on the triggerer (default ``[operators] default_deferrable``).
    """

    _id_key: str
    """The event key holding what the sensor returns."""

    def __init__(
        self,
        *,
        app: str,
        convox_conn_id: str = "convox_default",
        deferrable: bool = DEFAULT_DEFERRABLE,
        **kwargs: Any,
    ) -> None:
        task_id = kwargs.get("task_id")
        for name in ("poke_interval", "timeout"):
            if name in kwargs:
                numbers = (int, float, timedelta)
                check_argument(self, name, kwargs[name], numbers, task_id=task_id)
        check_argument(self, "deferrable", deferrable, bool, task_id=task_id)
        super().__init__(**kwargs)
        check_argument(self, "convox_conn_id", convox_conn_id, str)
        self.app = app
        self.convox_conn_id = convox_conn_id
        self.deferrable = deferrable

    @abstractmethod
    def _check(self, context: Context, client: ConvoxClient) -> PokeReturnValue | bool:
        """One look at the rack: done (with the value to return), or not yet."""

    _subject_key: str
    """The argument naming what the sensor waits for, the same in the sensor and its trigger."""

    @staticmethod
    @abstractmethod
    def _trigger_type() -> type[ConvoxTrigger]:
        """The trigger class that waits for the same thing (imported when first deferring)."""

    def _trigger(self, end_time: float) -> ConvoxTrigger:
        """The trigger that waits for the same thing until ``end_time``, polling every
        ``poke_interval`` seconds."""
        return self._trigger_type()(
            convox_conn_id=self.convox_conn_id,
            app=self.app,
            end_time=end_time,
            poll_interval=self.poke_interval,
            actor=self.hook.task_actor(),
            **{self._subject_key: getattr(self, self._subject_key)},
            **self._trigger_options(),
        )

    def _trigger_options(self) -> dict[str, Any]:
        """More keyword arguments of the trigger (none by default)."""
        return {}

    def poke(self, context: Context) -> PokeReturnValue | bool:
        """One check; a transient error means "not yet", a failed build or rollout fails fast."""
        from convox_provider.client.errors import ConvoxError  # noqa: PLC0415 - operators/_base
        from convox_provider.client.workflows.waits import is_transient  # noqa: PLC0415

        try:
            with self._outcomes():
                return self._check(context, self.hook.get_conn())
        except ConvoxError as exc:
            if not is_transient(exc):
                raise
            self.log.warning("Checking again at the next poke after a transient error: %s", exc)
            return False

    def execute(self, context: Context) -> Any:
        """Poke until done; deferrable: poke once, then wait on the triggerer.

        Every poke of one run shares a client, closed when the run ends.
        """
        self._preflight(context)
        with self.hook:
            if not self.deferrable:
                return super().execute(context)
            done = self.poke(context)
            if not done:
                self._defer(self._trigger(time.time() + self.timeout), "execute_complete")
            return done.xcom_value if isinstance(done, PokeReturnValue) else None

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger: the sensor's value, or raise for any other outcome."""
        done = self._check_event(event, self._id_key)
        self._on_done(context, done)
        return done[self._id_key]

    def _on_done(self, context: Context, event: dict[str, Any]) -> None:
        """Push what a success event carries to XCom (nothing by default)."""
