"""pytest plugin (entry point ``convox_emulator``): fixtures that start a local rack.

``convox_rack`` is a started ``RackEmulator`` with instant timings and fresh state, one per
test; ``convox_rack_factory`` builds more with custom options and stops them after the test.
``convox_airflow`` also points the Airflow connection ``convox_default`` at ``convox_rack`` and
gives ``dag.test()`` the metadata DB it needs; ``convox_airflow.add_rack(conn_id)`` starts one
more rack behind another connection (staging and production, for a pipeline across racks).
With the ini option ``convox_dags_folder`` the plugin isolates Airflow (a temporary
``AIRFLOW_HOME`` with that DAGs folder) before any ``conftest.py`` is loaded.
Importing this module never imports Airflow.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .airflow import ISOLATED, connection_uri, isolate_airflow
from .emulator import RackEmulator

__all__ = ["ConvoxAirflow", "convox_airflow", "convox_rack", "convox_rack_factory"]

_DAGS_FOLDER = "convox_dags_folder"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        _DAGS_FOLDER,
        "DAGs folder of dag.test() (relative to the ini file): Airflow gets a temporary "
        "AIRFLOW_HOME with it before any conftest.py is loaded (convox_airflow fixture)",
        default="",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    folder = early_config.getini(_DAGS_FOLDER)
    if folder and ISOLATED not in os.environ:
        base = early_config.inipath.parent if early_config.inipath else Path.cwd()
        isolate_airflow(base / str(folder))


RackFactory = Callable[..., RackEmulator]


@pytest.fixture
def convox_rack_factory() -> Iterator[RackFactory]:
    """Start ``RackEmulator(**options)`` instances; all are stopped after the test."""
    racks: list[RackEmulator] = []

    def make(**options: Any) -> RackEmulator:
        rack = RackEmulator(**options).start()
        racks.append(rack)
        return rack

    yield make
    for rack in racks:
        rack.stop()


@pytest.fixture
def convox_rack(convox_rack_factory: RackFactory) -> RackEmulator:
    """A started rack with instant timings; password ``password``, URL in ``convox_rack.url``."""
    return convox_rack_factory()


class ConvoxAirflow:
    """What ``convox_airflow`` set up: the racks, and the Airflow connections pointed at them.

    ``rack`` is the first rack (connection ``convox_default``); ``racks`` maps every connection
    id set up so far to its rack.
    """

    def __init__(
        self,
        rack: RackEmulator,
        monkeypatch: pytest.MonkeyPatch,
        factory: RackFactory | None = None,
    ) -> None:
        self.rack = rack
        self.racks: dict[str, RackEmulator] = {}
        self._monkeypatch = monkeypatch
        self._factory = factory

    def connect(self, conn_id: str = "convox_default", rack: RackEmulator | None = None) -> str:
        """Point the Airflow connection ``conn_id`` at ``rack`` (default: the first rack)
        until the test ends."""
        target = self.rack if rack is None else rack
        self._monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", connection_uri(target))
        self.racks[conn_id] = target
        return conn_id

    def add_rack(self, conn_id: str, **options: Any) -> RackEmulator:
        """Start another rack (``RackEmulator`` options; instant timings by default) and point
        the connection ``conn_id`` at it; it is stopped after the test. Each rack has its own
        apps, builds and request log, like two real racks (e.g. ``convox_staging`` and
        ``convox_production`` for a build copied from one to the other)."""
        if self._factory is None:
            raise RuntimeError("add_rack needs the convox_airflow fixture's rack factory")
        if conn_id in self.racks:
            raise ValueError(f"connection {conn_id!r} already points at a rack of this test")
        rack = self._factory(**options)
        self.connect(conn_id, rack)
        return rack


@pytest.fixture(scope="session")
def convox_airflow_db() -> None:
    """A fresh metadata DB in the temporary ``AIRFLOW_HOME`` of :func:`isolate_airflow`."""
    if ISOLATED not in os.environ:
        raise pytest.UsageError(
            "convox_airflow needs an isolated Airflow for dag.test(): set the ini option "
            "convox_dags_folder (e.g. `convox_dags_folder = dags` under [pytest]), or call "
            "convox_provider.testing.airflow.isolate_airflow(<dags folder>) at the top of "
            "conftest.py, before Airflow is imported"
        )
    from airflow.utils import db  # noqa: PLC0415 - the plugin never imports Airflow on load

    db.resetdb()


@pytest.fixture
def convox_airflow(
    convox_airflow_db: None,
    convox_rack: RackEmulator,
    convox_rack_factory: RackFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> ConvoxAirflow:
    """``convox_rack``, with the Airflow connection ``convox_default`` pointed at it (more with
    ``convox_airflow.connect(conn_id)``; another rack with ``convox_airflow.add_rack(conn_id)``)
    and a metadata DB for ``dag.test()``."""
    airflow = ConvoxAirflow(convox_rack, monkeypatch, convox_rack_factory)
    airflow.connect()
    return airflow
