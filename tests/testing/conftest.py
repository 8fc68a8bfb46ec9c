"""Shared helpers for the emulator's own tests (fixtures come from the convox_emulator plugin)."""

from __future__ import annotations

import base64
import io
import tarfile
from collections.abc import Iterator

import httpx
import pytest

from convox_provider.testing import RackEmulator

MANIFEST = """\
environment:
  - GLOBAL=default
services:
  web:
    build: .
    port: 3000
    command: bin/web
    scale:
      count: 2
  worker:
    build: .
    command: bin/worker
"""


DOCKERFILE = b"FROM scratch\nCOPY . /app\n"


def basic(password: str = "password", user: str = "convox") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def tgz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def rack(convox_rack: RackEmulator) -> RackEmulator:
    return convox_rack


@pytest.fixture
def http(rack: RackEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=rack.url, auth=("convox", "password"), timeout=10) as client:
        yield client


@pytest.fixture
def demo(rack: RackEmulator) -> dict[str, str]:
    """App ``demo`` with a promoted release of MANIFEST; returns its build and release ids."""
    rack.create_app("demo")
    build, release = rack.add_release("demo", MANIFEST, env={"FOO": "bar"}, description="seed")
    return {"build": build["id"], "release": release["id"]}
