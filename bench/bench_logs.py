"""Log streaming throughput over loopback WebSocket, in one run. Target (DESIGN.md): >= 100 MB/s.

Two servers, each in its own process so it never competes for the client's GIL:

* a minimal in-bench WebSocket server that sends pre-encoded 32 KiB text frames of log lines,
  then the rack's empty binary end frame, as fast as the socket takes them: this measures the
  client; again with 1 KiB frames, where per-frame costs dominate;
* the rack emulator serving a stored build log (128 MiB) in its own 32 KiB frames: this
  measures the pair, bounded by whichever is slower.

Each figure is the median over rounds of the bytes received by ``client.builds.logs``-style
iteration (``ConvoxClient`` and ``AsyncConvoxClient``) per second; a raw ``socket.recv`` loop
over the same in-bench stream gives the ceiling of the machine.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from websockets.utils import accept_key

from bench._rack import emulator, free_port

ROUNDS = 3
OWN_MIB = 256
EMULATOR_MIB = 128
FRAME = 32 * 1024
SMALL_FRAME = 1024
MiB = 1024 * 1024


def _log_lines(size: int) -> bytes:
    line = b"2026-01-15T14:30:51Z service/web/web-745f845dc-rzl2q GET /api/items 200 12ms\n"
    return (line * (size // len(line) + 1))[:size]


def _frame(opcode: int, payload: bytes) -> bytes:
    length = len(payload)
    if length < 126:
        head = bytes([0x80 | opcode, length])
    elif length < 65536:
        head = bytes([0x80 | opcode, 126]) + length.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 127]) + length.to_bytes(8, "big")
    return head + payload


def serve(port: int, mebibytes: int, frame: int) -> None:
    """The in-bench server: handshake, ``mebibytes`` of ``frame``-byte text frames, the end
    frame; forever."""
    batch = _frame(0x1, _log_lines(frame)) * (MiB // frame)
    end = _frame(0x2, b"")
    with socket.create_server(("127.0.0.1", port)) as listener:
        while True:
            conn, _ = listener.accept()
            with conn:
                request = b""
                while b"\r\n\r\n" not in request:
                    data = conn.recv(4096)
                    if not data:
                        break
                    request += data
                if b"\r\n\r\n" not in request:
                    continue  # a readiness probe
                headers = dict(
                    line.split(b": ", 1) for line in request.split(b"\r\n")[1:] if b": " in line
                )
                key = {k.lower(): v for k, v in headers.items()}[b"sec-websocket-key"]
                accept = accept_key(key.decode()).encode()
                conn.sendall(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
                )
                raw = b"x-raw" in {k.lower() for k in headers}
                for _ in range(mebibytes):
                    conn.sendall(batch)
                conn.sendall(end)
                if not raw:
                    while conn.recv(65536):  # until the client closes
                        pass


@contextmanager
def own_server(mebibytes: int, frame: int = FRAME) -> Iterator[str]:
    port = free_port()
    command = ["--serve", str(port), str(mebibytes), str(frame)]
    proc = subprocess.Popen([sys.executable, "-m", "bench.bench_logs", *command])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def raw_ceiling(url: str) -> float:
    """MB/s of a bare ``recv`` loop on the in-bench stream (no WebSocket parsing)."""
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"GET /apps/bench/logs HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\nX-Raw: 1\r\n\r\n"
        )
        start = time.perf_counter()
        total = 0
        while data := sock.recv(256 * 1024):
            total += len(data)
        return total / MiB / (time.perf_counter() - start)


def sync_rate(url: str, password: str, path: tuple[str, str]) -> float:
    from convox_provider.client.client import ConvoxClient
    from convox_provider.client.resources.streams import BuildLogs

    with ConvoxClient(url, password) as client:
        start = time.perf_counter()
        total = sum(len(chunk) for chunk in BuildLogs(client._driver).logs(*path))
        return total / MiB / (time.perf_counter() - start)


def async_rate(url: str, password: str, path: tuple[str, str]) -> float:
    from convox_provider.client.client import AsyncConvoxClient
    from convox_provider.client.resources.streams import BuildLogs

    async def main() -> float:
        async with AsyncConvoxClient(url, password) as client:
            start = time.perf_counter()
            total = 0
            async for chunk in BuildLogs(client._driver).logs(*path):
                total += len(chunk)
            return total / MiB / (time.perf_counter() - start)

    return asyncio.run(main())


def seed_build_log(url: str, password: str, mebibytes: int) -> tuple[str, str]:
    """Store a log object and attach it to a completed external build; return (app, build)."""
    with httpx.Client(base_url=url, auth=("convox", password), timeout=120) as http:
        body = (_log_lines(MiB) for _ in range(mebibytes))
        http.post("/apps/bench/objects/logs/bench.log", content=body).raise_for_status()
        build = http.post("/apps/bench/builds", data={"external": "true"}).json()
        http.put(
            f"/apps/bench/builds/{build['id']}",
            data={"logs": "object://bench/logs/bench.log", "status": "complete"},
        ).raise_for_status()
    return "bench", str(build["id"])


def main() -> None:
    figures: dict[str, list[float]] = {}

    def record(name: str, value: float) -> None:
        figures.setdefault(name, []).append(value)

    with own_server(OWN_MIB) as url:
        for _ in range(ROUNDS):
            record("raw recv, in-bench server", raw_ceiling(url))
            record("ConvoxClient, in-bench server", sync_rate(url, "pw", ("bench", "B1")))
            record("AsyncConvoxClient, in-bench server", async_rate(url, "pw", ("bench", "B1")))
    with own_server(OWN_MIB // 4, SMALL_FRAME) as url:
        for _ in range(ROUNDS):
            record("ConvoxClient, 1 KiB frames", sync_rate(url, "pw", ("bench", "B1")))
            record("AsyncConvoxClient, 1 KiB frames", async_rate(url, "pw", ("bench", "B1")))
    with emulator("--app", "bench") as rack:
        path = seed_build_log(rack.url, rack.password, EMULATOR_MIB)
        for _ in range(ROUNDS):
            record("ConvoxClient, emulator", sync_rate(rack.url, rack.password, path))
            record("AsyncConvoxClient, emulator", async_rate(rack.url, rack.password, path))
    for name, values in figures.items():
        rate = statistics.median(values)
        verdict = "" if name.startswith("raw") else f"  ({rate / 100:4.2f}x the 100 MiB/s target)"
        print(f"{name:<38}{rate:8.1f} MiB/s{verdict}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
