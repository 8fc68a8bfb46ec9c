"""Start the bundled rack emulator in a child process, so it never competes for our GIL."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Rack:
    url: str
    password: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def emulator(*extra: str) -> Iterator[Rack]:
    """Run ``python -m convox_provider.testing`` on a free port until the block ends."""
    port = free_port()
    password = secrets.token_hex(16)
    command = ["-m", "convox_provider.testing", "--port", str(port), "--password", password]
    with _serving([*command, *extra], port) as url:
        yield Rack(url, password)


@contextmanager
def canned_server() -> Iterator[Rack]:
    """Run the canned-answer server of :mod:`bench._canned` (any password is accepted)."""
    port = free_port()
    with _serving(["-m", "bench._canned", str(port)], port, probe="/apps/bench") as url:
        yield Rack(url, "canned-password")


@contextmanager
def _serving(args: list[str], port: int, probe: str = "/check") -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(f"{url}{probe}", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"emulator did not start: {err[-2000:]}")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
