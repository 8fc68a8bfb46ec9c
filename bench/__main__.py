"""``python -m bench``: run every benchmark, one after the other."""

from __future__ import annotations

import importlib
import sys

BENCHES = [
    "bench.bench_calls",
    "bench.bench_upload",
    "bench.bench_logs",
    "bench.bench_waits",
    "bench.bench_pipeline",
    "bench.bench_imports",
]

if __name__ == "__main__":
    chosen = sys.argv[1:] or BENCHES
    for name in chosen:
        module = importlib.import_module(name if name.startswith("bench.") else f"bench.{name}")
        print(f"== {module.__name__}")
        module.main()
