"""The one exception the emulated rack raises: an HTTP status plus the server's message."""

from __future__ import annotations

__all__ = ["RackError"]


class RackError(Exception):
    """A failure the rack reports to its client as ``status`` with ``message``.

    Over HTTP it becomes the error body of docs/rack-api.md §3.2; on WebSocket routes it becomes the
    ``ERROR: <message>`` frame of §6.5. Untyped server failures are 500, like the real rack.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def __repr__(self) -> str:
        return f"RackError({self.status}, {self.message!r})"
