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
#: dag.test() takes about 2 s from one task to the next (3.3: about 0.25 s), so shorter steps
#: would be over before the next task first looks: nothing left to defer, and a poke-mode sensor
#: that never saw the rollout start cannot tell a finished rollback from "not promoted yet", so
#: it waits for its timeout.
_STEP = 0.4 if AIRFLOW_RELEASE >= (3, 3) else 5.0
TIMING = Timing(
    build=_STEP,
    rollout=_STEP,
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
