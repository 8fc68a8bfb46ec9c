"""``ConvoxReleaseTrigger``: wait on the triggerer for a rollout to settle."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from convox_provider.triggers._base import ConvoxTrigger
from convox_provider.triggers._events import SUCCESS

if TYPE_CHECKING:
    from convox_provider.client.client import AsyncConvoxClient

__all__ = ["ConvoxReleaseTrigger"]


class ConvoxReleaseTrigger(ConvoxTrigger):
    """Wait until ``app`` runs release ``release_id``: the client's rollout wait (§5.11).

    As the CLI's rollout wait (docs/rack-api.md §7.4, §7.9): a ``rollback`` reading, or a final
    reading on another release (a rollback that finished between polls), ends the wait with
    ``{"status": "rollback", "message", "release_id", "active_release"}``. Success is
    ``{"status": "success", "app", "release_id"}``; also ``timeout`` and ``error`` (see
    :class:`~convox_provider.triggers._base.ConvoxTrigger`).

    :param convox_conn_id: the Airflow connection of the rack.
    :param app: the app being rolled out.
    :param release_id: the release that must end up running.
    :param end_time: when to give up, in epoch seconds (absolute).
    :param poll_interval: seconds between status polls (default 5).
    :param initial_delay: seconds after which the app read on its old release is a rollback:
        right after a promote the app's status lags (§5.1), so keep a few seconds there on a
        real rack (the first poll comes after ``WaitOptions.first_interval`` anyway).
    :param max_errors: consecutive transient errors that end the wait (default 5).
    """

    _own = ("release_id", "initial_delay")

    def __init__(
        self,
        convox_conn_id: str,
        app: str,
        release_id: str,
        end_time: float,
        *,
        initial_delay: float = 0.0,
        **options: Any,
    ) -> None:
        super().__init__(convox_conn_id=convox_conn_id, app=app, end_time=end_time, **options)
        self.release_id = release_id
        self.initial_delay = float(initial_delay)

    @property
    def subject(self) -> str:
        """What this trigger waits for, in words."""
        return f"the rollout of release {self.release_id} of app {self.app}"

    async def _wait(self, client: AsyncConvoxClient, timeout: float) -> dict[str, Any]:
        await client.apps.wait_for_app_running(
            self.app, release_id=self.release_id, waiting=self._waiting(timeout)
        )
        return {"status": SUCCESS, "app": self.app, "release_id": self.release_id}

    async def _cancel(self, client: AsyncConvoxClient) -> None:
        if await client.apps.cancel_rollout(self.app, self.release_id):
            self.log.info("Cancelled %s; the app rolls back", self.subject)
