"""``make demo``: deploy the sample app to a local Convox rack with real Airflow.

What it does, with nothing but this repository and its virtualenv:

1. starts the bundled rack emulator (``python -m convox_provider.testing``) on a free loopback
   port with an app ``demo``, builds and rollouts taking a few seconds each;
2. creates a throw-away ``AIRFLOW_HOME`` and runs ``airflow db migrate`` in it;
3. runs ``airflow dags test convox_deploy_pipeline`` (``example_dags/``) against the emulator,
   the connection given as ``AIRFLOW_CONN_CONVOX_DEFAULT``: build ``demo/sample-app``, promote
   the new release, wait for the rollout; build logs and rollout progress are shown as they come;
4. reads the result back through ``ConvoxClient`` and prints the build id, the release id and
   the app's status.

The emulator is stopped and the temporary home removed whatever happens; the exit status is
non-zero when the pipeline failed. ``--deferrable`` waits in (inline) triggers instead of the
worker; ``--verbose`` shows Airflow's whole output instead of the deploy's own lines.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from convox_provider.client.client import ConvoxClient

REPO = Path(__file__).resolve().parent.parent
DAG_ID = "convox_deploy_pipeline"
APP = "demo"
READY = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")
#: Airflow's log lines worth showing: the provider's, the deploy report, task boundaries, outcome.
SHOWN = re.compile(
    r"convox_provider|\[DAG TEST\] (starting|running trigger|Trigger completed)|Deployed "
    r"|DagRun Finished|Task failed|Exception: |Error: "
)
#: ``2026-11-23T07:50:41.587520Z [info     ] message   [logger] loc=file.py:12``
STRUCTLOG = re.compile(r"^\d{4}-\d\d-\d\dT(\d\d:\d\d:\d\d)\.\d+Z \[(\w+)\s*\] (.*?)\s+\[[\w.]+\]")


@dataclass(frozen=True)
class Rack:
    """A running emulator process."""

    process: subprocess.Popen[bytes]
    url: str
    password: str


def start_rack(workdir: Path, *, build_seconds: float, rollout_seconds: float) -> Rack:
    """Start the emulator on a free port; its output goes to ``workdir/rack.log``."""
    password = secrets.token_hex(16)
    log_path = workdir / "rack.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "convox_provider.testing",
                "--port",
                "0",
                "--password",
                password,
                "--app",
                APP,
                "--build-seconds",
                str(build_seconds),
                "--rollout-seconds",
                str(rollout_seconds),
                "--process-seconds",
                "1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = READY.search(log_path.read_text(errors="replace"))
        if found:
            return Rack(process, found.group(1), password)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    stop(process)
    raise RuntimeError(f"the rack emulator did not start:\n{tail(log_path)}")


def stop(process: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """Stop a child process: SIGTERM, then SIGKILL after 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def tail(path: Path, lines: int = 60) -> str:
    """The last ``lines`` lines of a text file (empty when it does not exist)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


def airflow_env(home: Path, rack: Rack, *, deferrable: bool) -> dict[str, str]:
    """Environment for the ``airflow`` commands: a private home, the DAGs, the connection."""
    connection = {"conn_type": "convox", "host": rack.url, "password": rack.password}
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "example_dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_CONN_CONVOX_DEFAULT": json.dumps(connection),
        "CONVOX_SAMPLE_APP_DIR": str(REPO / "demo" / "sample-app"),
        "CONVOX_DEFERRABLE": str(deferrable).lower(),
        "CONVOX_POLL_INTERVAL": "1",
        "PYTHONUNBUFFERED": "1",
    }


def run_airflow(
    args: Sequence[str], env: dict[str, str], log_path: Path, *, show: bool, verbose: bool
) -> int:
    """Run ``airflow <args>``; everything goes to ``log_path``, shown lines to stdout."""
    command = [sys.executable, "-m", "airflow", *args]
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            cwd=REPO,
        )
        assert process.stdout is not None
        try:
            relay(process.stdout, log, show=show, verbose=verbose)
        finally:
            stop(process)  # only when interrupted: relay returns at end of output
    return process.wait()


def relay(stream: IO[str], log: IO[str], *, show: bool, verbose: bool) -> None:
    """Copy the output to the log and show what matters (all of it with ``verbose``)."""
    for line in stream:
        log.write(line)
        if not show:
            continue
        if verbose:
            print(line, end="", flush=True)
        elif SHOWN.search(line):
            print(f"  {pretty(line.rstrip())}", flush=True)


def pretty(line: str) -> str:
    """A structlog line as ``HH:MM:SS message`` (other lines as they are)."""
    parsed = STRUCTLOG.match(line)
    if parsed is None:
        return line
    clock, level, message = parsed.groups()
    finished = re.search(
        r"DagRun Finished: dag_id=([\w.-]+).*run_duration=([\d.]+), state=(\w+)", line
    )
    if finished:
        dag_id, seconds, state = finished.groups()
        message = f"DagRun of {dag_id} finished: {state} after {float(seconds):.1f} s"
    marker = "" if level in ("info", "debug") else f"{level.upper()}: "
    return f"{clock}  {marker}{message}"


def summary(rack: Rack) -> tuple[bool, list[str]]:
    """Read the deploy back through the client: (it worked, lines to print)."""
    with ConvoxClient(rack.url, rack.password) as client:
        builds = client.builds.list(APP, limit=1)
        app = client.apps.get(APP)
        release = client.releases.get(APP, app.release)
    if not builds:
        return False, ["build:   none was created", f"app:     {app.name} is {app.status}"]
    build = builds[0]
    ok = (
        build.status == "complete"
        and app.status == "running"
        and app.release == build.release
        and release.build == build.id
    )
    return ok, [
        f"build:   {build.id} ({build.status}) {build.description}",
        f"release: {build.release or '(none)'} (made by the build)",
        f"app:     {app.name} is {app.status} on release {app.release} (build {release.build})",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; 0 when the sample app was deployed."""
    parser = argparse.ArgumentParser(prog="demo/run_demo.py", description=__doc__.split("\n")[0])
    parser.add_argument("--deferrable", action="store_true", help="wait in triggers")
    parser.add_argument("--verbose", action="store_true", help="show all of Airflow's output")
    parser.add_argument("--build-seconds", type=float, default=3.0, help="emulated build time")
    parser.add_argument("--rollout-seconds", type=float, default=3.0, help="emulated rollout")
    args = parser.parse_args(argv)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="convox-demo-"))
    home = workdir / "airflow"
    home.mkdir()
    rack: Rack | None = None
    ok = False
    try:
        print("Starting the Convox rack emulator ...", flush=True)
        rack = start_rack(
            workdir, build_seconds=args.build_seconds, rollout_seconds=args.rollout_seconds
        )
        print(f"  rack API {rack.url}, app {APP!r}", flush=True)
        env = airflow_env(home, rack, deferrable=args.deferrable)
        print(f"Preparing Airflow in {home} (airflow db migrate) ...", flush=True)
        migrate_log = workdir / "migrate.log"
        phase = time.monotonic()
        if run_airflow(["db", "migrate"], env, migrate_log, show=False, verbose=False):
            print(f"airflow db migrate failed:\n{tail(migrate_log)}", file=sys.stderr)
            return 1
        print(f"  migrated in {time.monotonic() - phase:.1f} s", flush=True)
        mode = "deferrable" if args.deferrable else "non-deferrable"
        print(f"Running: airflow dags test {DAG_ID} ({mode}) ...", flush=True)
        dag_log = workdir / "dags-test.log"
        phase = time.monotonic()
        status = run_airflow(
            ["dags", "test", DAG_ID], env, dag_log, show=True, verbose=args.verbose
        )
        print(f"  airflow dags test took {time.monotonic() - phase:.1f} s", flush=True)
        if status != 0:
            print(f"\nThe pipeline failed (exit {status}); the end of Airflow's output:")
            print(tail(dag_log))
        deployed, lines = summary(rack)
        print("\nWhat the rack says now:")
        for line in lines:
            print(f"  {line}")
        ok = status == 0 and deployed
        if status == 0 and not deployed:
            print("The DAG run succeeded, but the app does not run the new build", file=sys.stderr)
        return 0 if ok else 1
    finally:
        if rack is not None:
            stop(rack.process)
            if not ok:
                rack_log = tail(workdir / "rack.log", 20).replace(rack.password, "***")
                print(f"\nThe rack emulator's log:\n{rack_log}")
        shutil.rmtree(workdir, ignore_errors=True)
        print(f"\nDemo {'succeeded' if ok else 'FAILED'} in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
