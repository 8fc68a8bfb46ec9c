"""``convox_on_release``: the asset its watcher feeds, the watcher's trigger against the rack, and
the DAG a release event starts, under ``dag.test()`` in both modes.

``dag.test()`` cannot be handed a triggering asset event, so the chain is checked in two halves
joined by the payload: the DAG's own trigger (as the triggerer re-creates it from the serialized
DAG) reports a promote made by another client, and the DAG's first task, given that event as
Airflow would, picks its release; then the DAG runs to its end on the rack.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from convox_provider.assets import asset_uri
from convox_provider.client.client import ConvoxClient
from convox_provider.testing import RackEmulator
from convox_provider.triggers.watch import ConvoxReleaseEventTrigger

from .harness import MANIFEST, MODES
from .test_example_dags import task_states, xcoms

DAG_ID = "convox_on_release"
APP = "demo"  # the DAG's default CONVOX_ASSET_APP
ExampleDag = Callable[[str, str], Any]


@pytest.fixture
def demo(rack: RackEmulator) -> str:
    """App ``demo`` on the session's rack, running a release of the sample app."""
    if APP not in {a["name"] for a in rack.state.app_list()}:
        rack.create_app(APP)
        rack.add_release(APP, MANIFEST, description="seed")
    return str(rack.app(APP)["release"])


class Store:
    """An Airflow 3.3 asset state store of one asset."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = value


class TriggeringEvents(Mapping[Any, Sequence[Any]]):
    """``context["triggering_asset_events"]`` of a run one asset event started: a mapping
    looked up by the asset (an Asset is not hashable on Airflow 3.1, so no dict)."""

    def __init__(self, asset: Any, events: Sequence[Any]) -> None:
        self.asset, self.events = asset, events

    def __getitem__(self, key: Any) -> Sequence[Any]:
        if key == self.asset:
            return self.events
        raise KeyError(key)

    def __iter__(self) -> Iterator[Any]:
        return iter([self.asset])

    def __len__(self) -> int:
        return 1


def the_asset(dag: Any) -> Any:
    """The one asset the DAG is scheduled on."""
    (asset,) = dag.timetable.asset_condition.objects
    return asset


def test_the_dag_is_scheduled_on_the_apps_asset_with_a_release_watcher(
    example_dag: ExampleDag,
) -> None:
    dag = example_dag(DAG_ID, "sync")
    asset = the_asset(dag)
    assert asset.uri == asset_uri("local", APP) == "convox://local/demo"
    (watcher,) = asset.watchers
    trigger = watcher.trigger
    assert isinstance(trigger, ConvoxReleaseEventTrigger)
    assert trigger.serialize()[1] == {
        "app": APP,
        "convox_conn_id": "convox_default",
        "poll_interval": 30.0,
    }
    assert set(dag.task_ids) == {"release", "settled", "smoke_test"}


def _watch_one_promote(rack: RackEmulator, trigger: ConvoxReleaseEventTrigger) -> tuple[str, Any]:
    """Run ``trigger`` (re-created from its kwargs) while another client promotes; the new
    release and the one event."""
    classpath, kwargs = trigger.serialize()
    assert classpath == "convox_provider.triggers.watch.ConvoxReleaseEventTrigger"
    watcher = ConvoxReleaseEventTrigger(**{**json.loads(json.dumps(kwargs)), "poll_interval": 0.05})
    store = Store()
    watcher.asset_state_store = store

    async def scenario() -> tuple[str, list[Any]]:
        events: list[Any] = []

        async def collect() -> None:
            async for event in watcher.run():
                events.append(event.payload)

        task = asyncio.ensure_future(collect())
        try:
            for _ in range(500):  # until it has recorded its starting point
                if store.values:
                    break
                await asyncio.sleep(0.02)
            new = rack.add_release(APP, MANIFEST, promote=False, description="from CI")[1]["id"]
            with ConvoxClient(rack.url, rack.password) as client:
                await asyncio.to_thread(
                    client.releases.promote, APP, new, initial_delay=0, poll_interval=0.05
                )
            for _ in range(200):
                if events:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)  # no second event comes
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return str(new), events

    new, events = asyncio.run(scenario())
    (event,) = events
    return new, event


@pytest.mark.parametrize("mode", MODES)
def test_a_release_event_starts_a_run_that_checks_that_release(
    example_dag: ExampleDag, rack: RackEmulator, demo: str, mode: str
) -> None:
    dag = example_dag(DAG_ID, mode)
    asset = the_asset(dag)
    new, payload = _watch_one_promote(rack, asset.watchers[0].trigger)
    assert payload["release_id"] == new
    assert payload["previous_release"] == demo
    assert payload["description"] == "from CI"

    # the first task, given the event as Airflow hands it over, picks that release
    event = SimpleNamespace(extra={"from_trigger": True, "payload": payload})
    events = TriggeringEvents(asset, [event])
    picked = dag.get_task("release").python_callable(triggering_asset_events=events)
    assert picked == new

    execs = len(rack.execs)
    run = dag.test()  # a manual run: it checks the release the app runs, the new one
    assert task_states(run) == dict.fromkeys(("release", "settled", "smoke_test"), "success")
    values = xcoms(run)
    assert values["release", "return_value"] == new
    assert values["settled", "release_id"] == new
    assert values["smoke_test", "exit_code"] == 0
    (execution,) = rack.execs[execs:]
    assert (execution.app, execution.exit_code) == (APP, 0)
