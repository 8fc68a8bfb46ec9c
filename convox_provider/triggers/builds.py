"""``ConvoxBuildTrigger``: wait on the triggerer for a build to end."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from convox_provider.triggers._base import ConvoxTrigger
from convox_provider.triggers._events import SUCCESS, OutputLines

if TYPE_CHECKING:
    from convox_provider.client.client import AsyncConvoxClient

__all__ = ["TRIGGER_LOG_LINES", "ConvoxBuildTrigger"]

TRIGGER_LOG_LINES = 1000
"""Build output lines a trigger copies to its log; the rest is counted, not logged."""


class ConvoxBuildTrigger(ConvoxTrigger):
    """Wait for build ``build_id`` of ``app`` to be ``complete`` or ``failed``.

    Events: ``{"status": "success", "app", "build_id", "release_id"}``; ``{"status": "failed",
    "message", "build_id", "logs_tail"}``; ``timeout`` and ``error`` (see
    :class:`~convox_provider.triggers._base.ConvoxTrigger`). A build whose pod died while the build
    still reads ``running`` (it never ends by itself, docs/rack-api.md §4.3) is ``failed``.

    :param convox_conn_id: the Airflow connection of the rack.
    :param app: the app the build belongs to.
    :param build_id: the build to wait for.
    :param end_time: when to give up, in epoch seconds (absolute).
    :param poll_interval: seconds between status polls (default 5).
    :param max_errors: consecutive transient errors that end the wait (default 5).
    :param follow_logs: copy the build output to the triggerer log as it is produced (up to
        ``TRIGGER_LOG_LINES`` lines), over one WebSocket per waiting build. Turn it off for many
        concurrent waits: the build is then only polled, over the shared connection pool, and a
        failed build's event still carries the tail of its log.
    """

    _own = ("build_id", "follow_logs")

    def __init__(
        self,
        convox_conn_id: str,
        app: str,
        build_id: str,
        end_time: float,
        *,
        follow_logs: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(convox_conn_id=convox_conn_id, app=app, end_time=end_time, **options)
        self.build_id = build_id
        self.follow_logs = bool(follow_logs)

    @property
    def subject(self) -> str:
        """What this trigger waits for, in words."""
        return f"build {self.build_id} of app {self.app}"

    async def _wait(self, client: AsyncConvoxClient, timeout: float) -> dict[str, Any]:
        output = OutputLines(self._log_output, max_lines=TRIGGER_LOG_LINES)
        try:
            build = await client.builds.wait_for_build(
                self.app,
                self.build_id,
                follow_logs=self.follow_logs,
                on_output=output.feed,
                waiting=self._waiting(timeout),
            )
        finally:
            output.close()
        return {
            "status": SUCCESS,
            "app": self.app,
            "build_id": self.build_id,
            "release_id": build.release,
        }

    async def _cancel(self, client: AsyncConvoxClient) -> None:
        if await client.builds.cancel(self.app, self.build_id):
            self.log.info("Stopped %s (its build pod is deleted)", self.subject)
