"""Build copy between racks: ``client.builds.copy`` vs a raw stream of the same bytes, in one run.

Two rack emulators (child processes): staging gets a build of about 1 GiB, imported once (a
``build.json`` and one incompressible 1 GiB image archive, as ``convox builds export`` writes
them), and its export is written once. Each round then runs, back to back, each in a fresh child
process whose wall time and peak RSS (``VmHWM``, imports included) are reported:

* **raw**: ``GET …/builds/{id}.tgz`` from staging streamed straight into ``POST …/builds/import``
  on production with plain httpx (``iter_raw`` into ``content=``): no parsing, no checks;
* **sync** / **async**: ``ConvoxClient`` / ``AsyncConvoxClient`` ``builds.copy`` of the same
  build into a new app on production (a new app each time, so the copy's marker never finds an
  earlier copy): the archive checked as it streams (gzip CRC and length, tar end), the marker
  written, the imported build's manifest and release checked.

Both import into the same emulator, so the import's own work (spooling, reading the archive,
keeping the image) is in both times. Before each transfer the page cache's dirty pages are
written out (``os.sync``), and the order of the three rotates from round to round, so that no
transfer pays for the disk writes of the one before it. Figures are medians over rounds
(``BENCH_COPY_ROUNDS``, default 1; ``BENCH_COPY_MIB``, default 1024). Targets (issue 12): peak
RSS of the copying process <= 64 MB; throughput copy/raw >= 0.8.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import time
import zlib
from collections.abc import Iterator

import httpx

from bench._rack import Rack, emulator

APP = "bench"
MiB = 1024 * 1024
SIZE_MIB = int(os.environ.get("BENCH_COPY_MIB", "1024"))
ROUNDS = int(os.environ.get("BENCH_COPY_ROUNDS", "1"))
MANIFEST = "services:\n  web:\n    build: .\n    port: 3000\n"
TIMEOUT = httpx.Timeout(600.0, connect=10.0)


def seed_archive(size_mib: int) -> Iterator[bytes]:
    """An export-format archive: ``build.json`` and a ``size_mib`` MiB image archive (random,
    as compressed image layers are), gzip level 0 (stored: deflate gains nothing there)."""
    pack = zlib.compressobj(0, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    meta = json.dumps({"id": "BSEED", "description": "1 GiB build", "manifest": MANIFEST})
    info = tarfile.TarInfo("build.json")
    info.size = len(meta)
    head = io.BytesIO()
    head.write(info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict"))
    head.write(meta.encode() + bytes(-len(meta) % 512))
    image = tarfile.TarInfo("web.BSEED.tar")
    image.size = size_mib * MiB
    head.write(image.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict"))
    yield pack.compress(head.getvalue())
    block = os.urandom(MiB)
    for _ in range(size_mib):
        yield pack.compress(block)
    yield pack.compress(bytes(1024)) + pack.flush()


def peak_rss_mb() -> float:
    """This process's peak RSS (``VmHWM``)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _http(rack: Rack) -> httpx.Client:
    return httpx.Client(base_url=rack.url, auth=("convox", rack.password), timeout=TIMEOUT)


def create_app(rack: Rack, name: str) -> None:
    with _http(rack) as http:
        http.post("/apps", data={"name": name}).raise_for_status()
        deadline = time.monotonic() + 60
        while http.get(f"/apps/{name}").json()["status"] != "running":
            if time.monotonic() > deadline:
                raise RuntimeError(f"app {name} did not reach running")
            time.sleep(0.05)


def child(argv: list[str]) -> None:
    """In a fresh process: one transfer; print its figures as JSON. ``argv``: the mode, the
    source URL and key, the target URL and key, the build id and the target app."""
    mode, source_url, source_key, target_url, target_key, build_id, target_app = argv
    baseline = peak_rss_mb()
    start = time.perf_counter()
    cpu = time.process_time()
    if mode == "raw":
        auth = ("convox", source_key)
        with (
            httpx.Client(auth=auth, timeout=TIMEOUT) as source,
            httpx.Client(auth=("convox", target_key), timeout=TIMEOUT) as target,
            source.stream("GET", f"{source_url}/apps/{APP}/builds/{build_id}.tgz") as export,
        ):
            export.raise_for_status()
            answer = target.post(
                f"{target_url}/apps/{target_app}/builds/import", content=export.iter_raw(65536)
            )
            answer.raise_for_status()
            size = export.num_bytes_downloaded
    elif mode == "sync":
        from convox_provider.client.client import ConvoxClient

        with (
            ConvoxClient(source_url, source_key) as src,
            ConvoxClient(target_url, target_key) as dst,
        ):
            size = src.builds.copy(APP, build_id, to=dst, target_app=target_app).size
    else:
        import asyncio

        from convox_provider.client.client import AsyncConvoxClient

        async def main() -> int:
            async with (
                AsyncConvoxClient(source_url, source_key) as src,
                AsyncConvoxClient(target_url, target_key) as dst,
            ):
                copied = await src.builds.copy(APP, build_id, to=dst, target_app=target_app)
                return copied.size

        size = asyncio.run(main())
    figures = {
        "seconds": time.perf_counter() - start,
        "cpu": time.process_time() - cpu,
        "size": size,
        "rss_mb": peak_rss_mb(),
        "baseline_mb": baseline,
    }
    print(json.dumps(figures))


def transfer(
    mode: str, staging: Rack, production: Rack, build_id: str, app: str
) -> dict[str, float]:
    args = [staging.url, staging.password, production.url, production.password, build_id, app]
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_copy", "--child", mode, *args],
        check=False,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{mode} transfer failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    timings = ("--build-seconds", "0", "--rollout-seconds", "0", "--process-seconds", "0")
    with (
        emulator("--app", APP, *timings) as staging,
        emulator("--app", APP, *timings) as production,
    ):
        start = time.perf_counter()
        with _http(staging) as http:
            seeded = http.post(
                f"/apps/{APP}/builds/import", content=seed_archive(SIZE_MIB)
            ).raise_for_status()
            build_id = seeded.json()["id"]
            imported = time.perf_counter()
            with http.stream("GET", f"/apps/{APP}/builds/{build_id}.tgz") as export:
                export_size = sum(len(chunk) for chunk in export.iter_raw(MiB))
        print(
            f"seed: {SIZE_MIB} MiB image imported on staging in {imported - start:.1f} s, its"
            f" export ({export_size / MiB:.1f} MiB) written and read in"
            f" {time.perf_counter() - imported:.1f} s"
        )
        results: dict[str, list[dict[str, float]]] = {"raw": [], "sync": [], "async": []}
        modes = ["raw", "sync", "async"]
        for number in range(ROUNDS):
            for mode in modes[number % 3 :] + modes[: number % 3]:
                app = APP if mode == "raw" else f"{mode}-{number}"
                if mode != "raw":
                    create_app(production, app)
                os.sync()
                results[mode].append(transfer(mode, staging, production, build_id, app))

    def median(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in results[mode])

    raw = median("raw", "seconds")
    for mode, label in (
        ("raw", "raw httpx stream"),
        ("sync", "ConvoxClient copy"),
        ("async", "AsyncConvoxClient copy"),
    ):
        seconds = median(mode, "seconds")
        peak = max(r["rss_mb"] for r in results[mode])
        line = (
            f"{label:<24}{seconds:7.2f} s  {export_size / MiB / seconds:7.1f} MiB/s  "
            f"cpu {median(mode, 'cpu'):6.2f} s  peak RSS {peak:5.1f} MB"
            f" (after imports {median(mode, 'baseline_mb'):4.1f} MB)"
        )
        if mode != "raw":
            line += f"  throughput copy/raw {raw / seconds:4.2f}x (target >= 0.8; RSS <= 64 MB)"
        print(line)


if __name__ == "__main__":
    if len(sys.argv) == 9 and sys.argv[1] == "--child":
        child(sys.argv[2:])
    else:
        main()
