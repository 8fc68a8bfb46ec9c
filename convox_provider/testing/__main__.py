"""``python -m convox_provider.testing``: run a local rack until SIGINT, SIGTERM or SIGHUP.

Each of the three stops it cleanly, removing its temporary files, even when it arrives while
the rack is still starting.

``--scripts FILE`` arms scripts (see ``scriptfile``) before the rack starts; the admin routes
(``admin``) arm more at run time and show the request log, which ``--request-log FILE`` also
writes as JSON lines. The first lines printed are the URL, ``RACK_URL=`` and ``PORT=``.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from .admin import record_json
from .emulator import RackEmulator
from .faults import RequestRecord
from .scriptfile import ScriptsFileError, apply_scripts
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
    parser.add_argument(
        "--scripts",
        metavar="FILE",
        type=Path,
        help="YAML or JSON scripts: command results, failing builds, failing promotes",
    )
    parser.add_argument(
        "--request-log",
        metavar="FILE",
        type=Path,
        help="append every request received to FILE as a JSON line",
    )
    return parser.parse_args(argv)


class StartError(Exception):
    """The rack could not start: the message is the one line printed."""


class _Stopped(Exception):
    """A stop signal arrived before the rack was serving (or after)."""


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _stop_now(signum: int, frame: object) -> None:
    raise _Stopped(signal.Signals(signum).name)


async def _run(rack: RackEmulator) -> None:
    try:
        await rack.start_async()
    except OSError as exc:
        where = f"{rack.host}:{rack.port}"
        if exc.errno == errno.EADDRINUSE:
            raise StartError(f"port {rack.port} on {rack.host} is already in use") from exc
        raise StartError(f"cannot listen on {where}: {exc.strerror or exc}") from exc
    print(f"Convox rack emulator listening on {rack.url}", flush=True)
    print(f"RACK_URL={rack.rack_url}", flush=True)
    print(f"PORT={rack.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await rack.stop_async()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = parse_args(argv)
    for sig in STOP_SIGNALS:  # until the loop takes over, and again once it is gone
        signal.signal(sig, _stop_now)
    timing = Timing(
        build=args.build_seconds,
        rollout=args.rollout_seconds,
        process_start=args.process_seconds,
        process_run=args.process_seconds,
        reap=args.reap_seconds,
        app_delete=args.rollout_seconds,
    )
    rack: RackEmulator | None = None
    log: TextIO | None = None
    try:
        # A stop signal during construction leaves a half-made temporary directory to its
        # finalizer, which removes it at exit.
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
        if args.scripts is not None:
            apply_scripts(rack.scripts, args.scripts.read_text(encoding="utf-8"))
        if args.request_log is not None:
            log = args.request_log.open("a", encoding="utf-8")
            rack.requests.subscribe(_writer(log))
        asyncio.run(_run(rack))
        for sig in STOP_SIGNALS:  # the loop restored the default handlers when it closed
            signal.signal(sig, _stop_now)
    except _Stopped:
        pass
    except (StartError, ScriptsFileError) as exc:
        print(f"convox-emulator: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # reading --scripts or opening --request-log
        print(f"convox-emulator: error: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    finally:
        if rack is not None:
            rack.stop()
        if log is not None:
            log.close()
    return 0


def _writer(log: TextIO) -> Callable[[RequestRecord], None]:
    def write(record: RequestRecord) -> None:
        log.write(json.dumps(record_json(record)) + "\n")
        log.flush()

    return write


if __name__ == "__main__":
    sys.exit(main())
