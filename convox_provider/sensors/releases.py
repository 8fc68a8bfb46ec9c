"""``ConvoxReleaseSensor``: wait for a release's rollout to settle."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import Context, PokeReturnValue

from convox_provider.operators._base import MAX_ERRORS, AirflowException
from convox_provider.sensors._base import ConvoxBaseSensor
from convox_provider.triggers._events import rollback_event

if TYPE_CHECKING:
    from convox_provider.client.client import ConvoxClient
    from convox_provider.triggers.releases import ConvoxReleaseTrigger

__all__ = ["ConvoxReleaseSensor"]


class ConvoxReleaseSensor(ConvoxBaseSensor):
    """Wait until ``app`` is ``running`` on release ``release_id``.

    A ``rollback`` status fails the sensor at once (``AirflowFailException`` naming the release
    the app goes back to). In poke mode, an app ``running`` on another release is "not yet": the
    promote may not be registered yet (the status lags, convox-api.md §5.1). Deferred, the
    trigger follows the CLI's rollout wait instead (§7.9): ``running`` twice in a row, and a
    rollback that already finished (``running`` on another release) fails the sensor. Returns the
    release id.

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

    def _check(self, context: Context, client: ConvoxClient) -> PokeReturnValue | bool:
        from convox_provider.client.status import AppStatus  # noqa: PLC0415 - operators/_base

        app = client.apps.get(self.app)
        status = app.app_status
        if status is AppStatus.ROLLBACK:
            self._raise_for(
                rollback_event(
                    f"the rollout on app {self.app} failed and is being rolled back",
                    app=self.app,
                    release_id=self.release_id,
                    active_release=app.release,
                )
            )
        if status is AppStatus.DELETING:
            raise AirflowException(f"App {self.app} is being deleted")
        if status is AppStatus.RUNNING and app.release == self.release_id:
            return PokeReturnValue(is_done=True, xcom_value=self.release_id)
        self.log.info(
            "App %s: status %s on release %s; waiting for release %s",
            self.app,
            app.status,
            app.release or "(none)",
            self.release_id,
        )
        return False

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
