"""Fixtures for the Airflow side: connections from ``AIRFLOW_CONN_*``, no metadata DB."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from convox_support import connect, seed

from convox_provider.client.client import ConvoxClient
from convox_provider.hooks.convox import shared_async_clients
from convox_provider.testing import RackEmulator


@pytest.fixture
def set_connection(monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Define a connection in the environment: a URI string, or the fields of a JSON one."""

    def define(value: str | dict[str, Any], conn_id: str = "convox_default") -> str:
        if not isinstance(value, str):
            value = json.dumps({"conn_type": "convox", **value})
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", value)
        return conn_id

    return define


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(autouse=True)
def _no_leaked_async_clients() -> Iterator[None]:
    yield
    assert shared_async_clients() == 0, "a test left a shared async client open"


@pytest.fixture
def rack(convox_rack: RackEmulator, monkeypatch: pytest.MonkeyPatch) -> RackEmulator:
    """The rack of ``convox_default``, with app ``demo`` seeded (modules override it when they
    need other timings or releases)."""
    connect(monkeypatch, convox_rack)
    seed(convox_rack)
    return convox_rack


@pytest.fixture
def client(rack: RackEmulator) -> Iterator[ConvoxClient]:
    """A client of the test's ``rack``, to set the scene or check it."""
    with ConvoxClient(rack.url, "password") as client:
        yield client
