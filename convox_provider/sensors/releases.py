"""``ConvoxReleaseSensor``: wait for a release's rollout to settle."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

from airflow.sdk import Context, PokeReturnValue

from convox_provider.operators._base import MAX_ERRORS, AirflowException, AirflowFailException
from convox_provider.sensors._base import ConvoxBaseSensor
from convox_provider.triggers._events import ROLLBACK, SUPERSEDED, rollback_event

if TYPE_CHECKING:
    from convox_provider.client.client import ConvoxClient
    from convox_provider.client.status import AppStatus
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

    Deferred, the trigger follows the CLI's rollout wait instead (§7.9): ``running`` twice in a
    row, and a rollback that already finished (``running`` on another release) fails the
    sensor. Returns the release id.

    :param app: the Convox app.
    :param release_id: the release that must be running.
    :param convox_conn_id: the Airflow connection of the rack.
    :param deferrable: wait on the triggerer (default ``[operators] default_deferrable``).
    """

    template_fields = ("convox_conn_id", "app", "release_id")
    ui_color = "#d5ecd4"
    _id_key = "release_id"

    def __init__(self, *, app: str, release_id: str, **kwargs: Any) -> None:
        super().__init__(app=app, **kwargs)
        self.release_id = release_id
        self._seen_rollout: str | None = None

    def _check(self, context: Context, client: ConvoxClient) -> PokeReturnValue | bool:
        from convox_provider.client.status import AppStatus  # noqa: PLC0415 - operators/_base

        app = client.apps.get(self.app)
        status = app.app_status
        if status is AppStatus.DELETING:
            raise AirflowException(f"App {self.app} is being deleted")
        if app.release == self.release_id:
            if status is AppStatus.RUNNING:
                return PokeReturnValue(is_done=True, xcom_value=self.release_id)
            if status is AppStatus.ROLLBACK:
                self._ended(app.release, AppStatus.ROLLBACK)
            self._remember_rollout(context)
        elif status in (AppStatus.RUNNING, AppStatus.ROLLBACK):
            newer = bool(app.release) and client.releases.is_newer(
                self.app, app.release, than=self.release_id
            )
            if newer and not self._rollout_seen(context) and status is AppStatus.RUNNING:
                raise AirflowFailException(
                    f"Release {self.release_id} of app {self.app} is older than the active "
                    f"release {app.release}: the rack cannot promote it, so it will never be "
                    "running"
                )
            if newer or status is AppStatus.ROLLBACK or self._rollout_seen(context):
                self._ended(app.release, status, superseded=newer)
        self.log.info(
            "App %s: status %s on release %s; waiting for release %s",
            self.app,
            app.status,
            app.release or "(none)",
            self.release_id,
        )
        return False

    def _ended(self, active: str, status: AppStatus, *, superseded: bool = False) -> NoReturn:
        """End the wait: the rollout of this sensor's release was rolled back to ``active``
        (fail), or a newer release ``active`` was promoted over it (skip)."""
        if superseded:
            message = (
                f"release {self.release_id} of app {self.app} was superseded: release {active},"
                " created after it, was promoted. Nothing was rolled back"
            )
        elif status.value == "rollback":
            message = (
                f"release {self.release_id} of app {self.app} was rolled back: its rollout "
                f"failed (status 'rollback'), and the app goes back on release {active or '(none)'}"
            )
        else:
            message = (
                f"release {self.release_id} of app {self.app} was rolled back: the app is "
                f"back on release {active or '(none)'}"
            )
        self._raise_for(
            rollback_event(
                message,
                app=self.app,
                release_id=self.release_id,
                active_release=active,
                status=SUPERSEDED if superseded else ROLLBACK,
            )
        )

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

    def _trigger(self, end_time: float) -> ConvoxReleaseTrigger:
        from convox_provider.triggers.releases import ConvoxReleaseTrigger  # noqa: PLC0415

        return ConvoxReleaseTrigger(
            convox_conn_id=self.convox_conn_id,
            app=self.app,
            release_id=self.release_id,
            end_time=end_time,
            poll_interval=self.poke_interval,
            max_errors=MAX_ERRORS,
        )
