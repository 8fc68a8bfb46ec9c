"""``ConvoxAppTrigger``: wait on the triggerer for an app to be idle (``running``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from convox_provider.triggers._base import ConvoxTrigger
from convox_provider.triggers._events import FAILED, SUCCESS

if TYPE_CHECKING:
    from convox_provider.client.client import AsyncConvoxClient

__all__ = ["ConvoxAppTrigger"]


class ConvoxAppTrigger(ConvoxTrigger):
    """Wait until ``app`` is ``running`` (twice in a row), on ``release_id`` when given:
    ``client.apps.wait_until_idle``, whose reading decides.

    Success is ``{"status": "success", "app", "release_id"}`` (the release the app runs). What
    can never happen (the app being deleted, or running a release newer than ``release_id``)
    is ``{"status": "failed", "message", "app", "active_release"}``; also ``timeout`` and
    ``error`` (see :class:`~convox_provider.triggers._base.ConvoxTrigger`). Nothing is cancelled
    on the rack.

    :param convox_conn_id: the Airflow connection of the rack.
    :param app: the Convox app.
    :param end_time: when to give up, in epoch seconds (absolute).
    :param release_id: the release the app must run (None: any).
    :param poll_interval: seconds between polls (default 5).
    :param max_errors: consecutive transient errors that end the wait (default 5).
    """

    _own = ("release_id",)

    def __init__(
        self,
        convox_conn_id: str,
        app: str,
        end_time: float,
        *,
        release_id: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(convox_conn_id=convox_conn_id, app=app, end_time=end_time, **options)
        self.release_id = release_id

    @property
    def subject(self) -> str:
        """What this trigger waits for, in words."""
        return f"app {self.app} to be running" + (
            f" on release {self.release_id}" if self.release_id else ""
        )

    async def _wait(self, client: AsyncConvoxClient, timeout: float) -> dict[str, Any]:
        reading = await client.apps.wait_until_idle(
            self.app, release_id=self.release_id, waiting=self._waiting(timeout)
        )
        if reading.state == reading.NEVER:
            return {
                "status": FAILED,
                "message": reading.message,
                "app": self.app,
                "active_release": reading.app.release,
            }
        return {"status": SUCCESS, "app": self.app, "release_id": reading.app.release}

    async def _cancel(self, client: AsyncConvoxClient) -> None:
        """Nothing: this wait started nothing on the rack."""
