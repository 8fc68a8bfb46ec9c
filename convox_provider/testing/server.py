"""The rack's HTTP/1.1 server: asyncio streams plus h11, WebSocket upgrades by hand.

Keep-alive, chunked and content-length request bodies; raw bodies (object store, build import,
resource import) are spooled to a file chunk by chunk, never held in memory; form bodies are
parsed as stdapi does (docs/rack-api.md §2.1, §2.4); file responses stream in 64 KiB chunks.
Faults from the ``FaultPlan`` are applied here, and every request is recorded before it is
answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.parser
import email.policy
import logging
import os
import socket
import tempfile
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import h11

from .admin import ADMIN_PREFIX, Admin
from .api import RackApi
from .encoding import parse_query
from .errors import RackError
from .faults import Fault, FaultPlan, RequestLog, RequestRecord, now
from .messages import Request, Response
from .routes import Match, Router
from .websocket import StreamTruncated, WebSocket, handshake_error, handshake_response

__all__ = ["RackServer"]

log = logging.getLogger("convox_provider.testing")

_CHUNK = 64 * 1024
_FORM_LIMIT = 10 * 1024 * 1024


class _Dropped(Exception):
    """The connection was closed on purpose (a fault) or by the peer."""


class _Protocol(asyncio.StreamReaderProtocol):
    """Stream protocol that tells the server about every transport, even before its task runs."""

    def __init__(self, server: RackServer) -> None:
        super().__init__(asyncio.StreamReader(limit=_CHUNK * 4), server._accept)
        self._rack_server = server
        self._rack_transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._rack_transport = transport
        self._rack_server._transports.add(transport)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._rack_transport is not None:
            self._rack_server._transports.discard(self._rack_transport)
        super().connection_lost(exc)


@dataclass(eq=False, kw_only=True)
class RackServer:
    """Serves one ``RackApi`` on a listening socket."""

    api: RackApi
    router: Router
    faults: FaultPlan
    requests: RequestLog
    spool: Path
    max_frame_bytes: int | None = None
    admin: Admin | None = None
    _server: asyncio.Server | None = field(default=None, init=False, repr=False)
    _listener: socket.socket | None = field(default=None, init=False, repr=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)
    _transports: set[asyncio.BaseTransport] = field(default_factory=set, init=False, repr=False)

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0 picks a free port); returns the bound port."""
        loop = asyncio.get_running_loop()
        self._listener = socket.create_server((host, port), backlog=128)
        self._listener.setblocking(False)
        self._server = await loop.create_server(lambda: _Protocol(self), sock=self._listener)
        sockname = self._server.sockets[0].getsockname()
        return int(sockname[1])

    async def stop(self) -> None:
        """Stop listening and cut every open connection."""
        if self._server is not None and self._listener is not None:
            # Stop accepting, let connections asyncio already accepted get their transports
            # (closing the server first would orphan them), then accept-and-close whatever is
            # still queued in the kernel, and only then close the listener.
            asyncio.get_running_loop().remove_reader(self._listener.fileno())
            for _ in range(10):
                await asyncio.sleep(0)
            while True:
                try:
                    pending, _ = self._listener.accept()
                except OSError:
                    break
                pending.close()
            self._server.close()
        for transport in list(self._transports):
            if isinstance(transport, asyncio.WriteTransport):
                transport.abort()
            else:
                transport.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._connection(reader, writer)
        except (ConnectionError, _Dropped, asyncio.IncompleteReadError, OSError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("connection failed")
        finally:
            self._tasks.discard(task)
            writer.transport.abort()

    # --- HTTP ------------------------------------------------------------------------------

    async def _next_event(self, conn: h11.Connection, reader: asyncio.StreamReader) -> Any:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(_CHUNK))
                continue
            return event

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=1024 * 1024)
        while True:
            try:
                event = await self._next_event(conn, reader)
            except h11.RemoteProtocolError as exc:
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    body = f"{exc}\n".encode()
                    response = h11.Response(
                        status_code=400,
                        headers=[
                            ("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body))),
                        ],
                    )
                    writer.write(
                        conn.send(response)
                        + conn.send(h11.Data(data=body))
                        + conn.send(h11.EndOfMessage())
                    )
                    await writer.drain()
                return
            if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return
            if not isinstance(event, h11.Request):
                return
            upgraded = await self._request(conn, event, reader, writer)
            if upgraded or conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()

    def _parse(self, event: h11.Request) -> Request:
        target = event.target.decode("latin-1")
        raw_path, _, query = target.partition("?")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers.raw_items()]
        return Request(
            method=event.method.decode("ascii"),
            path=unquote(raw_path),
            query_string=query,
            headers=headers,
        )

    async def _request(
        self,
        conn: h11.Connection,
        event: h11.Request,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Handle one request; True when the connection was handed to a WebSocket."""
        req = self._parse(event)
        if self.admin is not None and req.path.startswith(ADMIN_PREFIX):
            response = await self._admin(self.admin, conn, req, reader, writer)
            await self._send(conn, writer, req, response)
            return False
        upgrade = req.header("Upgrade")
        routed = self.router.match(req.method, req.path, upgrade)
        record: dict[str, Any] = {
            "fault": None,
            "websocket": isinstance(routed, Match) and routed.route.socket is not None,
        }

        fault = self.faults.take(
            req.method,
            req.path,
            kinds=("status", "delay", "drop", "stall"),
            websocket=record["websocket"],
        )
        before = after = None
        if fault is not None:
            record["fault"] = fault.kind
            if fault.kind == "delay":
                await asyncio.sleep(fault.seconds)
            elif fault.kind == "drop" and fault.stage == "headers":
                self._record(req, None, record)
                raise _Dropped()
            elif (fault.kind == "status" and fault.after_handler) or (
                fault.kind == "drop" and fault.stage == "handler"
            ):
                after = fault
            else:
                before = fault
        if before is not None:
            await self._drain_body(conn, reader, writer)
            if before.kind == "drop":
                self._record(req, None, record)
                raise _Dropped()
            if before.kind == "stall":
                self._record(req, None, record)
                await asyncio.sleep(before.seconds)
                raise _Dropped()
            response = self._fault_response(before)
            self._record(req, response.status, record)
            await self._send(conn, writer, req, response)
            return False

        gate = self.api.console_gate(req)
        if gate is not None:
            await self._drain_body(conn, reader, writer)
            self._record(req, gate.status, record)
            await self._send(conn, writer, req, gate)
            return False

        if req.path == "/check":
            await self._drain_body(conn, reader, writer)
            response = Response(headers=[("Content-Type", "text/plain; charset=utf-8")], body=b"ok")
            self._record(req, 200, record)
            await self._send(conn, writer, req, response)
            return False

        if isinstance(routed, int):
            await self._drain_body(conn, reader, writer)
            self._record(req, routed, record)
            await self._send(conn, writer, req, Response(status=routed))
            return False

        if routed.route.socket is not None:
            return await self._websocket(
                conn,
                req=req,
                match=routed,
                reader=reader,
                writer=writer,
                record=record,
                cut=after is not None,  # drop(stage="handler"): no end frame
            )

        try:
            await self._read_body(conn, reader, writer, req, raw=routed.route.raw_body)
            response = await self.api.handle_http(req, routed)
        finally:
            if req.body_path is not None:
                req.body_path.unlink(missing_ok=True)
        if after is not None:
            if after.kind == "drop":
                self._record(req, None, record)
                raise _Dropped()
            response = self._fault_response(after)
        self._record(req, response.status, record, request_id=req.request_id)
        truncate = (
            self.faults.take(req.method, req.path, kinds=("truncate",)) if response.file else None
        )
        await self._send(conn, writer, req, response, truncate=truncate)
        return False

    async def _admin(
        self,
        admin: Admin,
        conn: h11.Connection,
        req: Request,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> Response:
        """An admin route (``admin``): not faulted, not gated, not recorded."""
        body = bytearray()
        if conn.their_state is h11.SEND_BODY:
            self._continue(conn, writer)
            async for chunk in self._body_chunks(conn, reader):
                if len(body) <= _FORM_LIMIT:
                    body.extend(chunk)
        peer = writer.get_extra_info("peername")
        return admin.handle(req, bytes(body), str(peer[0]) if peer else "")

    def _fault_response(self, fault: Fault) -> Response:
        response = Response(
            status=fault.status,
            headers=[("Content-Type", "text/plain; charset=utf-8")],
            body=(fault.message + "\n").encode(),
        )
        if fault.retry_after is not None:
            response.set_header("Retry-After", fault.retry_after)
        return response

    def _record(
        self,
        req: Request,
        status: int | None,
        record: dict[str, Any],
        request_id: str | None = None,
    ) -> None:
        self.requests.add(
            RequestRecord(
                method=req.method,
                path=req.path,
                query=req.query_string,
                status=status,
                fault=record["fault"],
                websocket=record["websocket"],
                request_id=request_id,
                time=now(),
                headers=tuple(req.headers),
            )
        )

    def _continue(self, conn: h11.Connection, writer: asyncio.StreamWriter) -> None:
        if conn.they_are_waiting_for_100_continue:
            writer.write(conn.send(h11.InformationalResponse(status_code=100, headers=[])))

    async def _body_chunks(self, conn: h11.Connection, reader: asyncio.StreamReader) -> Any:
        while True:
            event = await self._next_event(conn, reader)
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return
            else:
                raise _Dropped()

    async def _drain_body(
        self, conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if conn.their_state is h11.SEND_BODY:
            self._continue(conn, writer)
            async for _ in self._body_chunks(conn, reader):
                pass

    async def _read_body(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        req: Request,
        *,
        raw: bool,
    ) -> None:
        """Parse a form body (POST/PUT/PATCH) or spool a raw one; anything else is discarded."""
        if conn.their_state is not h11.SEND_BODY:
            return
        self._continue(conn, writer)
        media = (req.header("Content-Type") or "").split(";", 1)[0].strip().lower()
        form_body = req.method in ("POST", "PUT", "PATCH") and media in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        )
        if form_body:
            data = bytearray()
            too_large = False
            async for chunk in self._body_chunks(conn, reader):
                if not too_large:
                    data.extend(chunk)
                    if len(data) > _FORM_LIMIT:
                        too_large, data = True, bytearray()
            if not too_large:
                req.body_form = _parse_form(bytes(data), req.header("Content-Type") or "", media)
            return
        if raw:
            handle, name = tempfile.mkstemp(dir=self.spool, prefix="upload-")
            req.body_path = Path(name)
            with os.fdopen(handle, "wb") as spool:
                async for chunk in self._body_chunks(conn, reader):
                    spool.write(chunk)
            return
        async for _ in self._body_chunks(conn, reader):
            pass

    async def _send(
        self,
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        req: Request,
        response: Response,
        truncate: Fault | None = None,
    ) -> None:
        headers = [
            (k, v) for k, v in response.headers if k.lower() not in ("content-length", "date")
        ]
        headers.append(("Date", formatdate(usegmt=True)))
        if response.file is None:
            headers.append(("Content-Length", str(len(response.body))))
        try:
            head = conn.send(h11.Response(status_code=response.status, headers=headers)) or b""
            if response.file is not None and req.method != "HEAD":
                writer.write(head)
                await self._send_file(conn, writer, response.file, truncate)
                writer.write(conn.send(h11.EndOfMessage()) or b"")
            else:
                body = (
                    conn.send(h11.Data(data=response.body))
                    if response.body and req.method != "HEAD"
                    else b""
                )
                writer.write(head + (body or b"") + (conn.send(h11.EndOfMessage()) or b""))
            await writer.drain()
        finally:
            if response.delete_file and response.file is not None:
                response.file.unlink(missing_ok=True)

    async def _send_file(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, path: Path, truncate: Fault | None
    ) -> None:
        budget = truncate.after_bytes if truncate is not None else None
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                if budget is not None:
                    if len(chunk) >= budget:
                        if budget:
                            writer.write(conn.send(h11.Data(data=chunk[:budget])))
                        await writer.drain()
                        raise _Dropped()
                    budget -= len(chunk)
                writer.write(conn.send(h11.Data(data=chunk)))
                await writer.drain()
        if budget is not None:
            await writer.drain()
            raise _Dropped()

    # --- WebSocket -------------------------------------------------------------------------

    async def _websocket(
        self,
        conn: h11.Connection,
        *,
        req: Request,
        match: Match,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        record: dict[str, Any],
        cut: bool,
    ) -> bool:
        await self._drain_body(conn, reader, writer)
        refusal = handshake_error(req)
        if refusal is not None:
            status, reason = refusal
            body = f"{_status_text(status)}\nERROR: {reason}\n".encode()
            response = Response(
                status=status,
                headers=[
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("X-Content-Type-Options", "nosniff"),
                    ("Sec-Websocket-Version", "13"),
                ],
                body=body,
            )
            if status == 426:
                response.set_header("Upgrade", "websocket")
            record["websocket"] = False
            self._record(req, status, record)
            await self._send(conn, writer, req, response)
            return False
        trailing, _closed = conn.trailing_data
        self._record(req, 101, record)
        writer.write(handshake_response(req.header("Sec-WebSocket-Key") or ""))
        await writer.drain()
        truncate = self.faults.take(req.method, req.path, kinds=("truncate",))
        ws = WebSocket(
            reader,
            writer,
            bytes(trailing),
            truncate_after=truncate.after_bytes if truncate is not None else None,
            max_frame=self.max_frame_bytes,
        )
        await self._run_socket(req, match, ws, cut=cut)
        return True

    async def _run_socket(self, req: Request, match: Match, ws: WebSocket, *, cut: bool) -> None:
        """Authenticate after the upgrade, run the handler, end with the empty binary frame
        (``cut``: close the connection instead)."""
        req.request_id = ""
        try:
            try:
                self.api.authorize_request(req, match)
                socket = match.route.socket
                assert socket is not None
                await socket(req, self.api.ctx, ws)
            except RackError as exc:
                await ws.send_text(f"ERROR: {exc.message}\n".encode())
            except (StreamTruncated, ConnectionError, asyncio.CancelledError):
                raise
            except Exception as exc:
                log.exception("socket handler failed: %s", req.path)
                await ws.send_text(f"ERROR: {exc}\n".encode())
            if cut:
                raise _Dropped()
            await ws.send_end()
            # The rack does not close the TCP connection after the end frame; wait for the client.
            await ws.discard_incoming()
        except (StreamTruncated, ConnectionError, OSError):
            return


def _status_text(status: int) -> str:
    with contextlib.suppress(ValueError):
        return HTTPStatus(status).phrase
    return str(status)


def _parse_form(data: bytes, content_type: str, media: str) -> dict[str, list[str]]:
    """The body half of Go's ``ParseMultipartForm``: url-encoded pairs or multipart fields."""
    if media == "application/x-www-form-urlencoded":
        return parse_query(data.decode("utf-8", errors="replace"))[0]
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + data
    )
    fields: dict[str, list[str]] = {}
    if not message.is_multipart():
        return fields
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or part.get_filename() is not None:
            continue
        payload = part.get_payload(decode=True)
        value = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""
        fields.setdefault(name, []).append(value)
    return fields
