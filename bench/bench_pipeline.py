"""A whole deploy on the rack emulator, sync and deferred: our wall time against the rack's own.

``ConvoxDeployOperator`` at its default settings (poll interval, follow_logs, timeouts) deploys
``demo/sample-app`` to an emulated rack (a child process, 127.0.0.1 only) whose builds run
``--build`` seconds and whose rollouts take ``--rollout`` seconds (3 s each by default, the
figures of issue 12 and DESIGN.md). Two modes, each ``--rounds`` times in one run:

* ``sync``: ``execute()`` on the worker: upload, build (log followed), promote, rollout wait;
* ``deferred``: ``execute()`` until it defers, the build trigger's ``run()`` on a fresh event
  loop, ``build_complete()`` until it defers again, the rollout trigger's ``run()``, then
  ``execute_complete()``: what ``dag.test()`` does, so the figure includes everything but
  Airflow's own scheduling latency (the scheduler and triggerer hand-offs are not in it).

The rack's time is what the emulator spent: the build's ``started`` to ``ended`` (its record)
plus the rollout, which the emulator holds ``updating`` for exactly ``--rollout`` seconds.
Overhead is wall minus rack; the target (DESIGN.md) is overhead <= 2 s, success never early.
``--trace`` prints every request of the last sync round with its time from the start, which is
how the time of a deploy was found to go (initial delays, poll intervals, confirmation).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench._rack import Rack, emulator

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_APP = ROOT / "demo" / "sample-app"
APP = "demo"
BUILD_SECONDS = 3.0
ROLLOUT_SECONDS = 3.0
ROUNDS = 1
MODES = ("sync", "deferred")


def _seconds(stamp: str) -> float:
    """Epoch seconds of the rack's RFC 3339 time (nanoseconds cut to microseconds)."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    parsed = datetime.fromisoformat(whole + "+00:00").timestamp()
    return parsed + (float(f"0.{fraction}") if fraction else 0.0)


def rack_seconds(rack: Rack, release_id: str, rollout: float) -> float:
    """What the rack spent: the build of ``release_id`` from its ``started`` to its ``ended``
    (the emulator's record), plus the rollout, which the emulator holds ``updating`` for
    exactly ``rollout`` seconds from the promote's arrival."""
    with httpx.Client(base_url=rack.url, auth=("convox", rack.password), timeout=10) as http:
        build_id = http.get(f"/apps/{APP}/releases/{release_id}").json()["build"]
        build = http.get(f"/apps/{APP}/builds/{build_id}").json()
    return _seconds(build["ended"]) - _seconds(build["started"]) + rollout


class Trace:
    """When each request was sent, from the start of the round (sync driver and async one)."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.requests: list[tuple[float, str, str]] = []

    def note(self, method: str, path: str) -> None:
        self.requests.append((time.monotonic() - self.start, method, path))


def _instrument(trace_of: Callable[[], Trace]) -> None:
    from convox_provider.client import transport

    sync_transmit = transport.SyncDriver.transmit
    async_transmit = transport.AsyncDriver.transmit

    def timed(self: Any, call: Any) -> Any:
        trace_of().note(call.method, call.path)
        return sync_transmit(self, call)

    async def timed_async(self: Any, call: Any) -> Any:
        trace_of().note(call.method, call.path)
        return await async_transmit(self, call)

    transport.SyncDriver.transmit = timed  # type: ignore[method-assign]
    transport.AsyncDriver.transmit = timed_async  # type: ignore[method-assign]


def deploy(mode: str, source: Path) -> str:
    """One deploy in ``mode``; the release id."""
    from convox_provider.operators.builds import ConvoxDeployOperator

    class TI:
        def xcom_push(self, key: str, value: Any) -> None:
            pass

    context: Any = {"ti": TI()}
    op = ConvoxDeployOperator(
        task_id="deploy",
        app=APP,
        source_dir=str(source),
        deferrable=mode == "deferred",
        durable=False,  # every round a new build, not the previous round's re-attached
    )
    if mode == "sync":
        return str(op.execute(context))
    from airflow.sdk.exceptions import TaskDeferred

    try:
        op.execute(context)
        raise RuntimeError("the deploy did not defer its build")
    except TaskDeferred as deferred:
        built = _run_trigger(deferred.trigger)
    try:
        op.build_complete(context, event=built)
        raise RuntimeError("the deploy did not defer its rollout")
    except TaskDeferred as deferred:
        rolled_out = _run_trigger(deferred.trigger)
    return str(op.execute_complete(context, event=rolled_out))


def _run_trigger(trigger: Any) -> dict[str, Any]:
    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise RuntimeError("the trigger yielded nothing")

    return asyncio.run(first())


def measure(
    rack: Rack, rounds: int, rollout: float, trace: bool
) -> dict[str, list[tuple[float, float]]]:
    """(wall, rack) seconds per round and mode."""
    current = [Trace()]
    _instrument(lambda: current[0])
    logging.getLogger("airflow").setLevel(logging.ERROR)  # the task log would drown the table
    results: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "sample-app"
        shutil.copytree(SAMPLE_APP, source)
        deploy("sync", source)  # warm-up: imports, connection, first build cache
        for _ in range(rounds):
            for mode in MODES:
                current[0] = Trace()
                started = time.monotonic()
                release_id = deploy(mode, source)
                wall = time.monotonic() - started
                results[mode].append((wall, rack_seconds(rack, release_id, rollout)))
                if trace and mode == "sync":
                    last = current[0]
        if trace:
            for at, method, path in last.requests:
                print(f"    {at:7.2f}s {method:6} {path}")
    return results


def report(results: dict[str, list[tuple[float, float]]], build: float, rollout: float) -> None:
    """Print every round and the medians, side by side."""
    print(
        f"deploy of demo/sample-app, rack build {build:g} s + rollout {rollout:g} s, default"
        " settings (deferred: triggers and resumes run in-process, no scheduler latency)"
    )
    print(f"  {'mode':<10}{'round':>6}{'wall (s)':>10}{'rack (s)':>10}{'ratio':>8}{'overhead':>10}")
    for mode, rows in results.items():
        for index, (wall, rack) in enumerate(rows, 1):
            print(
                f"  {mode:<10}{index:>6}{wall:>10.2f}{rack:>10.2f}{wall / rack:>7.2f}x"
                f"{wall - rack:>9.2f}s"
            )
        wall = statistics.median(w for w, _ in rows)
        rack = statistics.median(r for _, r in rows)
        verdict = "met" if wall - rack <= 2.0 else "MISSED"
        print(
            f"  {mode:<10}{'median':>6}{wall:>10.2f}{rack:>10.2f}{wall / rack:>7.2f}x"
            f"{wall - rack:>9.2f}s  target overhead <= 2 s: {verdict}"
        )


def main(argv: Sequence[str] | None = None) -> dict[str, list[tuple[float, float]]]:
    """Start the emulator, deploy in both modes, print the figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_pipeline", description=__doc__)
    parser.add_argument("--build", type=float, default=BUILD_SECONDS, help="rack build seconds")
    parser.add_argument("--rollout", type=float, default=ROLLOUT_SECONDS, help="rollout seconds")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="deploys per mode")
    parser.add_argument("--trace", action="store_true", help="print the last sync round's calls")
    args = parser.parse_args([] if argv is None else argv)
    home = tempfile.mkdtemp(prefix="bench-pipeline-airflow-")
    timings = ["--build-seconds", str(args.build), "--rollout-seconds", str(args.rollout)]
    try:
        with emulator(*timings, "--app", APP) as rack:
            os.environ.setdefault("AIRFLOW_HOME", home)
            os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
            os.environ["AIRFLOW_CONN_CONVOX_DEFAULT"] = json.dumps(
                {"conn_type": "convox", "host": rack.url, "password": rack.password}
            )
            results = measure(rack, args.rounds, args.rollout, args.trace)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    report(results, args.build, args.rollout)
    return results


if __name__ == "__main__":
    main(__import__("sys").argv[1:])
