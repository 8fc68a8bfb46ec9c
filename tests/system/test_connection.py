"""The connection form's Test button: ``POST /api/v2/connections/test`` on the API server.

The test runs inside the API server process (the provider must be importable there) and sends
the rack one ``GET /system``.
"""

from __future__ import annotations

from .harness import Harness


def test_connection_test_through_the_api_server(harness: Harness) -> None:
    rack = harness.rack
    body = {
        "connection_id": "convox_form",
        "conn_type": "convox",
        "host": rack.url,
        # Airflow 3.3.1-3.3.2 refuse a test without a port (apache/airflow#73298).
        "port": rack.port,
        "password": rack.password,
    }
    before = rack.requests.count("GET", "/system")
    answer = harness.api.post("/connections/test", body)
    assert answer["status"] is True, answer
    assert "Connected to rack emulator" in answer["message"]
    assert rack.requests.count("GET", "/system") == before + 1

    wrong = "wrong-" + rack.password[::-1]
    answer = harness.api.post("/connections/test", {**body, "password": wrong})
    assert answer["status"] is False
    assert "401" in answer["message"]
    assert wrong not in answer["message"]
    assert rack.password not in answer["message"]
