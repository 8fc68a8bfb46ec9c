"""1,000 deferred waits in one event loop: memory and TCP connections, shared client vs one each.

What a triggerer does with many deferred Convox tasks: the real ``ConvoxBuildTrigger`` and
``ConvoxReleaseTrigger`` ``run()`` generators, half waiting for builds and half for rollouts,
all polling the rack emulator (a child process, 127.0.0.1 only) whose builds and rollouts last an
hour, so no wait ends during the measurement. The connection comes from
``AIRFLOW_CONN_*`` (no metadata DB). Two scenarios, each in a fresh child process so their RSS
figures do not bleed into each other:

* ``shared``: every trigger uses connection ``convox_default``, hence the hook's ONE shared
  ``AsyncConvoxClient`` (what the provider does);
* ``per-trigger``: trigger ``i`` uses its own connection id ``convox_w<i>`` (same settings), hence
  its own client and connection pool: the naive design, as a baseline.

Measured per scenario: extra RSS (peak while all waits poll, minus RSS just before the triggers
were created, after every import), TCP connects (counted in httpcore's network backend, so every
connection the clients opened), and the peak of concurrently ESTABLISHED client sockets to the
emulator's port (``/proc/net/tcp``, which also sees WebSockets), and the poll rate. Targets
(issue 5 item 8, DESIGN.md): extra RSS <= 50 MB, connections <= the pool size and >= 95% of the
nominal poll rate for the shared client.

The poll rate is measured per wait: the mean time from one poll of a wait's build or app to its
next (when the wait asked for it, i.e. entered the driver), against the poll interval. The
requests counted in the window are shown too, but their rate is no measure of it: the waits all
start together and poll in bursts, so a window of two intervals holds two bursts or nearly
three depending on where their edges fall (83% to 115% seen for the same client).

Build triggers run with ``follow_logs=False``, the polling-only mode meant for many concurrent
waits (``--follow-logs`` measures the other: one log WebSocket per waiting build).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from bench._rack import Rack, emulator

WAITS = 1000
#: Seconds between polls. 1,000 waits at the triggers' default 5 s ask for ~300 requests/s
#: (a build wait also checks its pod), more than this emulator and one Python client serve on a
#: 2-core machine; 15 s (~100/s) keeps the machine out of the figures.
POLL_INTERVAL = 15.0
#: Poll cycles measured once every wait has polled at least once.
CYCLES = 2
#: Seconds each child may take in all (setup, ramp-up, measurement, teardown).
CHILD_TIMEOUT = 240.0
#: Seconds the waits may take until each has polled once.
RAMP_TIMEOUT = 90.0
HOUR = "3600"
SCENARIOS = ("shared", "per-trigger")
#: ``--bounded N``: a what-if, the shared client with a prototype of a bounded pool (see below).
BOUNDED = "bounded"
MB = 1024 * 1024


# --- parent: the rack, the builds and rollouts to wait for, the report --------------------------


def _source() -> bytes:
    """A minimal build context: a convox.yml and a Dockerfile, as a .tgz."""
    files = {
        "convox.yml": b"services:\n  web:\n    build: .\n    port: 3000\n",
        "Dockerfile": b"FROM scratch\n",
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def prepare(rack: Rack, apps: Sequence[str]) -> list[dict[str, str]]:
    """Per app: one running build and one release rolling out; returns what to wait for."""
    from convox_provider.client.client import ConvoxClient

    source = _source()
    waits: list[dict[str, str]] = []
    with ConvoxClient(rack.url, rack.password) as client:
        for app in apps:
            url = client.objects.store(app, "tmp/bench-waits.tgz", source).url
            build = client.builds.create(app, url, description="bench_waits")
            (seeded,) = client.releases.list(app, limit=1)
            release = client.releases.create(app, build=seeded.build, description="bench_waits")
            client.releases.submit_promote(app, release.id)
            waits.append({"kind": "build", "app": app, "id": build.id})
            waits.append({"kind": "release", "app": app, "id": release.id})
        for app in apps:  # the premise: nothing can end while we measure
            state = client.apps.get(app).status, client.builds.list(app, limit=1)[0].status
            if state != ("updating", "running"):
                raise RuntimeError(
                    f"app {app}: expected a rollout and a running build, got {state}"
                )
    return waits


def run_child(
    rack: Rack,
    waits_file: Path,
    scenario: str,
    *,
    poll_interval: float,
    follow_logs: bool,
    bounded: int,
) -> dict[str, Any]:
    """Measure one scenario in a fresh interpreter; returns its figures."""
    home = tempfile.mkdtemp(prefix="bench-waits-airflow-")
    env = {
        **os.environ,
        "AIRFLOW_HOME": home,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "BENCH_RACK_URL": rack.url,
        "BENCH_RACK_PASSWORD": rack.password,
    }
    command = [
        sys.executable,
        "-m",
        "bench.bench_waits",
        "--child",
        scenario,
        "--waits-file",
        str(waits_file),
        "--poll-interval",
        str(poll_interval),
        "--bounded",
        str(bounded),
    ]
    if follow_logs:
        command.append("--follow-logs")
    try:
        done = subprocess.run(
            command,
            env=env,
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT,
            check=False,
            cwd=Path(__file__).resolve().parent.parent,
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"scenario {scenario} failed (exit {done.returncode}):\n{done.stderr[-4000:]}"
        )
    figures: dict[str, Any] = json.loads(lines[-1])
    return figures


def report(results: dict[str, dict[str, Any]], waits: int) -> None:
    """Print the scenarios side by side, with ratios to the shared client and the targets."""
    shared = results["shared"]
    for figures in results.values():
        figures["window_rate_percent"] = (
            100 * figures["requests_per_second"] / figures["nominal_requests_per_second"]
        )
    rows = [
        ("async clients", "clients", "{:.0f}"),
        ("extra RSS (MB)", "extra_rss_mb", "{:.1f}"),
        ("extra RSS per wait (KB)", "extra_rss_kb_per_wait", "{:.1f}"),
        ("TCP connects of the pools", "tcp_connects", "{:.0f}"),
        ("peak ESTABLISHED sockets", "peak_established", "{:.0f}"),
        ("pool size (max connections)", "pool_max_connections", "{}"),
        ("pool keep-alive connections", "pool_max_keepalive", "{}"),
        ("requests during measurement", "requests_measured", "{:.0f}"),
        ("requests per second", "requests_per_second", "{:.0f}"),
        ("  nominal for these waits", "nominal_requests_per_second", "{:.0f}"),
        ("  in the window, % of nominal", "window_rate_percent", "{:.1f}"),
        ("mean poll period per wait (s)", "mean_poll_period", "{:.2f}"),
        ("poll rate, % of nominal", "poll_rate_percent", "{:.1f}"),
        ("shortest gap at the rack (s)", "shortest_gap_at_rack", "{:.2f}"),
        ("seconds until all had polled", "ramp_seconds", "{:.1f}"),
    ]
    titles = {
        "shared": "shared client",
        "per-trigger": "client per trigger",
        BOUNDED: f"bounded {shared.get('bounded') or results.get(BOUNDED, {}).get('bounded')}",
    }
    print(
        f"{waits} concurrent deferred waits in one event loop (poll every "
        f"{shared['poll_interval']:g} s, {shared['measured_seconds']:.0f} s measured)"
    )
    header = "".join(f"{titles[name]:>20}" for name in results)
    print(f"  {'':<30}{header}{'per-trigger/shared':>20}")
    for label, key, fmt in rows:
        cells = "".join(f"{fmt.format(figures.get(key)):>20}" for figures in results.values())
        a, b = shared.get(key), results["per-trigger"].get(key)
        numeric = isinstance(a, (int, float)) and isinstance(b, (int, float))
        ratio = f"{b / a:19.1f}x" if numeric and a and b is not None else ""
        print(f"  {label:<30}{cells}{ratio}")
    pool = shared["pool_max_connections"]
    verdicts = [
        ("extra RSS <= 50 MB", shared["extra_rss_mb"] <= 50),
        ("concurrent connections <= pool size", shared["peak_established"] <= (pool or 0)),
        ("connections opened <= pool size", shared["tcp_connects"] <= (pool or 0)),
        ("poll rate >= 95% of nominal", shared["poll_rate_percent"] >= 95),
    ]
    for target, met in verdicts:
        print(f"  target {target} (shared client): {'met' if met else 'MISSED'}")
    for name, figures in results.items():
        if figures["ended_early"]:
            print(
                f"  WARNING {name}: {figures['ended_early']} waits ended early: {figures['events']}"
            )


def main(argv: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Run both scenarios against one emulator and print the comparison."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_waits", description=__doc__)
    parser.add_argument("--waits", type=int, default=WAITS, help="concurrent waits (even)")
    parser.add_argument("--poll-interval", type=float, default=POLL_INTERVAL)
    parser.add_argument("--follow-logs", action="store_true", help="build triggers follow logs")
    parser.add_argument(
        "--bounded",
        type=int,
        default=0,
        metavar="N",
        help="also measure the shared client with a prototype bounded pool of N connections",
    )
    args = parser.parse_args([] if argv is None else argv)
    apps = [f"w{i:04d}" for i in range(max(1, args.waits // 2))]
    seed = [arg for app in apps for arg in ("--app", app)]
    timings = ["--build-seconds", HOUR, "--rollout-seconds", HOUR, "--reap-seconds", HOUR]
    with emulator(*timings, *seed) as rack, tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        waits = prepare(rack, apps)
        print(f"(set up {len(waits)} builds and rollouts in {time.perf_counter() - started:.1f} s)")
        waits_file = Path(tmp) / "waits.json"
        waits_file.write_text(json.dumps(waits))
        scenarios = [*SCENARIOS, BOUNDED] if args.bounded else list(SCENARIOS)
        results = {
            scenario: run_child(
                rack,
                waits_file,
                scenario,
                poll_interval=args.poll_interval,
                follow_logs=args.follow_logs,
                bounded=args.bounded,
            )
            for scenario in scenarios
        }
    report(results, len(waits))
    return results


# --- child: one scenario, one event loop ----------------------------------------------------------


@dataclass
class Counters:
    """What the patched network layer saw."""

    connects: int = 0
    requests: int = 0
    paths: set[str] = field(default_factory=set)
    #: path -> when each request of it was asked for (entered the driver) and sent (httpx)
    asked: dict[str, list[float]] = field(default_factory=dict)
    sent: dict[str, list[float]] = field(default_factory=dict)


def rss_bytes() -> int:
    """This process's resident set size."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def established_to(port: int) -> int:
    """ESTABLISHED IPv4/IPv6 sockets whose remote end is ``port`` (the clients' side)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as lines:
                next(lines)
                for line in lines:
                    fields = line.split()
                    if fields[3] == "01" and int(fields[2].rsplit(":", 1)[1], 16) == port:
                        count += 1
        except FileNotFoundError:
            continue
    return count


def _instrument(counters: Counters) -> None:
    """Count every TCP connect (httpcore's backend) and every request (httpx), and time them."""
    import httpx
    from httpcore._backends import auto

    from convox_provider.client import transport

    connect_tcp = auto.AutoBackend.connect_tcp
    send = httpx.AsyncClient.send
    transmit = transport.AsyncDriver.transmit

    async def counting_connect(self: Any, *args: Any, **kwargs: Any) -> Any:
        stream = await connect_tcp(self, *args, **kwargs)
        counters.connects += 1
        return stream

    async def counting_send(self: httpx.AsyncClient, request: httpx.Request, **kw: Any) -> Any:
        counters.requests += 1
        counters.paths.add(request.url.path)
        counters.sent.setdefault(request.url.path, []).append(time.monotonic())
        return await send(self, request, **kw)

    async def timed_transmit(self: transport.AsyncDriver, call: Any) -> httpx.Response:
        counters.asked.setdefault(call.path, []).append(time.monotonic())
        return await transmit(self, call)

    auto.AutoBackend.connect_tcp = counting_connect  # type: ignore[method-assign]
    httpx.AsyncClient.send = counting_send  # type: ignore[method-assign]
    transport.AsyncDriver.transmit = timed_transmit  # type: ignore[method-assign]


def _pool_limits() -> tuple[int | None, int | None]:
    """max_connections and max_keepalive_connections of one shared client's pool."""
    from convox_provider.hooks.convox import _SHARED

    for shared in list(_SHARED.values()):
        pool = getattr(getattr(shared.client._driver.http, "_transport", None), "_pool", None)
        if pool is not None:
            return pool._max_connections, pool._max_keepalive_connections
    return None, None


async def measure(
    scenario: str, waits: list[dict[str, str]], poll_interval: float, follow_logs: bool
) -> dict[str, Any]:
    """Start every wait, let them all poll, measure, cancel them; return the figures."""
    from convox_provider.hooks.convox import ConvoxHook, shared_async_clients
    from convox_provider.triggers.builds import ConvoxBuildTrigger
    from convox_provider.triggers.releases import ConvoxReleaseTrigger

    counters = Counters()
    _instrument(counters)
    port = int(os.environ["BENCH_RACK_URL"].rsplit(":", 1)[1])
    end_time = time.time() + 3600
    # A wait is under way once it polled its build or app; a build following its log instead
    # holds a WebSocket until the build ends and polls only then (it shows in /proc/net/tcp).
    targets = {
        f"/apps/{w['app']}/builds/{w['id']}" if w["kind"] == "build" else f"/apps/{w['app']}"
        for w in waits
        if not (follow_logs and w["kind"] == "build")
    }
    log_streams = sum(1 for w in waits if follow_logs and w["kind"] == "build")
    events: list[dict[str, Any]] = []

    async def wait(index: int, spec: dict[str, str]) -> None:
        conn_id = f"convox_w{index:04d}" if scenario == "per-trigger" else "convox_default"
        trigger: ConvoxBuildTrigger | ConvoxReleaseTrigger
        if spec["kind"] == "build":
            trigger = ConvoxBuildTrigger(
                conn_id,
                spec["app"],
                spec["id"],
                end_time,
                poll_interval=poll_interval,
                follow_logs=follow_logs,
            )
        else:
            trigger = ConvoxReleaseTrigger(
                conn_id, spec["app"], spec["id"], end_time, poll_interval=poll_interval
            )
        async for event in trigger.run():
            events.append(dict(event.payload))

    # Warm up: load every module a first wait loads (connection lookup, workflows, models).
    async with ConvoxHook("convox_default") as hook:
        client = await hook.get_async_conn()
        await client.apps.get(waits[0]["app"])
        await client.builds.get(waits[0]["app"], waits[0]["id"])
    counters.connects = counters.requests = 0
    counters.paths.clear()
    counters.asked.clear()
    counters.sent.clear()

    before = rss_bytes()
    started = time.monotonic()
    tasks = [asyncio.create_task(wait(i, spec)) for i, spec in enumerate(waits)]
    while len(targets & counters.paths) < len(targets) or established_to(port) < log_streams:
        if time.monotonic() - started > RAMP_TIMEOUT:
            missing = len(targets - counters.paths)
            raise RuntimeError(
                f"after {RAMP_TIMEOUT:.0f} s, {missing} waits had not polled and "
                f"{established_to(port)} sockets were open for {log_streams} log streams"
            )
        if len(events) == len(waits):
            raise RuntimeError(f"every wait ended before polling: {events[:3]}")
        await asyncio.sleep(0.05)
    ramp = time.monotonic() - started
    peak_rss, peak_established, clients = rss_bytes(), established_to(port), 0
    requests_at_start = counters.requests
    window_start = time.monotonic()
    while time.monotonic() - window_start < CYCLES * poll_interval:
        await asyncio.sleep(0.25)
        peak_rss = max(peak_rss, rss_bytes())
        peak_established = max(peak_established, established_to(port))
        clients = max(clients, shared_async_clients())
    window_end = time.monotonic()
    measured = window_end - window_start
    requests = counters.requests - requests_at_start
    # each wait's polls of its build or app: the gaps that ended in the window
    periods = [
        later - earlier
        for times in (counters.asked.get(path, []) for path in targets)
        for earlier, later in pairwise(times)
        if window_start <= later <= window_end
    ]
    rack_gaps = [
        later - earlier
        for times in (counters.sent.get(path, []) for path in targets)
        for earlier, later in pairwise(times)
    ]
    max_connections, max_keepalive = _pool_limits()
    ended_early = len(events)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    polling_builds = sum(1 for w in waits if w["kind"] == "build") - log_streams
    return {
        "scenario": scenario,
        "waits": len(waits),
        "poll_interval": poll_interval,
        "clients": clients,
        "rss_before_mb": before / MB,
        "rss_peak_mb": peak_rss / MB,
        "extra_rss_mb": (peak_rss - before) / MB,
        "extra_rss_kb_per_wait": (peak_rss - before) / 1024 / len(waits),
        "tcp_connects": counters.connects,
        "peak_established": peak_established,
        "pool_max_connections": max_connections,
        "pool_max_keepalive": max_keepalive,
        "requests_measured": requests,
        "requests_per_second": requests / measured,
        # a polling build wait GETs the build and (at most every 5 s) its pod, a rollout wait
        # the app; a build wait following its log sends nothing until the build ends
        "nominal_requests_per_second": (
            len(waits) - log_streams + polling_builds * min(1.0, poll_interval / 5)
        )
        / poll_interval,
        "mean_poll_period": sum(periods) / len(periods) if periods else None,
        "poll_rate_percent": 100 * poll_interval * len(periods) / sum(periods) if periods else 0,
        "shortest_gap_at_rack": min(rack_gaps, default=None),
        "measured_seconds": measured,
        "ramp_seconds": ramp,
        "ended_early": ended_early,
        "events": events[:3],
        "clients_left_open": shared_async_clients(),
    }


def _bound_pools(size: int, poll_interval: float) -> None:
    """PROTOTYPE, a what-if for the client: at most ``size`` requests of a client inside httpcore.

    httpcore 1.0's pool scans every queued request against every connection on each request
    and release, and closes an idle connection whenever the pool holds more than
    ``max_keepalive_connections`` (20 by default) connections, so a thousand waits on one
    client of 100 connections saturate the CPU and churn connections. This wraps
    ``AsyncDriver._send_once`` (the whole exchange, body included) in a semaphore of ``size``
    and sizes the pool to match, keeping connections longer than a poll interval. Private
    names: if they change, this scenario fails loudly and should be dropped or updated.
    """
    import httpx

    from convox_provider.client import transport

    client_kwargs = transport._Exchange.client_kwargs
    send_once = transport.AsyncDriver._send_once
    gates: dict[int, asyncio.Semaphore] = {}

    def bounded_kwargs(self: transport._Exchange) -> dict[str, Any]:
        kwargs = client_kwargs(self)
        kwargs["limits"] = httpx.Limits(
            max_connections=size,
            max_keepalive_connections=size,
            keepalive_expiry=max(30.0, 2 * poll_interval),
        )
        return kwargs

    async def bounded_send(self: transport.AsyncDriver, call: Any) -> httpx.Response:
        gate = gates.setdefault(id(self), asyncio.Semaphore(size))
        async with gate:
            return await send_once(self, call)

    transport._Exchange.client_kwargs = bounded_kwargs  # type: ignore[method-assign]
    transport.AsyncDriver._send_once = bounded_send  # type: ignore[method-assign]


def child(argv: Sequence[str]) -> None:
    """``--child <scenario>``: define the connections, import, measure, print one JSON line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=[*SCENARIOS, BOUNDED], required=True)
    parser.add_argument("--bounded", type=int, default=0)
    parser.add_argument("--waits-file", type=Path, required=True)
    parser.add_argument("--poll-interval", type=float, required=True)
    parser.add_argument("--follow-logs", action="store_true")
    args = parser.parse_args(argv)
    waits: list[dict[str, str]] = json.loads(args.waits_file.read_text())
    connection = json.dumps(
        {
            "conn_type": "convox",
            "host": os.environ["BENCH_RACK_URL"],
            "password": os.environ["BENCH_RACK_PASSWORD"],
        }
    )
    os.environ["AIRFLOW_CONN_CONVOX_DEFAULT"] = connection
    if args.child == "per-trigger":
        for index in range(len(waits)):
            os.environ[f"AIRFLOW_CONN_CONVOX_W{index:04d}"] = connection
    # Everything a triggerer has loaded before the first Convox trigger runs.
    import httpx  # noqa: F401
    from airflow.triggers.base import BaseTrigger  # noqa: F401

    import convox_provider.client.client
    import convox_provider.hooks.convox
    import convox_provider.triggers.builds
    import convox_provider.triggers.releases  # noqa: F401

    if args.child == BOUNDED:
        _bound_pools(args.bounded, args.poll_interval)
    figures = asyncio.run(measure(args.child, waits, args.poll_interval, args.follow_logs))
    figures["bounded"] = args.bounded if args.child == BOUNDED else None
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    if "--child" in sys.argv:
        child(sys.argv[1:])
    else:
        main(sys.argv[1:])
