"""The rack's route table and router (gorilla/mux semantics as stdapi uses them, §3.5).

Routes are tried in registration order; ``{name}`` matches one path segment, ``{name:.*}``
anything. A SOCKET route matches only a GET whose ``Upgrade`` header is exactly ``websocket``.
A path that matches some route with another method gives 405 with an empty body; anything else
unmatched gives 404 with an empty body (both without Request-Id or authentication).
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

__all__ = ["Ctx", "Match", "Route", "Router"]


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
    authenticated: bool = True
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


@dataclass(frozen=True)
class Match:
    """A routed request: the route and the path variables."""

    route: Route
    params: dict[str, str]


class Router:
    """Ordered routes with mux's matching rules."""

    def __init__(self, routes: list[Route]) -> None:
        self._routes = [(route, route.regex()) for route in routes]

    def match(self, method: str, path: str, upgrade: str | None) -> Match | int:
        """The matching route, or 405/404 when none matches."""
        method_mismatch = False
        for route, regex in self._routes:
            found = regex.fullmatch(path)
            if found is None:
                continue
            if route.method == "SOCKET":
                if upgrade != "websocket":
                    continue
                if method != "GET":
                    method_mismatch = True
                    continue
            elif route.method not in ("ANY", method):
                method_mismatch = True
                continue
            return Match(route, found.groupdict())
        return 405 if method_mismatch else 404
