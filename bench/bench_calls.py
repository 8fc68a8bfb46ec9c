"""Client call overhead: ``client.apps.get()`` vs the same GET with raw httpx, same server, one run.

The server is a loopback process answering a canned App JSON (``bench._canned``), so the time
measured is the clients'; the emulator's own handler would dilute the ratio. Rounds interleave
the contenders so machine noise hits them alike: short rounds, and each ratio is the median over
rounds of the ratio to raw httpx in the same round (paired, so a slow stretch of the machine
cancels out); the time per call is the median over rounds of the mean time per call.
Target (DESIGN.md): ours <= 1.10x raw httpx (the official SDK: 1.13x), and no slower than the
official SDK in the same run, sync and async. The wall time includes the loopback server's turn
and the machine's noise; the CPU time of this process per call (``time.process_time``, kernel
time of the socket calls included) is printed beside it.
"""

from __future__ import annotations

import asyncio
import base64
import statistics
import time
from collections.abc import Callable

import httpx

from bench._rack import Rack, canned_server
from convox_provider.client import AsyncConvoxClient, ConvoxClient

ROUNDS = 61
CALLS = 140
APP = "bench"


Sample = tuple[float, float]
"""Seconds per call: wall clock, and CPU time of this process."""


def _timed(fn: Callable[[], object], calls: int) -> Sample:
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls, (time.process_time() - cpu) / calls


def _atimed(loop: asyncio.AbstractEventLoop, fn: Callable[[], object], calls: int) -> Sample:
    async def run() -> Sample:
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(calls):
            await fn()  # type: ignore[misc]
        return (time.perf_counter() - start) / calls, (time.process_time() - cpu) / calls

    return loop.run_until_complete(run())


def contenders(rack: Rack, loop: asyncio.AbstractEventLoop) -> dict[str, Callable[[], Sample]]:
    token = base64.b64encode(f"convox:{rack.password}".encode()).decode()
    headers = {"Authorization": f"Basic {token}", "Accept": "application/json"}
    raw = httpx.Client(base_url=rack.url, headers=headers)
    ours = ConvoxClient(rack.url, rack.password)
    araw = httpx.AsyncClient(base_url=rack.url, headers=headers)
    aours = AsyncConvoxClient(rack.url, rack.password)
    found: dict[str, Callable[[], Sample]] = {
        "raw httpx (sync)": lambda: _timed(lambda: raw.get(f"/apps/{APP}").json(), CALLS),
        "ConvoxClient": lambda: _timed(lambda: ours.apps.get(APP), CALLS),
        "raw httpx (async)": lambda: _atimed(loop, lambda: _ajson(araw, f"/apps/{APP}"), CALLS),
        "AsyncConvoxClient": lambda: _atimed(loop, lambda: aours.apps.get(APP), CALLS),
    }
    try:
        import convox  # the official SDK, installed by the bench extra

        sdk = convox.ConvoxClient(host=rack.url, api_key=rack.password)
        found["official convox SDK"] = lambda: _timed(lambda: sdk.apps.get(APP), CALLS)
    except Exception as exc:
        print(f"(official convox SDK not measured: {exc})")
    return found


async def _ajson(client: httpx.AsyncClient, path: str) -> object:
    return (await client.get(path)).json()


def main() -> dict[str, float]:
    """Print wall and CPU time per call of each contender; return the wall medians."""
    with canned_server() as rack:
        loop = asyncio.new_event_loop()
        runs = contenders(rack, loop)
        for fn in runs.values():  # warm up pools, caches and the emulator
            fn()
        samples: dict[str, list[Sample]] = {name: [] for name in runs}
        for round_no in range(ROUNDS):
            names = list(runs)
            if round_no % 2:
                names.reverse()
            for name in names:
                samples[name].append(runs[name]())
        loop.close()
    medians = {name: statistics.median(w for w, _ in values) for name, values in samples.items()}
    print(f"call overhead: GET /apps/{APP}, {ROUNDS} interleaved rounds x {CALLS} calls")
    print(f"  {'':<22} {'wall us/call':>12} {'vs raw':>7}   {'CPU us/call':>11} {'vs raw':>7}")
    for name, values in samples.items():
        raw = samples["raw httpx (async)" if "async" in name.lower() else "raw httpx (sync)"]
        wall = statistics.median(w / base for (w, _), (base, _) in zip(values, raw, strict=True))
        cpu = statistics.median(c / base for (_, c), (_, base) in zip(values, raw, strict=True))
        print(
            f"  {name:<22} {medians[name] * 1e6:12.1f} {wall:6.3f}x"
            f"   {statistics.median(c for _, c in values) * 1e6:11.1f} {cpu:6.3f}x"
        )
    return medians


if __name__ == "__main__":
    main()
