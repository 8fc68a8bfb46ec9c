"""Constants and types shared by the end-to-end tests and their fixtures."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from airflow_compat import AIRFLOW_RELEASE

from convox_provider.testing import Timing

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = REPO / "example_dags"
SAMPLE_APP = REPO / "demo" / "sample-app"
MANIFEST = (SAMPLE_APP / "convox.yml").read_text()

#: Seconds between status checks in the DAGs: small, yet every wait polls more than once.
POLL_INTERVAL = 0.1
#: Builds and rollouts take a few polls, so waiting (and deferring) really happens. Airflow 3.1's
#: dag.test() spends more than 0.4 s between two tasks: a rollout that short would be over before
#: the task after the promote first looks (a poke-mode sensor that never saw the rollout start
#: cannot tell a finished rollback from "not promoted yet", and waits for its timeout).
TIMING = Timing(
    build=0.4,
    rollout=0.4 if AIRFLOW_RELEASE >= (3, 3) else 2.0,
    process_start=0.05,
    process_run=0.05,
    app_delete=0.1,
)

MODES = ["sync", "deferrable"]


@dataclass(frozen=True)
class SeededApp:
    """An app created on the rack, running its first release of the sample app."""

    name: str
    build: str
    release: str
