"""processes.run deletes its one-off pod whatever raises, the caller's callbacks included."""

from __future__ import annotations

from typing import Any

import pytest

from convox_provider.client.client import ConvoxClient
from convox_provider.client.workflows.events import ProcessStarted, ProcessStateChanged
from convox_provider.testing.emulator import RackEmulator

MANIFEST = "services:\n  web:\n    build: .\n    port: 3000\n"


class Boom(Exception):
    pass


def _live(rack: RackEmulator, app: str) -> list[dict[str, Any]]:
    """The app's one-off ``sleep`` pods still listed (not its service pods)."""
    return [p for p in rack.processes(app) if str(p.get("command", "")).startswith("sleep")]


@pytest.mark.parametrize("event_type", [ProcessStarted, ProcessStateChanged])
def test_a_raising_on_event_callback_still_deletes_the_pod(
    convox_rack: RackEmulator, event_type: type
) -> None:
    convox_rack.create_app("shop")
    convox_rack.add_release("shop", MANIFEST)

    def on_event(event: object) -> None:
        if isinstance(event, event_type):
            raise Boom("callback failed")

    with ConvoxClient(convox_rack.url, convox_rack.password) as client, pytest.raises(Boom):
        client.processes.run_attached("shop", "web", "true", poll_interval=0.01, on_event=on_event)
    assert convox_rack.requests.count("DELETE", "/apps/shop/processes/*") == 1
    assert _live(convox_rack, "shop") == []


def test_a_raising_on_output_callback_still_deletes_the_pod(convox_rack: RackEmulator) -> None:
    convox_rack.create_app("shop")
    convox_rack.add_release("shop", MANIFEST)
    convox_rack.scripts.on_command("migrate", output="hello\n", exit_code=0)

    def on_output(data: bytes) -> None:
        raise Boom("output callback failed")

    with ConvoxClient(convox_rack.url, convox_rack.password) as client, pytest.raises(Boom):
        client.processes.run_attached(
            "shop", "web", "migrate", poll_interval=0.01, on_output=on_output
        )
    assert convox_rack.requests.count("DELETE", "/apps/shop/processes/*") == 1
    assert _live(convox_rack, "shop") == []
