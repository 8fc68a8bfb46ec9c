"""RFC 6455 handshake and framing, written for the rack's quirks (docs/rack-api.md §6).

Server frames are unmasked TEXT frames whose payload is raw bytes (split UTF-8 and invalid
UTF-8 allowed); end of stream is an empty BINARY frame; no close frame is ever sent. Pings are
answered only while a handler is reading (exec stdin), never on log routes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import struct
from urllib.parse import urlsplit

from .messages import Request

__all__ = ["StreamTruncated", "WebSocket", "accept_key", "handshake_error", "handshake_response"]

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_BAD_HANDSHAKE = "websocket: the client is not using the websocket protocol: "


class StreamTruncated(ConnectionError):
    """A truncate fault cut the stream; the connection is already closed."""


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client key."""
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def _tokens(request: Request, name: str) -> list[str]:
    return [t.strip().lower() for v in request.header_values(name) for t in v.split(",")]


def handshake_error(request: Request) -> tuple[int, str] | None:
    """gorilla's upgrade checks in order: the refusal status and reason, or None when fine."""
    if "upgrade" not in _tokens(request, "Connection"):
        return 400, _BAD_HANDSHAKE + "'upgrade' token not found in 'Connection' header"
    if "websocket" not in _tokens(request, "Upgrade"):
        return 426, _BAD_HANDSHAKE + "'websocket' token not found in 'Upgrade' header"
    if request.method != "GET":
        return 405, _BAD_HANDSHAKE + "request method is not GET"
    if "13" not in _tokens(request, "Sec-WebSocket-Version"):
        return 400, "websocket: unsupported version: 13 not found in 'Sec-Websocket-Version' header"
    origin = request.header("Origin")
    if origin is not None:
        host = request.header("Host") or ""
        try:
            origin_host = urlsplit(origin).netloc
        except ValueError:
            origin_host = None
        if origin_host is None or origin_host.lower() != host.lower():
            return 403, "websocket: request origin not allowed by Upgrader.CheckOrigin"
    key = request.header("Sec-WebSocket-Key") or ""
    try:
        valid = len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        valid = False
    if not valid:
        return 400, (
            "websocket: not a websocket handshake: "
            "'Sec-WebSocket-Key' header must be Base64 encoded "
            "value of 16-byte in length"
        )
    return None


def handshake_response(key: str) -> bytes:
    """The 101 response, with exactly the headers gorilla writes."""
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
    ).encode()


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One unmasked, final frame."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, length)
    return header + payload


class WebSocket:
    """A server-side WebSocket connection after the 101.

    :param truncate_after: close the connection after this many payload bytes (a fault).
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        initial: bytes = b"",
        *,
        truncate_after: int | None = None,
        max_frame: int | None = None,
    ) -> None:
        self._max_frame = max_frame
        self._reader = reader
        self._writer = writer
        self._buffer = bytearray(initial)
        self._budget = truncate_after
        self.answer_pings = False
        self.peer_gone = asyncio.Event()
        self.sent_bytes = 0

    async def send_text(self, data: bytes) -> None:
        """Write ``data`` as TEXT frames (raw bytes, no UTF-8 check), split at ``max_frame``."""
        if self._max_frame and len(data) > self._max_frame:
            for start in range(0, len(data), self._max_frame):
                await self._send_frame(data[start : start + self._max_frame])
            return
        await self._send_frame(data)

    async def _send_frame(self, data: bytes) -> None:
        if self._budget is not None and len(data) >= self._budget:
            cut = data[: self._budget]
            if cut:
                self._writer.write(encode_frame(OP_TEXT, cut))
            self.sent_bytes += len(cut)
            await self._drain()
            self.abort()
            raise StreamTruncated("stream truncated by fault")
        if self._budget is not None:
            self._budget -= len(data)
        self._writer.write(encode_frame(OP_TEXT, data))
        self.sent_bytes += len(data)
        await self._drain()

    async def send_end(self) -> None:
        """The empty BINARY frame that ends every stream."""
        self._writer.write(encode_frame(OP_BINARY, b""))
        await self._drain()

    async def _drain(self) -> None:
        if self._writer.is_closing():
            raise ConnectionResetError("connection closed")
        await self._writer.drain()

    def abort(self) -> None:
        """Close the TCP connection at once (no close frame)."""
        self._writer.transport.abort()

    async def _read_exact(self, count: int) -> bytes | None:
        while len(self._buffer) < count:
            chunk = await self._reader.read(65536)
            if not chunk:
                return None
            self._buffer.extend(chunk)
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    async def _read_frame(self) -> tuple[bool, int, bytes] | None:
        head = await self._read_exact(2)
        if head is None:
            return None
        fin, opcode = bool(head[0] & 0x80), head[0] & 0x0F
        masked, length = bool(head[1] & 0x80), head[1] & 0x7F
        if length == 126:
            extended = await self._read_exact(2)
            if extended is None:
                return None
            length = struct.unpack("!H", extended)[0]
        elif length == 127:
            extended = await self._read_exact(8)
            if extended is None:
                return None
            length = struct.unpack("!Q", extended)[0]
        mask = await self._read_exact(4) if masked else b""
        if mask is None:
            return None
        payload = await self._read_exact(length)
        if payload is None:
            return None
        if masked:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return fin, opcode, payload

    async def read_message(self) -> tuple[int, bytes] | None:
        """Next data or close message (fragments joined); None when the peer went away."""
        message_opcode: int | None = None
        parts: list[bytes] = []
        while True:
            frame = await self._read_frame()
            if frame is None:
                self.peer_gone.set()
                return None
            fin, opcode, payload = frame
            if opcode == OP_PING:
                if self.answer_pings:
                    self._writer.write(encode_frame(OP_PONG, payload))
                continue
            if opcode == OP_PONG:
                continue
            if opcode == OP_CLOSE:
                return OP_CLOSE, payload
            if opcode != OP_CONTINUATION:
                message_opcode = opcode
                parts = []
            parts.append(payload)
            if fin and message_opcode is not None:
                return message_opcode, b"".join(parts)

    async def discard_incoming(self) -> None:
        """Read and ignore everything the client sends (log routes), noting when it leaves."""
        try:
            while await self._reader.read(65536):
                pass
        except (ConnectionError, OSError):
            pass
        self.peer_gone.set()
