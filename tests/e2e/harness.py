"""Constants and types shared by the end-to-end tests and their fixtures."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from convox_provider.testing import Timing

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = REPO / "example_dags"
SAMPLE_APP = REPO / "demo" / "sample-app"
MANIFEST = (SAMPLE_APP / "convox.yml").read_text()

#: Seconds between status checks in the DAGs: small, yet every wait polls more than once.
POLL_INTERVAL = 0.1
#: Builds and rollouts take a few polls, so waiting (and deferring) really happens.
TIMING = Timing(build=0.4, rollout=0.4, process_start=0.05, process_run=0.05, app_delete=0.1)

MODES = ["sync", "deferrable"]


@dataclass(frozen=True)
class SeededApp:
    """An app created on the rack, running its first release of the sample app."""

    name: str
    build: str
    release: str
