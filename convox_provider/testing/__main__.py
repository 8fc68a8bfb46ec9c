"""``python -m convox_provider.testing``: run a local rack until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from .emulator import RackEmulator
from .timing import Timing

DEMO_MANIFEST = """\
services:
  web:
    build: .
    port: 3000
    command: bin/web
  worker:
    build: .
    command: bin/worker
"""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m convox_provider.testing",
        description="Run a local Convox v3 rack emulator until SIGINT or SIGTERM.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--password", default="password", help="rack API password")
    parser.add_argument(
        "--console", metavar="ORG/RACK", help="console mode: require this Rack header"
    )
    parser.add_argument(
        "--session", choices=("challenge", "token"), help="console session challenge mode"
    )
    parser.add_argument("--build-seconds", type=float, default=2.0, help="how long builds run")
    parser.add_argument("--rollout-seconds", type=float, default=2.0, help="how long rollouts take")
    parser.add_argument(
        "--process-seconds", type=float, default=1.0, help="pod start / default command time"
    )
    parser.add_argument(
        "--reap-seconds", type=float, default=5.0, help="finished pods are deleted after"
    )
    parser.add_argument("--app", action="append", default=[], help="seed an app (repeatable)")
    parser.add_argument(
        "--no-release", action="store_true", help="seed apps without a promoted release"
    )
    return parser.parse_args(argv)


async def _run(rack: RackEmulator) -> None:
    await rack.start_async()
    print(f"Convox rack emulator listening on {rack.url}", flush=True)
    print(f"RACK_URL={rack.rack_url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await rack.stop_async()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = parse_args(argv)
    timing = Timing(
        build=args.build_seconds,
        rollout=args.rollout_seconds,
        process_start=args.process_seconds,
        process_run=args.process_seconds,
        reap=args.reap_seconds,
        app_delete=args.rollout_seconds,
    )
    rack = RackEmulator(
        password=args.password,
        console=args.console,
        session=args.session,
        timing=timing,
        host=args.host,
        port=args.port,
    )
    for app in args.app:
        rack.create_app(app)
        if not args.no_release:
            rack.add_release(app, DEMO_MANIFEST, description="seeded by the emulator")
    try:
        asyncio.run(_run(rack))
    finally:
        rack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
