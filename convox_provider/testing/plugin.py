"""pytest plugin (entry point ``convox_emulator``): fixtures that start a local rack.

``convox_rack`` is a started ``RackEmulator`` with instant timings and fresh state, one per
test; ``convox_rack_factory`` builds more with custom options and stops them after the test.
Importing this module never imports Airflow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .emulator import RackEmulator

__all__ = ["convox_rack", "convox_rack_factory"]

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
