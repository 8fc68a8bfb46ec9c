"""Client call overhead: ``client.apps.get()`` vs the same GET with raw httpx, same server, one run.

The server is a loopback process answering a canned App JSON (``bench._canned``), so the time
measured is the clients'; the emulator's own handler would dilute the ratio. Rounds interleave
the contenders so machine noise hits them alike; the figure is the median over rounds of the
mean time per call. Target (DESIGN.md): ours <= 1.10x raw httpx (the official SDK: 1.13x).
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

ROUNDS = 21
CALLS = 400
APP = "bench"


def _timed(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def _atimed(loop: asyncio.AbstractEventLoop, fn: Callable[[], object], calls: int) -> float:
    async def run() -> float:
        start = time.perf_counter()
        for _ in range(calls):
            await fn()  # type: ignore[misc]
        return (time.perf_counter() - start) / calls

    return loop.run_until_complete(run())


def contenders(rack: Rack, loop: asyncio.AbstractEventLoop) -> dict[str, Callable[[], float]]:
    token = base64.b64encode(f"convox:{rack.password}".encode()).decode()
    headers = {"Authorization": f"Basic {token}", "Accept": "application/json"}
    raw = httpx.Client(base_url=rack.url, headers=headers)
    ours = ConvoxClient(rack.url, rack.password)
    araw = httpx.AsyncClient(base_url=rack.url, headers=headers)
    aours = AsyncConvoxClient(rack.url, rack.password)
    found: dict[str, Callable[[], float]] = {
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
    with canned_server() as rack:
        loop = asyncio.new_event_loop()
        runs = contenders(rack, loop)
        for fn in runs.values():  # warm up pools, caches and the emulator
            fn()
        samples: dict[str, list[float]] = {name: [] for name in runs}
        for round_no in range(ROUNDS):
            names = list(runs)
            if round_no % 2:
                names.reverse()
            for name in names:
                samples[name].append(runs[name]())
        loop.close()
    medians = {name: statistics.median(values) for name, values in samples.items()}
    print(f"call overhead: GET /apps/{APP}, {ROUNDS} interleaved rounds x {CALLS} calls")
    for name, value in medians.items():
        base = medians["raw httpx (async)" if "async" in name.lower() else "raw httpx (sync)"]
        print(f"  {name:<22} {value * 1e6:8.1f} us/call   {value / base:5.3f}x raw httpx")
    return medians


if __name__ == "__main__":
    main()
