"""What the scenarios share: the rack's timings, triggering and watching DAG runs over REST.

Every scenario deploys its own app, so runs overlap freely on one Airflow. A background
:class:`Watcher` samples the API's deferred task instances for the whole session: which tries were
``deferred``, their trigger and the triggerer that held it — states that last seconds and would be
missed by a test looking only at the end.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

from convox_provider.testing import RackEmulator, Timing

from .cluster import Airflow, wait_until

REPO = Path(__file__).resolve().parents[2]
MANIFEST = (REPO / "demo" / "sample-app" / "convox.yml").read_text()

#: Seconds between status checks in the DAGs (``CONVOX_POLL_INTERVAL``).
POLL_INTERVAL = 0.5
#: Long enough that every deferrable wait really defers (a task starts 1-2 s after the one
#: before it) and outlasts the supervisor's late report of the deferral (see cluster.py,
#: MIN_HEARTBEAT_INTERVAL) even on a loaded 2-core machine; short enough to keep the run short.
TIMING = Timing(build=8.0, rollout=6.0, process_start=0.2, process_run=0.2, app_delete=0.1)

SYSTEM_DAGS = [
    "sys_deploy_sync",
    "sys_deploy_deferred",
    "sys_guarded_deferred",
    "sys_migrate_deferred",
    "sys_rollback_deferred",
    "sys_rotation_deferred",
    "sys_review_deferred",
    "sys_migrate_retried",
    "sys_celery_deploy_deferred",
    "sys_celery_migrate_retried",
    "sys_deploy_many",
]
TERMINAL = {"success", "failed"}

_app_numbers = itertools.count(1)
_logical_dates = itertools.count(1)


@dataclass
class Run:
    dag_id: str
    run_id: str
    app: str
    triggered: float
    state: str = "queued"
    finished: float | None = None

    @property
    def path(self) -> str:
        return f"/dags/{self.dag_id}/dagRuns/{self.run_id}"


@dataclass
class Deferral:
    """One deferred try as the watcher saw it."""

    trigger_ids: set[int] = field(default_factory=set)
    triggerers: set[int] = field(default_factory=set)
    kwargs: list[Any] = field(default_factory=list)
    first_seen: float = 0.0
    last_seen: float = 0.0


class Watcher(threading.Thread):
    """Samples ``GET /dags/~/dagRuns/~/taskInstances?state=deferred`` every ``interval`` s."""

    def __init__(self, airflow: Airflow, interval: float = 0.5) -> None:
        super().__init__(name="deferred-watcher", daemon=True)
        self.airflow = airflow
        self.interval = interval
        self.seen: dict[tuple[str, str, str, int], Deferral] = defaultdict(Deferral)
        #: Every triggerer (job id) seen holding each trigger (id).
        self.holders: dict[int, set[int]] = defaultdict(set)
        #: The most task instances seen deferred at once.
        self.peak = 0
        self._stop = threading.Event()
        self._lock = threading.RLock()

    def run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                page = self.airflow.api.get(
                    "/dags/~/dagRuns/~/taskInstances", state="deferred", limit=200
                )
            except Exception:  # the api-server may be busy: sample again
                continue
            now = time.monotonic()
            with self._lock:
                self.peak = max(self.peak, len(page["task_instances"]))
                for ti in page["task_instances"]:
                    key = (ti["dag_id"], ti["dag_run_id"], ti["task_id"], ti["try_number"])
                    seen = self.seen[key]
                    seen.first_seen = seen.first_seen or now
                    seen.last_seen = now
                    trigger = ti.get("trigger") or {}
                    if trigger.get("id") is not None:
                        seen.trigger_ids.add(trigger["id"])
                        if trigger.get("kwargs") not in seen.kwargs:
                            seen.kwargs.append(trigger.get("kwargs"))
                    if trigger.get("triggerer_id") is not None:
                        seen.triggerers.add(trigger["triggerer_id"])
                        self.holders[trigger["id"]].add(trigger["triggerer_id"])

    def deferred(self, run: Run) -> dict[str, Deferral]:
        """``{task_id: Deferral}`` of every try of ``run`` seen deferred."""
        with self._lock:
            return {
                task: value
                for (dag, run_id, task, _try), value in self.seen.items()
                if dag == run.dag_id and run_id == run.run_id
            }

    def holders_of(self, run: Run) -> dict[int, set[int]]:
        """``{trigger id: {triggerer job ids seen holding it}}`` for every trigger of ``run``."""
        with self._lock:
            triggers = {t for d in self.deferred(run).values() for t in d.trigger_ids}
            return {t: set(self.holders[t]) for t in triggers}

    def reset_peak(self) -> None:
        with self._lock:
            self.peak = 0

    def stop(self) -> None:
        self._stop.set()


class Harness:
    """Triggers runs through the REST API and reads back what Airflow and the rack recorded."""

    def __init__(self, airflow: Airflow, rack: RackEmulator, secret: str) -> None:
        self.airflow = airflow
        #: The credential the env-rotation DAG writes: it must show nowhere in Airflow.
        self.secret = secret
        self.api = airflow.api
        self.rack = rack
        self.watcher = Watcher(airflow)
        #: The releases each app was seeded with, oldest first.
        self.seeds: dict[str, list[str]] = {}

    def wait_for_dags(self) -> None:
        """Until the dag-processor has serialised every system DAG; then unpause them."""

        def parsed() -> bool:
            self.airflow.check_alive()
            errors = self.api.get("/importErrors")
            assert errors["total_entries"] == 0, errors
            found = {d["dag_id"] for d in self.api.get("/dags", limit=100)["dags"]}
            return set(SYSTEM_DAGS) <= found

        wait_until(parsed, timeout=120, interval=1, what="system DAGs parsed")
        for dag_id in SYSTEM_DAGS:
            self.api.patch(f"/dags/{dag_id}", {"is_paused": False})
        self.watcher.start()

    # --- the rack ------------------------------------------------------------------------------

    def new_app(self, prefix: str, releases: int = 1, *, create: bool = True) -> str:
        """An app name; unless ``create`` is False, the app, with ``releases`` promoted."""
        name = f"{prefix}-{next(_app_numbers)}"
        if not create:
            self.seeds[name] = []
            return name
        self.rack.create_app(name)
        self.seeds[name] = [
            self.rack.add_release(name, MANIFEST, description=f"seed {number + 1}")[1]["id"]
            for number in range(releases)
        ]
        return name

    def new_builds(self, app: str) -> list[dict[str, Any]]:
        """The builds of ``app`` other than those it was seeded with."""
        return [b for b in self.rack.builds(app) if b.get("release") not in self.seeds[app]]

    def builds_posted(self, app: str) -> int:
        return self.rack.requests.count("POST", f"/apps/{app}/builds")

    def promotes_posted(self, app: str) -> int:
        return self.rack.requests.count("POST", f"/apps/{app}/releases/*/promote")

    # --- runs ----------------------------------------------------------------------------------

    def trigger(self, dag_id: str, app: str, *, logical_date: bool = True, **conf: Any) -> Run:
        """``POST /dags/{dag_id}/dagRuns`` for ``app``, with a logical date or ``null``."""
        when = None
        if logical_date:
            stamp = datetime(2026, 6, 1, tzinfo=timezone.utc) + timedelta(
                minutes=next(_logical_dates)
            )
            when = stamp.isoformat()
        body = {"logical_date": when, "conf": {"app": app, **conf}}
        answer = self.api.post(f"/dags/{dag_id}/dagRuns", body)
        return Run(dag_id, answer["dag_run_id"], app, time.monotonic())

    def poll(self, runs: list[Run]) -> None:
        """Refresh the state of ``runs``: one list call per DAG, so polling many runs stays
        cheap for the api-server (which also serves every task's Execution API calls)."""
        for dag_id in sorted({run.dag_id for run in runs}):
            page = self.api.get(f"/dags/{dag_id}/dagRuns", limit=100)
            states = {r["dag_run_id"]: r["state"] for r in page["dag_runs"]}
            for run in runs:
                if run.dag_id == dag_id and run.run_id in states:
                    run.state = states[run.run_id]
                    if run.state in TERMINAL and run.finished is None:
                        run.finished = time.monotonic()

    def wait(self, *runs: Run, timeout: float = 180) -> None:
        """Until every run is finished (success or failed), polling them all together."""
        deadline = time.monotonic() + timeout
        while pending := [run for run in runs if run.state not in TERMINAL]:
            self.airflow.check_alive()
            if time.monotonic() > deadline:
                states = {run.run_id: self.task_states(run) for run in pending}
                raise TimeoutError(f"runs not finished within {timeout:.0f} s: {states}")
            try:
                self.poll(pending)
            except httpx.TimeoutException:  # a busy api-server: ask again
                continue
            if any(run.state not in TERMINAL for run in pending):
                time.sleep(1)

    def task_instances(self, run: Run) -> dict[str, dict[str, Any]]:
        page = self.api.get(f"{run.path}/taskInstances", limit=100)
        return {ti["task_id"]: ti for ti in page["task_instances"]}

    def explain(self, run: Run) -> str:
        """Why ``run`` ended as it did: task states, the failed tries' log tails and what the
        scheduler said about them (for assertion messages)."""
        lines = [f"{run.dag_id} {run.run_id} ({run.app}): {run.state}"]
        for task_id, ti in self.task_instances(run).items():
            lines.append(f"  {task_id}: {ti['state']} (try {ti['try_number']})")
            if ti["state"] == "failed":
                for attempt in range(1, (ti["try_number"] or 0) + 1):
                    tail = self.log_text(run, task_id, attempt).splitlines()[-12:]
                    lines += [f"    try {attempt}| {line[:300]}" for line in tail]
        scheduler = self.airflow.logs / "scheduler.log"
        lines += [
            f"  scheduler| {line[:400]}"
            for line in scheduler.read_text(errors="replace").splitlines()
            if run.run_id in line and ("error" in line or "FAILED" in line)
        ]
        return "\n".join(lines)

    def task_states(self, run: Run) -> dict[str, str | None]:
        return {task: ti["state"] for task, ti in self.task_instances(run).items()}

    def xcom(self, run: Run, task_id: str) -> dict[str, Any]:
        """``{key: value}`` of every XCom ``task_id`` pushed in ``run``."""
        base = f"{run.path}/taskInstances/{task_id}/xcomEntries"
        keys = [entry["key"] for entry in self.api.get(base)["xcom_entries"]]
        return {key: self.api.get(f"{base}/{key}", deserialize=True)["value"] for key in keys}

    def log(self, run: Run, task_id: str, try_number: int) -> list[dict[str, Any]]:
        """The task log of one try as structured events (``event``, ``timestamp``, ...)."""
        answer = self.api.request(
            "GET",
            f"{run.path}/taskInstances/{task_id}/logs/{try_number}",
            params={"full_content": True},
            headers={"Accept": "application/json"},
        )
        answer.raise_for_status()
        content = answer.json()["content"]
        return [line if isinstance(line, dict) else {"event": str(line)} for line in content]

    def resume_latencies(self, run: Run, task_id: str, try_number: int = 1) -> list[float]:
        """Seconds from each "Trigger fired event" in the task's log to the first line its
        resumed runner wrote: the scheduler, executor and task start-up after a deferral."""
        events = self.log(run, task_id, try_number)
        stamps = [
            (datetime.fromisoformat(str(e["timestamp"]).replace("Z", "+00:00")), e)
            for e in events
            if e.get("timestamp")
        ]
        latencies = []
        for when, event in stamps:
            if event.get("event") != "Trigger fired event":
                continue
            after = [t for t, e in stamps if t > when and e.get("logger") == "task"]
            if after:
                latencies.append(round((min(after) - when).total_seconds(), 2))
        return latencies

    def trigger_kwargs(self, trigger_id: int) -> str:
        """The trigger row's kwargs (serde JSON) as the triggerer reads them, from the metadata
        DB: the API no longer shows them. Airflow 3.3 stores a deferral's kwargs unencrypted."""
        import psycopg2
        from cryptography.fernet import Fernet

        url = self.airflow.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("+psycopg2", "")
        with psycopg2.connect(url) as db, db.cursor() as cursor:
            cursor.execute("SELECT kwargs FROM trigger WHERE id = %s", (trigger_id,))
            (encrypted,) = cursor.fetchone()
        if encrypted.startswith("{"):
            return str(encrypted)
        fernet = Fernet(self.airflow.env["AIRFLOW__CORE__FERNET_KEY"].encode())
        return fernet.decrypt(encrypted.encode()).decode()

    def log_text(self, run: Run, task_id: str, try_number: int) -> str:
        return "\n".join(
            str(event.get("event", "")) for event in self.log(run, task_id, try_number)
        )
