"""``ConvoxReleaseSensor``: wait for a release's rollout to settle."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import Context, PokeReturnValue

from convox_provider.client.errors import as_sentence
from convox_provider.operators._base import AirflowException, AirflowFailException
from convox_provider.sensors._base import ConvoxBaseSensor

if TYPE_CHECKING:
    from convox_provider.client.client import ConvoxClient
    from convox_provider.triggers.releases import ConvoxReleaseTrigger

__all__ = ["ConvoxReleaseSensor"]

_SEEN_KEY = "convox_rollout_seen"
"""Task state store key: the release whose rollout this sensor saw start."""


class ConvoxReleaseSensor(ConvoxBaseSensor):
    """Wait until ``app`` is ``running`` on release ``release_id``.

    A ``rollback`` status of this release fails the sensor at once (``AirflowFailException``
    naming the release the app goes back to). An app on a release *newer* than this one, once
    this release's rollout was seen, was promoted over it: the sensor is skipped
    (``AirflowSkipException``), since nothing was rolled back. In poke mode, an app ``running``
    on another release is "not yet" (the promote may not be registered yet: status and
    ``release`` lag, docs/rack-api.md §5.1), except:

    * once this sensor has seen ``app.release == release_id`` (the rollout of its release
      started), ``running`` on another release is a rollback that finished between two pokes
      (Reverted and Failure both read ``running``; the CLI's final check, §7.4 step 5): the
      sensor fails as on ``rollback``. What was seen is kept on the instance, and in
      ``mode="reschedule"`` also in the task state store (Airflow >= 3.3; without it a
      rescheduled sensor cannot tell, and waits for ``timeout``);
    * a release older (``created``) than the active one can never be promoted (§4.4): the sensor
      fails at once.

    Deferred, the trigger runs the client's rollout wait instead (§5.11): ``running`` on the
    release confirmed by its ready pods or a second reading, and a rollback that already
    finished (``running`` on another release) fails the sensor. Returns the release id.

    :param app: the Convox app.
    :param release_id: the release that must be running.
    :param convox_conn_id: the Airflow connection of the rack.
    :param deferrable: wait on the triggerer (default ``[operators] default_deferrable``).
    """

    template_fields = ("convox_conn_id", "app", "release_id")
    ui_color = "#d5ecd4"
    _id_key = "release_id"
    _subject_key = "release_id"

    def __init__(self, *, app: str, release_id: str, **kwargs: Any) -> None:
        super().__init__(app=app, **kwargs)
        self.release_id = release_id
        self._seen_rollout: str | None = None

    def _check(self, context: Context, client: ConvoxClient) -> PokeReturnValue | bool:
        """One ``client.releases.rollout_state`` reading; a rollback or a superseded rollout
        raises the client's error, which ``_outcomes`` turns into a failure or a skip."""
        reading = client.releases.rollout_state(
            self.app, self.release_id, seen=self._rollout_seen(context)
        )
        if reading.state == reading.RUNNING:
            return PokeReturnValue(is_done=True, xcom_value=self.release_id)
        if reading.state == reading.OLDER:
            raise AirflowFailException(as_sentence(reading.message))
        if reading.state == reading.DELETING:
            raise AirflowException(as_sentence(reading.message))
        if reading.state == reading.ROLLING_OUT:
            self._remember_rollout(context)
        self.log.info(
            "App %s: status %s on release %s; waiting for release %s",
            self.app,
            reading.app.status,
            reading.app.release or "(none)",
            self.release_id,
        )
        return False

    def _store(self, context: Context) -> Any:
        """The task state store to keep what was seen across reschedules, or None (poke mode,
        or Airflow < 3.3)."""
        return context.get("task_state_store") if self.reschedule else None

    def _remember_rollout(self, context: Context) -> None:
        """Note that the rollout of this sensor's release has started."""
        if self._seen_rollout == self.release_id:
            return
        self._seen_rollout = self.release_id
        store = self._store(context)
        if store is not None:
            store.set(_SEEN_KEY, self.release_id)

    def _rollout_seen(self, context: Context) -> bool:
        """Whether this sensor (or an earlier reschedule of it) saw its release's rollout start."""
        if self._seen_rollout != self.release_id:
            store = self._store(context)
            if store is not None and store.get(_SEEN_KEY) == self.release_id:
                self._seen_rollout = self.release_id
        return self._seen_rollout == self.release_id

    @staticmethod
    def _trigger_type() -> type[ConvoxReleaseTrigger]:
        from convox_provider.triggers.releases import ConvoxReleaseTrigger  # noqa: PLC0415

        return ConvoxReleaseTrigger
