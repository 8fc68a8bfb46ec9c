"""The emulator's own routes, under ``/_emulator/``, for shell pipelines driving the CLI.

They answer loopback clients only (403 otherwise), need no credentials, bypass faults and the
console gate, and are not recorded in the request log:

- ``POST /_emulator/scripts``: arm scripts (the ``--scripts`` file format, YAML or JSON body);
  answers the count per section; ``DELETE /_emulator/scripts`` forgets every script;
- ``GET /_emulator/requests``: the request log as JSON, oldest first (``?path=<glob>`` and
  ``?method=`` filter it); ``DELETE /_emulator/requests`` clears it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .faults import RequestLog, RequestRecord
from .messages import Request, Response
from .scriptfile import ScriptsFileError, apply_scripts
from .scripts import Scripts

__all__ = ["ADMIN_PREFIX", "Admin", "record_json"]

ADMIN_PREFIX = "/_emulator/"


def record_json(record: RequestRecord) -> dict[str, object]:
    """One request record as the admin route and ``--request-log`` render it."""
    return {
        "time": record.time,
        "method": record.method,
        "path": record.path,
        "query": record.query,
        "status": record.status,
        "fault": record.fault,
        "websocket": record.websocket,
        "request_id": record.request_id,
    }


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _text(status: int, message: str) -> Response:
    return Response(
        status=status,
        headers=[("Content-Type", "text/plain; charset=utf-8")],
        body=(message + "\n").encode(),
    )


@dataclass
class Admin:
    """Answers the admin routes from the rack's scripts and request log."""

    scripts: Scripts
    requests: RequestLog

    def handle(self, req: Request, body: bytes, peer: str) -> Response:
        """The response to an admin request from ``peer`` (its IP address)."""
        if not _loopback(peer):
            return _text(403, "the emulator's admin routes answer loopback clients only")
        route = req.path[len(ADMIN_PREFIX) :].rstrip("/")
        if route == "scripts" and req.method == "POST":
            try:
                armed = apply_scripts(self.scripts, body.decode("utf-8", errors="replace"))
            except ScriptsFileError as exc:
                return _text(400, str(exc))
            return Response.json({"armed": armed})
        if route == "scripts" and req.method == "DELETE":
            self.scripts.clear()
            return Response.ok()
        if route == "requests" and req.method == "GET":
            method, path = req.query_param("method"), req.query_param("path")
            return Response.json([record_json(r) for r in self.requests.find(method, path)])
        if route == "requests" and req.method == "DELETE":
            self.requests.clear()
            return Response.ok()
        if route in ("scripts", "requests"):
            return Response(status=405)
        return Response(status=404)
