"""Source upload: our streamed archive + upload vs ``tar -czf`` on the same tree, in one run.

A tree of about 330 MB (many small source-like files, big incompressible blobs, a big
compressible log, mixed assets) is generated once. Each round runs, back to back:
``tar -czf`` of the tree to a file (wall time), then a child process that archives the tree
with :class:`~convox_provider.client.archive.SourceArchive` and uploads it to the rack emulator
over loopback (``ConvoxClient``, then ``AsyncConvoxClient``), reporting its wall time and its
peak RSS (``VmHWM``, imports included). Figures are medians over rounds.
Targets (DESIGN.md): throughput ours/tar >= 1.0; peak RSS <= 64 MB.
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench._rack import emulator

ROUNDS = 3
APP = "bench"
MiB = 1024 * 1024


def make_tree(root: Path) -> tuple[int, int]:
    """Write the benchmark tree; return (files, bytes)."""
    rng = random.Random(7)
    words = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz_") for _ in range(rng.randint(2, 12)))
        for _ in range(4000)
    ]

    lines = [
        f"{' '.join(rng.choices(words, k=8))} = {rng.randint(0, 99999)}\n" for _ in range(1 << 16)
    ]
    pool = "".join(lines).encode()  # ~4 MiB of distinct text lines

    def text(size: int) -> bytes:
        start = rng.randrange(len(pool) - size)
        return pool[start : start + size]

    files = 0
    for package in range(40):  # 4000 source-like files, ~8 KiB each
        folder = root / "src" / f"pkg{package:02d}"
        folder.mkdir(parents=True)
        for module in range(100):
            (folder / f"module{module:03d}.py").write_bytes(text(rng.randint(2, 14) * 1024))
            files += 1
    block = text(MiB)  # repeats farther apart than deflate's 32 KiB window: compresses as text
    (root / "var").mkdir()
    with (root / "var" / "app.log").open("wb") as log:
        for _ in range(100):
            log.write(block)
    files += 1
    for index in range(2):  # incompressible: images, wheels, archives
        with (root / f"blob{index}.bin").open("wb") as blob:
            for _ in range(70):
                blob.write(os.urandom(MiB))
        files += 1
    assets = root / "assets"
    assets.mkdir()
    for index in range(25):  # half random, half text
        (assets / f"asset{index:02d}.dat").write_bytes(os.urandom(MiB) + text(MiB))
        files += 1
    size = sum(path.stat().st_size for path in root.rglob("*") if path.is_file())
    return files, size


def run_tar(root: Path, out: Path) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(["tar", "-czf", str(out), "-C", str(root), "."], check=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": seconds, "cpu": cpu, "size": out.stat().st_size}


def run_ours(mode: str, url: str, password: str, root: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_upload", "--child", mode, url, password, str(root)],
        check=False,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{mode} upload failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def peak_rss_mb() -> float:
    """This process's peak RSS: ``VmHWM`` on Linux (``ru_maxrss`` can include the parent's,
    inherited through fork and exec)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(mode: str, url: str, password: str, root: str) -> None:
    """In a fresh process: archive ``root`` and upload it; print timings and peak RSS as JSON."""
    import asyncio

    from convox_provider.client.archive import SourceArchive, upload
    from convox_provider.client.client import AsyncConvoxClient, ConvoxClient

    baseline = peak_rss_mb()
    start = time.perf_counter()
    cpu_start = time.process_time()
    archive = SourceArchive(root)
    sent = 0

    def counted() -> Iterator[bytes]:
        nonlocal sent
        for chunk in archive:
            sent += len(chunk)
            yield chunk

    if mode == "sync":
        with ConvoxClient(url, password) as client:
            client._driver.execute(upload(client.objects, APP, counted()))
    else:

        async def main() -> None:
            async with AsyncConvoxClient(url, password) as client:
                await client._driver.execute(upload(client.objects, APP, counted()))

        asyncio.run(main())
    seconds = time.perf_counter() - start
    peak = peak_rss_mb()
    figures = {
        "seconds": seconds,
        "cpu": time.process_time() - cpu_start,
        "size": sent,
        "rss_mb": peak,
        "baseline_mb": baseline,
    }
    print(json.dumps(figures))


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    try:
        root = workdir / "tree"
        root.mkdir()
        files, size = make_tree(root)
        print(f"tree: {files} files, {size / MiB:.0f} MiB")
        results: dict[str, list[dict[str, float]]] = {"tar": [], "sync": [], "async": []}
        with emulator("--app", APP) as rack:
            for _ in range(ROUNDS):
                results["tar"].append(run_tar(root, workdir / "out.tgz"))
                for mode in ("sync", "async"):
                    results[mode].append(run_ours(mode, rack.url, rack.password, root))

        def median(name: str, key: str) -> float:
            return statistics.median(r[key] for r in results[name])

        tar_s = median("tar", "seconds")
        print(
            f"{'tar -czf':<26}{tar_s:7.2f} s  {size / MiB / tar_s:6.1f} MiB/s  "
            f"cpu {median('tar', 'cpu'):5.2f} s  {median('tar', 'size') / MiB:6.1f} MiB out"
        )
        for mode, label in (("sync", "ConvoxClient"), ("async", "AsyncConvoxClient")):
            ours = median(mode, "seconds")
            print(
                f"{label + ' upload':<26}{ours:7.2f} s  {size / MiB / ours:6.1f} MiB/s  "
                f"cpu {median(mode, 'cpu'):5.2f} s  {median(mode, 'size') / MiB:6.1f} MiB out  "
                f"throughput ours/tar {tar_s / ours:4.2f}x (target >= 1.0; by CPU time "
                f"{median('tar', 'cpu') / median(mode, 'cpu'):4.2f}x)  "
                f"peak RSS {max(r['rss_mb'] for r in results[mode]):.1f} MB "
                f"(after imports {median(mode, 'baseline_mb'):.1f} MB; target <= 64)"
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        child(*sys.argv[2:])
    else:
        main()
