"""``ConvoxReleaseSensor``: wait for a release's rollout to settle."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

from airflow.sdk import Context, PokeReturnValue

from convox_provider.operators._base import MAX_ERRORS, AirflowException, AirflowFailException
from convox_provider.sensors._base import ConvoxBaseSensor
from convox_provider.triggers._events import rollback_event

if TYPE_CHECKING:
    from convox_provider.client.client import ConvoxClient
    from convox_provider.triggers.releases import ConvoxReleaseTrigger

__all__ = ["ConvoxReleaseSensor"]

_SEEN_KEY = "convox_rollout_seen"
"""Task state store key: the release whose rollout this sensor saw start."""


class ConvoxReleaseSensor(ConvoxBaseSensor):
    """Wait until ``app`` is ``running`` on release ``release_id``.

    A ``rollback`` status fails the sensor at once (``AirflowFailException`` naming the release
    the app goes back to). In poke mode, an app ``running`` on another release is "not yet" (the
    promote may not be registered yet: status and ``release`` lag, convox-api.md §5.1), except:

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
        if status is AppStatus.ROLLBACK:
            self._rolled_back(
                app.release, "the rollout on app {app} failed and is being rolled back"
            )
        if status is AppStatus.DELETING:
            raise AirflowException(f"App {self.app} is being deleted")
        if app.release == self.release_id:
            if status is AppStatus.RUNNING:
                return PokeReturnValue(is_done=True, xcom_value=self.release_id)
            self._remember_rollout(context)
        elif status is AppStatus.RUNNING:
            if self._rollout_seen(context):
                self._rolled_back(
                    app.release, "the rollout on app {app} failed and was rolled back"
                )
            self._fail_if_older(client, app.release)
        self.log.info(
            "App %s: status %s on release %s; waiting for release %s",
            self.app,
            app.status,
            app.release or "(none)",
            self.release_id,
        )
        return False

    def _rolled_back(self, active_release: str, message: str) -> NoReturn:
        """Fail: the rollout of this sensor's release was rolled back to ``active_release``."""
        self._raise_for(
            rollback_event(
                message.format(app=self.app),
                app=self.app,
                release_id=self.release_id,
                active_release=active_release,
            )
        )

    def _fail_if_older(self, client: ConvoxClient, active_release: str) -> None:
        """Fail when this sensor's release is older than the active one: the rack refuses to
        promote it (convox-api.md §4.4), so it can never become active."""
        if not active_release:
            return
        target = client.releases.get(self.app, self.release_id).created
        active = client.releases.get(self.app, active_release).created
        if target is not None and active is not None and target < active:
            raise AirflowFailException(
                f"Release {self.release_id} of app {self.app} is older than the active release "
                f"{active_release}: the rack cannot promote it, so it will never be running"
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
