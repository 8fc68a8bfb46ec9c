"""App logs: the entries the log streams read (docs/rack-api.md §6.2).

Rollouts write ``system/k8s/atom/app`` lines, processes ``service/<service>/<pod>`` lines and
tests ``system/emulator`` lines; a stream reads them from an index on.
"""

from __future__ import annotations

from ..models import LogEntry, Pod
from ._base import Model, Rack

__all__ = ["Logs"]


class Logs(Model):
    """Log entries per app, in the order they were written."""

    def __init__(self, rack: Rack) -> None:
        super().__init__(rack)
        self._logs: dict[str, list[LogEntry]] = {}

    def open_app(self, app: str) -> None:
        """Start a new app's log."""
        self._logs[app] = []

    def drop_app(self, app: str) -> None:
        """Forget a deleted app's log."""
        self._logs.pop(app, None)

    def log(self, app: str, at: int, stream: str, message: bytes, pod: Pod | None = None) -> None:
        """Append an entry (call with the lock held); nothing once the app is gone."""
        entries = self._logs.get(app)
        if entries is None:
            return
        entries.append(
            LogEntry(
                time=at,
                stream=stream,
                message=message,
                service=pod.service if pod else "",
                pod=pod.id if pod else "",
            )
        )

    def emit_log(self, app: str, message: str | bytes, *, service: str = "", pod: str = "") -> None:
        """Append a line to ``app``'s logs (``service/<svc>/<pod>`` or ``system/emulator``)."""
        data = message.encode() if isinstance(message, str) else message
        with self.locked() as now:
            self.rack.apps.app(app)
            stream = f"service/{service}/{pod}" if service else "system/emulator"
            self._logs[app].append(
                LogEntry(time=now, stream=stream, message=data, service=service, pod=pod)
            )

    def log_entries(self, app: str, start: int) -> tuple[list[LogEntry], int]:
        """Entries of ``app`` from index ``start`` and the next index; 404 when the app is gone."""
        with self.locked():
            self.rack.apps.app(app)
            entries = self._logs[app]
            return entries[start:], len(entries)
