"""``ConvoxAppSensor``: wait for an app to be idle (``running``), optionally on a release."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import Context, PokeReturnValue

from convox_provider.operators._base import AirflowFailException, check_argument
from convox_provider.sensors._base import ConvoxBaseSensor

if TYPE_CHECKING:
    from convox_provider.client.client import ConvoxClient
    from convox_provider.triggers.apps import ConvoxAppTrigger

__all__ = ["ConvoxAppSensor"]


class ConvoxAppSensor(ConvoxBaseSensor):
    """Wait until ``app`` is ``running``, on release ``release_id`` when given.

    About the app, not one rollout (that is ``ConvoxReleaseSensor``): a rollout or rollback in
    progress, an app without a release yet, or the app running another release is "not yet".
    The sensor fails (``AirflowFailException``) only when it can never be done: the app is
    being deleted, or it runs a release *newer* than ``release_id``, which the rack never
    replaces by an older one (docs/rack-api.md §4.4). Deferred, the trigger wants two
    ``running`` readings in a row (the status lags a promote, §5.1). Returns the release the
    app runs and pushes it to XCom as ``release_id``. The decisions are the client's
    (``client.apps.app_state`` / ``wait_until_idle``).

    :param app: the Convox app.
    :param convox_conn_id: the Airflow connection of the rack.
    :param deferrable: wait on the triggerer (default ``[operators] default_deferrable``).
    :param release_id: the release the app must run (default: any).
    """

    _id_key = _subject_key = "release_id"
    template_fields = ("convox_conn_id", "app", "release_id")
    ui_color = "#dcecf2"

    def __init__(self, *, app: str, release_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(app=app, **kwargs)
        check_argument(self, "release_id", release_id, str, optional=True)
        self.release_id = release_id

    def _check(self, context: Context, client: ConvoxClient) -> PokeReturnValue | bool:
        reading = client.apps.app_state(self.app, release_id=self.release_id)
        if reading.state == reading.NEVER:
            raise AirflowFailException(reading.message)
        if reading.state == reading.WAITING:
            self.log.info(
                "App %s: status %s on release %s; waiting for it to be running%s",
                self.app,
                reading.app.status,
                reading.app.release or "(none)",
                "" if self.release_id is None else f" on release {self.release_id}",
            )
            return False
        self._push(context, "release_id", reading.app.release)
        return PokeReturnValue(is_done=True, xcom_value=reading.app.release)

    @staticmethod
    def _trigger_type() -> type[ConvoxAppTrigger]:
        from convox_provider.triggers.apps import ConvoxAppTrigger  # noqa: PLC0415

        return ConvoxAppTrigger

    def _on_done(self, context: Context, event: dict[str, Any]) -> None:
        self._push(context, "release_id", event["release_id"])
