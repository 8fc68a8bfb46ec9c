"""``ConvoxBuildSensor``: wait for a build to end."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import Context, PokeReturnValue

from convox_provider.sensors._base import ConvoxBaseSensor

if TYPE_CHECKING:
    from convox_provider.client.client import ConvoxClient
    from convox_provider.triggers.builds import ConvoxBuildTrigger

__all__ = ["ConvoxBuildSensor"]


class ConvoxBuildSensor(ConvoxBaseSensor):
    """Wait for build ``build_id`` of ``app`` to be ``complete``.

    A ``failed`` build fails the sensor at once (``AirflowFailException`` with the tail of the
    build log), as does a status the rack is not known to send. XCom: ``release_id`` (the
    release the build created); the sensor returns it too.

    :param app: the Convox app.
    :param build_id: the build to wait for.
    :param convox_conn_id: the Airflow connection of the rack.
    :param deferrable: wait on the triggerer (default ``[operators] default_deferrable``).
    """

    template_fields = ("convox_conn_id", "app", "build_id")
    ui_color = "#c9e7f7"
    _id_key = "release_id"
    _subject_key = "build_id"

    def __init__(self, *, app: str, build_id: str, **kwargs: Any) -> None:
        super().__init__(app=app, **kwargs)
        self.build_id = build_id

    def _check(self, context: Context, client: ConvoxClient) -> PokeReturnValue | bool:
        build = client.builds.poll(self.app, self.build_id)  # a failed build raises
        if build.build_status.is_active:
            self.log.info("Build %s of app %s: %s", self.build_id, self.app, build.status)
            return False
        self._push(context, "release_id", build.release)
        return PokeReturnValue(is_done=True, xcom_value=build.release)

    @staticmethod
    def _trigger_type() -> type[ConvoxBuildTrigger]:
        from convox_provider.triggers.builds import ConvoxBuildTrigger  # noqa: PLC0415

        return ConvoxBuildTrigger

    def _on_done(self, context: Context, event: dict[str, Any]) -> None:
        self._push(context, "release_id", event["release_id"])
