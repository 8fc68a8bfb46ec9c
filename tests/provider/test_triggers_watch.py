"""ConvoxReleaseEventTrigger against the rack emulator: one event per new active release, a
cursor that survives a restart, errors that never end the watch."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from convox_support import APP, FAST, MANIFEST, connect, seed

from convox_provider.client.client import ConvoxClient
from convox_provider.testing import RackEmulator, Timing
from convox_provider.triggers import watch
from convox_provider.triggers.watch import CURSOR_KEY, ConvoxReleaseEventTrigger, cursor_variable


class FakeAssetStore:
    """The ``asset_state_store`` an Airflow 3.3 triggerer gives a watcher of one asset."""

    def __init__(self, values: dict[str, Any] | None = None) -> None:
        self.values: dict[str, Any] = dict(values or {})
        self.writes: list[Any] = []

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = json.loads(json.dumps(value))  # stored as JSON, as Airflow does
        self.writes.append(self.values[key])


class SeveralAssets(FakeAssetStore):
    """A store for a trigger two assets declare: it needs to be told which asset."""

    async def aget(self, key: str, default: Any = None) -> Any:
        raise ValueError("Task has 2 concrete inlets and outlets — use [MY_ASSET]")


def trigger(**options: Any) -> ConvoxReleaseEventTrigger:
    return ConvoxReleaseEventTrigger(app=APP, poll_interval=FAST, **options)


def restarted(first: ConvoxReleaseEventTrigger, store: Any) -> ConvoxReleaseEventTrigger:
    """The trigger a triggerer re-creates from what it stored, given the same asset store."""
    classpath, kwargs = first.serialize()
    assert classpath == "convox_provider.triggers.watch.ConvoxReleaseEventTrigger"
    second = ConvoxReleaseEventTrigger(**json.loads(json.dumps(kwargs)))
    assert second.serialize() == (classpath, kwargs)
    second.asset_state_store = store
    return second


async def events_while(
    trigger: ConvoxReleaseEventTrigger,
    actions: Callable[[], Coroutine[Any, Any, None]],
    *,
    settle: float = 0.3,
) -> list[dict[str, Any]]:
    """Run ``trigger`` while ``actions`` runs, then ``settle`` seconds more; its events."""
    events: list[dict[str, Any]] = []

    async def collect() -> None:
        async for event in trigger.run():
            events.append(dict(event.payload))

    task = asyncio.ensure_future(collect())
    try:
        await actions()
        await asyncio.sleep(settle)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert not task.done() or task.cancelled(), "the watch ended by itself"
    return events


def promote_new(rack: RackEmulator, **release: Any) -> str:
    """Another client's deploy: a new release promoted (the CLI, the console, CI)."""
    new = rack.add_release(APP, MANIFEST, promote=False, **release)[1]["id"]
    with ConvoxClient(rack.url, "password") as client:
        client.releases.promote(APP, new, poll_interval=FAST, initial_delay=0)
    return str(new)


@pytest.fixture
def rack(convox_rack_factory: Callable[..., RackEmulator], monkeypatch: pytest.MonkeyPatch) -> Any:
    rack = convox_rack_factory()
    connect(monkeypatch, rack)
    seed(rack)
    return rack


async def _until_watching(store: FakeAssetStore, writes: int = 1) -> None:
    for _ in range(500):
        if len(store.writes) >= writes:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the trigger never recorded its starting point")


async def _nothing() -> None:
    """No actions: the trigger runs on its own (what a restarted triggerer does)."""


def test_the_trigger_and_the_client_agree_on_the_cursor_before_a_first_release() -> None:
    from convox_provider.client.workflows import watch as client_watch

    assert watch.BEFORE_FIRST_RELEASE == client_watch.BEFORE_FIRST_RELEASE


def test_serialize_has_no_cursor_and_checks_its_options() -> None:
    classpath, kwargs = ConvoxReleaseEventTrigger(app="demo", convox_conn_id="prod").serialize()
    assert classpath == "convox_provider.triggers.watch.ConvoxReleaseEventTrigger"
    assert kwargs == {"app": "demo", "convox_conn_id": "prod", "poll_interval": 30.0}
    with pytest.raises(Exception, match="poll_interval"):
        ConvoxReleaseEventTrigger(app="demo", poll_interval=0)


def test_a_promote_by_another_client_is_one_event_with_its_release(rack: RackEmulator) -> None:
    store = FakeAssetStore()
    first = trigger()
    first.asset_state_store = store
    running = rack.app(APP)["release"]
    released: list[str] = []

    async def deploy() -> None:
        await _until_watching(store)
        released.append(await asyncio.to_thread(promote_new, rack, description="from the CLI"))

    events = asyncio.run(events_while(first, deploy))

    (new,) = released
    assert [e["release_id"] for e in events] == [new]
    (event,) = events
    assert event["app"] == APP
    assert event["previous_release"] == running
    assert event["description"] == "from the CLI"
    assert event["build_id"] == rack.state.release_get(APP, new)["build"]
    assert event["created"]
    assert store.values[CURSOR_KEY] == {"release_id": new}
    # the starting point was recorded, then the release reported
    assert store.writes == [{"release_id": running}, {"release_id": new}]


def test_a_watch_begun_before_its_app_existed_reports_the_apps_first_release(
    convox_rack_factory: Callable[..., RackEmulator],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A watcher declared for an app created later: the app's first deploy is an event too."""
    rack = convox_rack_factory()
    connect(monkeypatch, rack)
    store = FakeAssetStore()
    first = trigger()
    first.asset_state_store = store
    made: list[str] = []

    async def create_then_deploy() -> None:
        await _until_watching(store)
        assert rack.requests.count("GET", f"/apps/{APP}", status=404) >= 1
        rack.create_app(APP)
        made.append(await asyncio.to_thread(promote_new, rack, description="first deploy"))

    events = asyncio.run(events_while(first, create_then_deploy))
    assert [e["release_id"] for e in events] == made
    assert events[0]["previous_release"] is None
    assert store.writes == [{"release_id": ""}, {"release_id": made[0]}]
    logged = capsys.readouterr().out
    assert "from before its first release (the app has none yet)" in logged
    assert "failed" not in logged  # an app not made yet is waited for, not an error

    # a restart before that first deploy would have kept "before the first release"
    store.values[CURSOR_KEY] = {"release_id": ""}
    events = asyncio.run(events_while(restarted(first, store), _nothing, settle=0.4))
    assert [e["release_id"] for e in events] == made


def test_a_rolled_back_rollout_and_an_unpromoted_release_are_not_reported(
    convox_rack_factory: Callable[..., RackEmulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    rack = convox_rack_factory(timing=Timing(rollout=0.1))
    connect(monkeypatch, rack)
    seed(rack)
    store = FakeAssetStore()
    first = trigger()
    first.asset_state_store = store

    async def failed_deploy() -> None:
        await _until_watching(store)
        rack.add_release(APP, MANIFEST, promote=False)  # a build's release, never promoted
        failing = rack.add_release(APP, MANIFEST, promote=False)[1]["id"]
        rack.scripts.fail_next_promote(APP)
        with ConvoxClient(rack.url, "password") as client:
            await asyncio.to_thread(client.releases.submit_promote, APP, failing)
        for _ in range(300):
            if rack.app(APP)["status"] == "running" and rack.app(APP)["release"] != failing:
                break
            await asyncio.sleep(0.01)

    events = asyncio.run(events_while(first, failed_deploy, settle=0.4))
    assert events == []
    assert len(store.writes) == 1  # only the starting point


def test_restart_neither_repeats_nor_misses_a_release(rack: RackEmulator) -> None:
    store = FakeAssetStore()
    first = trigger()
    first.asset_state_store = store

    async def deploy_once() -> None:
        await _until_watching(store)
        await asyncio.to_thread(promote_new, rack)

    reported = asyncio.run(events_while(first, deploy_once))
    assert len(reported) == 1

    # the triggerer is down: nothing watches while another deploy happens
    while_down = promote_new(rack, description="while the triggerer was down")
    second = restarted(first, store)
    events = asyncio.run(events_while(second, _nothing, settle=0.4))
    assert [e["release_id"] for e in events] == [while_down]
    assert events[0]["previous_release"] == reported[0]["release_id"]

    # restarted again with nothing new: no event, the cursor stays
    third = restarted(second, store)
    assert asyncio.run(events_while(third, _nothing, settle=0.3)) == []
    assert store.values[CURSOR_KEY] == {"release_id": while_down}


def test_rollback_and_env_change_are_new_releases(rack: RackEmulator) -> None:
    store = FakeAssetStore()
    first = trigger()
    first.asset_state_store = store
    made: list[str] = []

    async def changes() -> None:
        await _until_watching(store)
        with ConvoxClient(rack.url, "password") as client:
            options = {"poll_interval": FAST, "initial_delay": 0}
            release = await asyncio.to_thread(
                client.environment.set, APP, {"FEATURE": "on"}, promote=True, **options
            )
            made.append(release.id)
            await _until_watching(store, 2)
            made.append(await asyncio.to_thread(client.releases.rollback, APP, **options))
            await _until_watching(store, 3)

    events = asyncio.run(events_while(first, changes))
    assert [e["release_id"] for e in events] == made
    assert "FEATURE=on" not in json.dumps(events)  # keys may show, never values
    assert "on" not in [e["description"] for e in events]


def test_transient_errors_and_a_missing_app_never_end_the_watch(
    rack: RackEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    store = FakeAssetStore({CURSOR_KEY: {"release_id": rack.app(APP)["release"]}})
    first = trigger()
    first.max_errors = 2
    first.asset_state_store = store
    for _ in range(3):  # more than max_errors in a row
        rack.faults.respond("GET", f"/apps/{APP}", 503)
    other = ConvoxReleaseEventTrigger(app="not-yet", poll_interval=FAST)
    other.asset_state_store = FakeAssetStore({CURSOR_KEY: {"release_id": "RGONE"}})  # deleted

    async def deploy_after_the_outage() -> None:
        for _ in range(300):
            if not any(f.fired < 1 for f in rack.faults.faults):
                break
            await asyncio.sleep(0.01)
        await asyncio.to_thread(promote_new, rack)

    async def both() -> list[dict[str, Any]]:
        async def nothing() -> None:
            await asyncio.sleep(0.3)

        watched, missing = await asyncio.gather(
            events_while(first, deploy_after_the_outage), events_while(other, nothing)
        )
        assert missing == []
        return watched

    events = asyncio.run(both())
    assert len(events) == 1
    logged = capsys.readouterr().out  # the triggerer's log (structlog writes to stdout here)
    assert "transient error 1 of 2 in a row: 503" in logged
    assert "Watching new releases of app demo (connection convox_default) failed" in logged
    assert "app not found: not-yet" in logged  # logged, not raised


def test_without_an_asset_state_store_the_cursor_is_an_airflow_variable(
    rack: RackEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Airflow 3.1/3.2 (no asset state store), or a trigger that several assets declare."""
    variables: dict[str, Any] = {}

    def get(key: str, default: Any = None, deserialize_json: bool = False) -> Any:
        assert deserialize_json
        return variables.get(key, default)

    def set_(key: str, value: Any, serialize_json: bool = False) -> None:
        assert serialize_json
        variables[key] = json.loads(json.dumps(value))

    from airflow.sdk import Variable

    monkeypatch.setattr(Variable, "get", staticmethod(get))
    monkeypatch.setattr(Variable, "set", staticmethod(set_))
    key = cursor_variable("convox_default", APP)
    assert key == "convox_release_cursor__convox_default__demo"

    for store in (None, SeveralAssets()):
        variables.clear()
        first = trigger()
        if store is not None:
            first.asset_state_store = store

        async def deploy() -> None:
            for _ in range(500):
                if key in variables:
                    break
                await asyncio.sleep(0.01)
            await asyncio.to_thread(promote_new, rack)

        events = asyncio.run(events_while(first, deploy))
        assert len(events) == 1
        assert variables[key] == {"release_id": events[0]["release_id"]}


def test_a_cursor_store_that_fails_is_retried_before_watching(
    rack: RackEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Flaky(FakeAssetStore):
        def __init__(self) -> None:
            super().__init__()
            self.failures = 2

        async def aget(self, key: str, default: Any = None) -> Any:
            if self.failures:
                self.failures -= 1
                raise ConnectionError("api-server restarting")
            return await super().aget(key, default)

    store = Flaky()
    first = trigger()
    first.asset_state_store = store

    async def nothing() -> None:
        await _until_watching(store)

    assert asyncio.run(events_while(first, nothing, settle=0.05)) == []
    assert store.failures == 0
    assert store.writes == [{"release_id": rack.app(APP)["release"]}]
    assert watch.CURSOR_KEY in store.values
