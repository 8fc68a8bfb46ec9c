"""Shared pieces of the operator, sensor and trigger tests (imported by those test modules).

Every test runs the real classes against the rack emulator over HTTP/WebSocket; the Airflow
connection comes from ``AIRFLOW_CONN_CONVOX_DEFAULT`` (no metadata DB) and the task context is a
dict holding a recording task instance.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from convox_provider.sensors._base import ConvoxBaseSensor
from convox_provider.testing import RackEmulator
from convox_provider.triggers._base import ConvoxTrigger

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_APP = ROOT / "demo" / "sample-app"
APP = "demo"
MANIFEST = """\
services:
  web:
    build: .
    port: 3000
"""
FAST = 0.02  # poll interval of every wait in these tests


class RecordingTI:
    """The task instance of a test context: records XCom pushes, in order."""

    def __init__(self, on_push: Callable[[str, Any], None] | None = None) -> None:
        self.pushed: list[tuple[str, Any]] = []
        self._on_push = on_push

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed.append((key, value))
        if self._on_push is not None:
            self._on_push(key, value)

    @property
    def xcoms(self) -> dict[str, Any]:
        return dict(self.pushed)

    def xcom_pull(self, task_ids: str, key: str) -> Any:
        """What this task pushed under ``key`` (a resumed task reads its own XCom)."""
        return self.xcoms[key]


def context(ti: RecordingTI | None = None) -> dict[str, Any]:
    """A task context with a recording task instance under ``ti``."""
    return {"ti": ti or RecordingTI()}


def poke(sensor: ConvoxBaseSensor, ctx: dict[str, Any] | None = None) -> Any:
    """One poke, as ``execute`` runs it: the sensor's client is closed afterwards."""
    with sensor.hook:
        return sensor.poke(ctx or context())


def connect(
    monkeypatch: pytest.MonkeyPatch,
    rack: RackEmulator,
    *,
    password: str = "password",
    conn_id: str = "convox_default",
) -> str:
    """Point ``conn_id`` at ``rack``; the client does not retry, so polls see every fault."""
    value = {
        "conn_type": "convox",
        "host": rack.url,
        "password": password,
        "extra": {"max_retries": 0, "timeout": 5},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(value))
    return conn_id


def seed(rack: RackEmulator, *, releases: int = 1) -> list[str]:
    """App ``demo`` running the newest of ``releases`` promoted releases; ids oldest first."""
    rack.create_app(APP)
    return [rack.add_release(APP, MANIFEST, description=f"r{n}")[1]["id"] for n in range(releases)]


def sample_app(tmp_path: Path) -> Path:
    """A copy of ``demo/sample-app`` (the build reads it; tests never touch the original)."""
    target = tmp_path / "sample-app"
    shutil.copytree(SAMPLE_APP, target, dirs_exist_ok=True)
    return target


def slow_builds(rack: RackEmulator, seconds: float = 30.0, count: int = 1) -> None:
    """The next ``count`` builds take ``seconds`` (they stay ``running`` meanwhile)."""
    for _ in range(count):
        rack.scripts.next_build(duration=seconds)


def run_trigger(trigger: ConvoxTrigger) -> list[dict[str, Any]]:
    """Run a trigger to its end on a fresh event loop; the payloads of every event it yielded."""

    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(collect())


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition`` until it holds (for states the emulator reaches on its own)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)
