"""The first Convox trigger of a triggerer process does its heavy first-time work off the loop.

A triggerer runs every trigger on one event loop: importing the hook and the client (httpx,
pydantic models, tenacity) and building an ``httpx.AsyncClient`` on it would stall every other
trigger for the best part of a second. The trigger runs in a fresh interpreter, where nothing
of the client is imported yet; an audit hook records on which thread each module is imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from convox_support import APP, seed

from convox_provider.testing import RackEmulator

CHILD = textwrap.dedent(
    """
    import asyncio, json, sys, threading, time

    main = threading.get_ident()
    watched = {
        "convox_provider.hooks.convox", "convox_provider.client.client", "httpx",
        "pydantic", "tenacity", "httpcore._backends.anyio",
    }
    on_loop = []

    def audit(event, args):
        if event == "import" and args[0] in watched and threading.get_ident() == main:
            on_loop.append(args[0])

    from convox_provider.triggers.releases import ConvoxReleaseTrigger

    assert "convox_provider.client.client" not in sys.modules
    sys.addaudithook(audit)

    async def run():
        trigger = ConvoxReleaseTrigger(
            convox_conn_id="convox_default", app=sys.argv[1], release_id=sys.argv[2],
            end_time=time.time() + 30, poll_interval=0.05,
        )
        return [event.payload async for event in trigger.run()]

    events = asyncio.run(run())
    print(json.dumps({"on_loop": sorted(set(on_loop)), "events": events}))
    """
)


def test_the_first_trigger_imports_the_client_off_the_event_loop(
    convox_rack: RackEmulator,
) -> None:
    seed(convox_rack)
    release = convox_rack.app(APP)["release"]
    connection = json.dumps(
        {"conn_type": "convox", "host": convox_rack.url, "password": convox_rack.password}
    )
    done = subprocess.run(
        [sys.executable, "-c", CHILD, APP, release],
        capture_output=True,
        text=True,
        timeout=120,
        env={**_environ(), "AIRFLOW_CONN_CONVOX_DEFAULT": connection},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["events"] == [{"status": "success", "app": APP, "release_id": release}]
    assert result["on_loop"] == []


def _environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
