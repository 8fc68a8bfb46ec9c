"""Triggers of the app lifecycle: wait on the triggerer for an app to run, to be gone, or for
a rolling restart to finish."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from convox_provider.triggers._base import ConvoxTrigger
from convox_provider.triggers._events import SUCCESS

if TYPE_CHECKING:
    from convox_provider.client.client import AsyncConvoxClient

__all__ = ["ConvoxAppDeletedTrigger", "ConvoxAppRunningTrigger", "ConvoxRestartTrigger"]


class _Uncancellable(ConvoxTrigger):
    """A wait whose remote work cannot be stopped (an app create or delete, a restart)."""

    async def _cancel(self, client: AsyncConvoxClient) -> None:
        self.log.info("Nothing to cancel for %s: the rack cannot stop it", self.subject)


class ConvoxAppRunningTrigger(_Uncancellable):
    """Wait until ``app`` reads ``running`` twice in a row (WaitForAppRunning,
    docs/rack-api.md §7.9), after its create or a settings change.

    Success is ``{"status": "success", "app"}``; a ``rollback`` reading ends the wait with a
    ``rollback`` event; also ``timeout`` and ``error`` (see
    :class:`~convox_provider.triggers._base.ConvoxTrigger`).

    :param convox_conn_id: the Airflow connection of the rack.
    :param app: the app.
    :param end_time: when to give up, in epoch seconds (absolute).
    :param poll_interval: seconds between status polls (default 5).
    :param initial_delay: seconds before the first poll (the status lags the create, §5.1).
    :param max_errors: consecutive transient errors that end the wait (default 5).
    """

    _own: tuple[str, ...] = ("initial_delay",)
    _until = "running"
    """What the app is waited to be (the subject's words)."""
    _client_wait = "wait_for_app_running"
    """The ``client.apps`` wait that does it."""

    def __init__(self, *, initial_delay: float = 0.0, **options: Any) -> None:
        super().__init__(**options)
        self.initial_delay = float(initial_delay)

    @property
    def subject(self) -> str:
        """What this trigger waits for, in words."""
        return f"app {self.app} to be {self._until}"

    async def _wait(self, client: AsyncConvoxClient, timeout: float) -> dict[str, Any]:
        wait = getattr(client.apps, self._client_wait)
        await wait(self.app, waiting=self._waiting(timeout))
        return {"status": SUCCESS, "app": self.app}


class ConvoxAppDeletedTrigger(ConvoxAppRunningTrigger):
    """Wait until ``app`` is gone: not found twice in a row (WaitForAppDeleted, §7.9).

    Success is ``{"status": "success", "app"}``; an app that reads anything but ``deleting``
    ends the wait with an ``error`` event. Arguments as :class:`ConvoxAppRunningTrigger`.
    """

    _until = "deleted"
    _client_wait = "wait_for_app_deleted"


class ConvoxRestartTrigger(ConvoxAppRunningTrigger):
    """Wait for a rolling restart (``client.apps.wait_for_restart``): the app still ``running``
    on ``release_id``, then the pods ``replaced`` gone and each service's count of new pods
    ``running``.

    Success is ``{"status": "success", "app", "release_id", "services"}``; a rollback or a newer
    release promoted meanwhile ends it as after a promote (``rollback`` / ``superseded``); a new
    pod crash-looping is an ``error``. Also ``timeout``.

    :param release_id: the release the app ran when the restart was sent.
    :param services: the services restarted.
    :param replaced: the ids of the pods that ran them before.
    """

    _own = ("initial_delay", "release_id", "services", "replaced")

    def __init__(
        self,
        *,
        release_id: str,
        services: list[str],
        replaced: list[str],
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.release_id = release_id
        self.services = list(services)
        self.replaced = list(replaced)

    @property
    def subject(self) -> str:
        """What this trigger waits for, in words."""
        return f"the restart of {', '.join(self.services)} of app {self.app}"

    async def _wait(self, client: AsyncConvoxClient, timeout: float) -> dict[str, Any]:
        from convox_provider.client.workflows.apps import Restart  # noqa: PLC0415 - light

        restart = Restart(self.app, self.release_id, tuple(self.services), tuple(self.replaced))
        await client.apps.wait_for_restart(restart, waiting=self._waiting(timeout))
        return {
            "status": SUCCESS,
            "app": self.app,
            "release_id": self.release_id,
            "services": self.services,
        }
