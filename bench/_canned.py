"""A loopback HTTP/1.1 server answering every request with one canned App JSON.

It does almost no work per request, so a client benchmark against it measures the client.
Run as ``python -m bench._canned PORT``; keep-alive, no request body support (GETs only).
"""

from __future__ import annotations

import asyncio
import json
import sys

BODY = (
    json.dumps(
        {
            "generation": "3",
            "locked": False,
            "name": "bench",
            "release": "RKQZPLMNOA",
            "router": "0a1b2c3d4e5f.convox.cloud",
            "status": "running",
            "parameters": {"BuildMem": "2048"},
        },
        indent=2,
    )
    + "\n"
).encode()
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nRequest-Id: 0123456789ab\r\n"
    + f"Content-Length: {len(BODY)}\r\n\r\n".encode()
    + BODY
)


class _Canned(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            _, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.transport.write(RESPONSE)  # type: ignore[attr-defined]


async def _serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Canned, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1])))
