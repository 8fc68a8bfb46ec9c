"""The emulated app lifecycle over HTTP: create, lock, delete (asynchronous), rolling restart."""

from __future__ import annotations

import time

import httpx

from convox_provider.testing import RackEmulator, Timing
from convox_provider.testing.plugin import RackFactory

from .conftest import MANIFEST


def _client(rack: RackEmulator) -> httpx.Client:
    return httpx.Client(base_url=rack.url, auth=("convox", "password"), timeout=10)


def _status(http: httpx.Client, app: str) -> str | int:
    answer = http.get(f"/apps/{app}")
    return answer.json()["status"] if answer.status_code == 200 else answer.status_code


def test_create_is_updating_then_running(convox_rack_factory: RackFactory) -> None:
    rack = convox_rack_factory(timing=Timing(rollout=0.3))
    with _client(rack) as http:
        made = http.post("/apps", data={"name": "pr-1", "generation": "2"}).json()
        assert (made["status"], made["release"], made["locked"]) == ("updating", "", False)
        again = http.post("/apps", data={"name": "pr-1"})
        assert (again.status_code, again.text) == (409, "app already exists: pr-1\n")
        time.sleep(0.4)
        assert _status(http, "pr-1") == "running"


def test_a_locked_app_cannot_be_deleted_until_unlocked(convox_rack: RackEmulator) -> None:
    convox_rack.create_app("keep")
    with _client(convox_rack) as http:
        assert http.put("/apps/keep", data={"lock": "true"}).text == "ok\n"
        assert http.get("/apps/keep").json()["locked"] is True
        refused = http.delete("/apps/keep")
        assert (refused.status_code, refused.text) == (409, "app is locked: keep\n")
        assert _status(http, "keep") in ("running", "updating")
        http.put("/apps/keep", data={"lock": "false"})
        assert http.delete("/apps/keep").text == "ok\n"


def test_delete_is_deleting_then_not_found(convox_rack_factory: RackFactory) -> None:
    rack = convox_rack_factory(timing=Timing(app_delete=0.3))
    rack.create_app("pr-2")
    with _client(rack) as http:
        assert http.delete("/apps/pr-2").text == "ok\n"
        assert _status(http, "pr-2") == "deleting"
        assert http.delete("/apps/pr-2").text == "ok\n"  # a second delete changes nothing
        time.sleep(0.4)
        gone = http.get("/apps/pr-2")
        assert (gone.status_code, gone.text) == (404, "app not found: pr-2\n")
        assert "pr-2" not in [app["name"] for app in http.get("/apps").json()]


def test_a_restart_is_rolling_and_leaves_the_app_status_alone(
    convox_rack_factory: RackFactory,
) -> None:
    rack = convox_rack_factory(timing=Timing(process_start=0.3))
    rack.create_app("demo")
    rack.add_release("demo", MANIFEST, env={}, description="seed")
    with _client(rack) as http:
        before = {
            p["id"] for p in http.get("/apps/demo/processes", params={"service": "web"}).json()
        }
        app_before = http.get("/apps/demo").json()
        assert len(before) == 2
        assert http.post("/apps/demo/services/web/restart").text == "ok\n"
        during = http.get("/apps/demo/processes", params={"service": "web"}).json()
        old = [p for p in during if p["id"] in before]
        new = [p for p in during if p["id"] not in before]
        assert [p["status"] for p in old] == ["running", "running"]
        assert [p["status"] for p in new] == ["pending", "pending"]
        assert http.get("/apps/demo").json() == app_before
        time.sleep(0.4)
        after = http.get("/apps/demo/processes", params={"service": "web"}).json()
        assert {p["id"] for p in after} == {p["id"] for p in new}
        assert [p["status"] for p in after] == ["running", "running"]
        workers = http.get("/apps/demo/processes", params={"service": "worker"}).json()
        assert len(workers) == 1
        assert http.get("/apps/demo").json() == app_before
