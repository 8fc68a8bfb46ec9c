"""The rack's middleware: console gate, authentication, authorization, handler call, errors.

Mirrors *pkg/api/api.go* and *vendor/github.com/convox/stdapi/router.go* (docs/rack-api.md §1-§3):
every routed response carries ``Request-Id``, ``X-Content-Type-Options`` and
``X-Frame-Options``; a handler failure becomes its status (500 when untyped) with the message.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import inspect
import logging
import secrets
from dataclasses import dataclass, field

from .context import Ctx
from .encoding import new_request_id
from .errors import RackError
from .messages import Request, Response
from .routes import Match

__all__ = ["Console", "RackApi"]

log = logging.getLogger("convox_provider.testing")

SESSION_PATH = "/session"

CONSOLE_HTML = (
    b'<!doctype html>\n<html lang="en">\n'
    b'<head><meta charset="utf-8"><title>Convox Console</title></head>\n'
    b'<body><div id="root">Convox Console</div></body>\n</html>\n'
)


@dataclass
class Console:
    """Console-mode settings: the ``org/rack`` every request must name, and the session mode.

    ``session`` is None (no challenge), ``"challenge"`` (``token="false"``: POST the session
    path to get an id) or ``"token"`` (``token="true"``: hardware-key MFA a headless client must
    refuse).
    """

    rack: str
    session: str | None = None
    sessions: set[str] = field(default_factory=set)


class RackApi:
    """Applies the middleware chain to routed requests."""

    def __init__(self, ctx: Ctx, *, password: str | None, console: Console | None) -> None:
        self.ctx = ctx
        self.password = password
        self.console = console

    # --- console ---------------------------------------------------------------------------

    def console_gate(self, req: Request) -> Response | None:
        """Console-only answers: the HTML UI without ``Rack``, session challenge, console routes."""
        console = self.console
        if console is None:
            return None
        rack = req.header("Rack")
        if not rack:
            return Response(
                headers=[("Content-Type", "text/html; charset=utf-8")], body=CONSOLE_HTML
            )
        if rack != console.rack:
            return Response.error(req, 404, f"rack not found: {rack}")
        console_path = req.path in ("/racks", "/machines", SESSION_PATH)
        if console.session is not None or console_path:
            try:
                self._authenticate(req)
            except RackError as exc:
                return self._error(req, exc)
        if console.session is not None:
            if req.path == SESSION_PATH:
                return self._session(req, console)
            if req.header("Session") not in console.sessions:
                response = Response.error(req, 401, "session required")
                token = "true" if console.session == "token" else "false"
                response.set_header(
                    "WWW-Authenticate", f'Session path="{SESSION_PATH}" token="{token}"'
                )
                return response
        return self._console_routes(req)

    def _session(self, req: Request, console: Console) -> Response:
        if console.session == "token":
            if req.method == "GET":
                response = Response.json({"challenge": secrets.token_urlsafe(32)})
                response.set_header("Challenge", secrets.token_hex(16))
                return response
            return Response.error(req, 401, "invalid challenge response")
        if req.method != "POST":
            return Response(status=405)
        session_id = secrets.token_hex(16)
        console.sessions.add(session_id)
        return Response.json({"id": session_id})

    def _console_routes(self, req: Request) -> Response | None:
        assert self.console is not None
        if req.method == "GET" and req.path == "/racks":
            org, _, name = self.console.rack.partition("/")
            return Response.json(
                [
                    {
                        "name": name,
                        "organization": {"name": org},
                        "provider": "k8s",
                        "status": "running",
                    }
                ]
            )
        if req.method == "GET" and req.path == "/machines":
            return Response.json([])
        return None

    # --- rack middleware -------------------------------------------------------------------

    def _authenticate(self, req: Request) -> str:
        user, password = _basic_auth(req.header("Authorization"))
        if user == "jwt":
            return self.ctx.state.jwt_role(password)
        if self.password and not hmac.compare_digest(self.password.encode(), password.encode()):
            raise RackError(401, "invalid authentication")
        return "rwa"

    def _authorize(self, req: Request) -> None:
        needed = "r" if req.method == "GET" else "w"
        if needed not in req.role:
            raise RackError(401, "you are unauthorized to access this")

    def authorize_request(self, req: Request, match: Match) -> None:
        """Authentication and authorization; raises ``RackError`` on failure."""
        req.params = match.params
        req.role = self._authenticate(req)
        if match.route.authorized:
            self._authorize(req)

    def _error(self, req: Request, exc: RackError) -> Response:
        response = Response.error(req, exc.status, exc.message)
        if exc.status == 401 and exc.message == "invalid authentication":
            response.set_header("WWW-Authenticate", 'Basic realm="convox"')
        return response

    def decorate(self, req: Request, response: Response) -> Response:
        """Add the headers every routed response carries."""
        response.set_header("Request-Id", req.request_id)
        response.set_header("X-Content-Type-Options", "nosniff")
        response.set_header("X-Frame-Options", "DENY")
        return response

    async def handle_http(self, req: Request, match: Match) -> Response:
        """Run the middleware and the handler; never raises."""
        req.request_id = new_request_id()
        try:
            self.authorize_request(req, match)
            handler = match.route.handler
            assert handler is not None
            result = handler(req, self.ctx)
            response = await result if inspect.isawaitable(result) else result
        except RackError as exc:
            response = self._error(req, exc)
        except Exception as exc:
            log.exception("handler failed: %s %s", req.method, req.path)
            response = Response.error(req, 500, str(exc) or type(exc).__name__)
        return self.decorate(req, response)


def _basic_auth(header: str | None) -> tuple[str, str]:
    """Go ``Request.BasicAuth``: ("", "") when absent or malformed."""
    if not header or header[:6].lower() != "basic ":
        return "", ""
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode(
            "utf-8", errors="replace"
        )
    except (binascii.Error, ValueError):
        return "", ""
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else ("", "")
