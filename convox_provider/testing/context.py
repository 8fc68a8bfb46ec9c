"""What every route handler is given and what a route is: ``Ctx``, ``Route`` and the handler types.

This module sits below ``handlers`` (HTTP), ``sockets`` (WebSocket) and ``routes`` (the table
and router), so the handlers can name their context without importing the table that names them.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .messages import Request, Response
    from .state import RackState
    from .websocket import WebSocket

__all__ = ["Ctx", "HttpHandler", "Route", "SocketHandler"]


@dataclass
class Ctx:
    """What handlers need besides the request: the rack state and a spool directory."""

    state: RackState
    spool: Path


HttpHandler = Callable[["Request", Ctx], "Response | Awaitable[Response]"]
SocketHandler = Callable[["Request", Ctx, "WebSocket"], Awaitable[None]]


@dataclass(frozen=True)
class Route:
    """One route: ``method`` is an HTTP method, ``SOCKET`` or ``ANY``."""

    method: str
    pattern: str
    handler: HttpHandler | None = None
    socket: SocketHandler | None = None
    raw_body: bool = False
    authorized: bool = True

    def regex(self) -> re.Pattern[str]:
        """The compiled path pattern."""
        out = []
        for piece in re.split(r"(\{[^}]+\})", self.pattern):
            if piece.startswith("{"):
                name, _, expr = piece[1:-1].partition(":")
                out.append(f"(?P<{name}>{expr or '[^/]+'})")
            else:
                out.append(re.escape(piece))
        return re.compile("".join(out))
