"""Asset URIs, the operators' outlets and their events' extra, extra links, and the actor of a
task's requests, against the rack emulator (direct and behind an emulated console)."""

from __future__ import annotations

import json
import time
import warnings
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk import Asset
from airflow_compat import AirflowException, TaskDeferred
from convox_support import APP, FAST, RecordingTI, connect, run_trigger, seed

from convox_provider.assets import asset_uri, convox_app_asset
from convox_provider.client.config import ClientConfig
from convox_provider.links import (
    ConvoxAppLink,
    ConvoxBuildLink,
    ConvoxReleaseLink,
    ConvoxServiceLink,
)
from convox_provider.operators.builds import ConvoxBuildOperator, ConvoxDeployOperator
from convox_provider.operators.releases import ConvoxPromoteReleaseOperator, ConvoxRollbackOperator
from convox_provider.testing import RackEmulator
from convox_provider.triggers.releases import ConvoxReleaseTrigger

SECRET = "rack-password-0123456789"


# --- URIs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rack", "uri"),
    [
        ("acme/production", "convox://acme/production/web"),
        ("ACME/Production", "convox://acme/production/web"),
        ("api.0a1b.convox.cloud", "convox://api.0a1b.convox.cloud/web"),
        ("https://api.0a1b.convox.cloud/", "convox://api.0a1b.convox.cloud/web"),
        (f"https://convox:{SECRET}@api.0a1b.convox.cloud", "convox://api.0a1b.convox.cloud/web"),
        (f"convox:{SECRET}@api.0a1b.convox.cloud:5443", "convox://api.0a1b.convox.cloud:5443/web"),
    ],
)
def test_the_uri_names_the_rack_without_credentials(rack: str, uri: str) -> None:
    assert asset_uri(rack, "web") == uri
    assert convox_app_asset(rack, "web").uri == uri


@pytest.mark.parametrize(
    ("rack", "app", "expected"),
    [
        ("", "web", "rack must name the rack"),
        ("acme/prod/x", "web", "is not '<org>/<rack>'"),
        ("acme production", "web", "is not a host name"),
        ("acme/production", "Web", "is not a Convox app name"),
        ("acme/production", "{{ params.app }}", "cannot be a template"),
    ],
)
def test_a_bad_rack_or_app_is_refused(rack: str, app: str, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        asset_uri(rack, app)


@pytest.mark.parametrize(
    ("given", "uri"),
    [
        ("convox://ACME/Production/web", "convox://acme/production/web"),
        ("convox://ci-bot@acme/production/web/", "convox://acme/production/web"),
        ("convox://api.rack.example/web#x", "convox://api.rack.example/web"),
    ],
)
def test_airflow_normalises_a_hand_written_uri_with_the_handler(given: str, uri: str) -> None:
    assert Asset(given).uri == uri


def test_a_password_in_a_hand_written_uri_is_dropped() -> None:
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        asset = Asset(f"convox://convox:{SECRET}@api.rack.example/web")
    assert asset.uri == "convox://api.rack.example/web"
    assert SECRET not in asset.uri
    # Airflow names an asset by the text given (so this one's name holds the password): the
    # helper builds the URI, and so the name, from the rack URL without its credentials.
    helped = convox_app_asset(f"https://convox:{SECRET}@api.rack.example", "web")
    assert SECRET not in helped.name + helped.uri


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("convox://acme", "names no app"),
        ("convox://acme/production/web?x=1", "takes no query"),
        ("convox://a/b/c/web", "too many parts"),
        ("convox://acme/production/Web_1", "is not a Convox app name"),
    ],
)
def test_airflow_refuses_a_bad_hand_written_uri(given: str, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        Asset(given)


# --- outlets ----------------------------------------------------------------------------------


def test_rack_declares_the_outlet_at_parse_time(tmp_path: Any) -> None:
    mine = Asset("s3://bucket/key")
    task = ConvoxDeployOperator(
        task_id="deploy", app="web", rack="acme/production", source_dir=tmp_path, outlets=[mine]
    )
    assert [o.uri for o in task.outlets] == ["s3://bucket/key", "convox://acme/production/web"]
    assert ConvoxDeployOperator(task_id="d", app="web", source_dir=tmp_path).outlets == []
    assert not hasattr(ConvoxBuildOperator(task_id="b", app="web", source_dir=tmp_path), "rack")


def test_a_templated_app_cannot_name_an_asset() -> None:
    with pytest.raises(ValueError, match=r"ConvoxPromoteReleaseOperator 'p'.*cannot be a template"):
        ConvoxPromoteReleaseOperator(task_id="p", app="{{ params.app }}", rack="acme/production")


class Events:
    """``context["outlet_events"]``: an accessor with an ``extra`` dict per asset (by URI: an
    Airflow 3.1 ``Asset`` is not hashable)."""

    def __init__(self) -> None:
        self._by_uri: dict[str, SimpleNamespace] = {}

    def __getitem__(self, asset: Asset) -> SimpleNamespace:
        return self._by_uri.setdefault(asset.uri, SimpleNamespace(extra={}))


class PullingTI(RecordingTI):
    """A recording task instance that also answers ``xcom_pull`` of its own pushes."""

    dag_id, run_id, task_id, map_index = "dag", "manual__1", "promote", -1

    def xcom_pull(self, task_ids: str, key: str) -> Any:
        return self.xcoms.get(key)


@pytest.fixture
def rack(convox_rack_factory: Any, monkeypatch: pytest.MonkeyPatch) -> RackEmulator:
    made: RackEmulator = convox_rack_factory()
    connect(monkeypatch, made)
    seed(made, releases=2)
    return made


def test_a_rack_the_connection_does_not_reach_is_refused_before_any_request(
    rack: RackEmulator,
) -> None:
    task = ConvoxPromoteReleaseOperator(
        task_id="promote", app=APP, rack="acme/production", poll_interval=FAST
    )
    with pytest.raises(AirflowException, match=r"names rack 'acme/production'.*reaches '127\."):
        task.execute({"ti": PullingTI()})
    assert len(rack.requests) == 0


def test_a_successful_rollback_gives_its_asset_event_the_deploy(rack: RackEmulator) -> None:
    host = f"{rack.host}:{rack.port}"
    task = ConvoxRollbackOperator(task_id="rollback", app=APP, rack=host, poll_interval=FAST)
    ti = PullingTI()
    ctx: dict[str, Any] = {"ti": ti, "outlet_events": Events()}
    release_id = task.execute(ctx)
    task.post_execute(ctx)
    (asset,) = task.outlets
    release = next(r for r in rack.releases(APP) if r["id"] == release_id)
    assert ctx["outlet_events"][asset].extra == {
        "app": APP,
        "rack": host,
        "release_id": release_id,
        "build_id": release["build"],
        "description": release["description"] or None,
        "rollback": True,
        "promoted": True,
    }
    urls = ti.xcoms["service_urls"]
    assert set(urls) == {"web"}
    assert urls["web"].startswith("https://web.")
    # Only ids and URLs: neither the key nor an environment value.
    assert "password" not in json.dumps([ctx["outlet_events"][asset].extra, ti.pushed])


def test_a_failed_read_after_the_deploy_still_emits_the_event(rack: RackEmulator) -> None:
    task = ConvoxPromoteReleaseOperator(
        task_id="promote", app=APP, rack=f"{rack.host}:{rack.port}", poll_interval=FAST
    )
    ti = PullingTI()
    ctx: dict[str, Any] = {"ti": ti, "outlet_events": Events()}
    release_id = task.execute(ctx)
    rack.faults.respond("GET", f"/apps/{APP}/releases/{release_id}", 503)
    rack.faults.respond("GET", f"/apps/{APP}/services", 503)
    task.post_execute(ctx)
    extra = ctx["outlet_events"][task.outlets[0]].extra
    assert (extra["release_id"], extra["build_id"], extra["description"]) == (
        release_id,
        None,
        None,
    )
    assert "service_urls" not in ti.xcoms


# --- links ------------------------------------------------------------------------------------


def links(monkeypatch: pytest.MonkeyPatch, pushed: dict[str, Any]) -> list[str]:
    monkeypatch.setattr("convox_provider.links._xcom", lambda ti_key, key: pushed.get(key))
    made = (ConvoxAppLink(), ConvoxBuildLink(), ConvoxReleaseLink(), ConvoxServiceLink())
    return [link.get_link(None, ti_key=None) for link in made]  # type: ignore[arg-type]


def test_links_are_built_from_what_the_task_pushed(monkeypatch: pytest.MonkeyPatch) -> None:
    page = ClientConfig.create("console.convox.com", SECRET, rack="acme/prod").console_app_page(
        "web"
    )
    assert page == "https://console.convox.com/organizations/acme/racks/prod/apps/web"
    pushed = {
        "convox_app_page": page,
        "build_id": "BABC",
        "release_id": "RABC",
        "service_urls": {"worker": "https://worker.x", "api": "https://api.x"},
    }
    assert links(monkeypatch, pushed) == [
        page,
        f"{page}/builds/BABC",
        f"{page}/releases/RABC",
        "https://api.x",
    ]
    assert links(monkeypatch, {}) == ["", "", "", ""]
    direct = ClientConfig.create(f"https://convox:{SECRET}@api.rack.example")
    assert direct.console_app_page("web") is None


def test_a_console_task_pushes_its_app_page_before_any_wait(
    convox_rack_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    console = convox_rack_factory(password=SECRET, console="acme/staging", rack_name="staging")
    seed(console, releases=2)
    value = {"conn_type": "convox", "host": console.url, "password": SECRET}
    value["extra"] = {"rack": "acme/staging", "max_retries": 0}
    monkeypatch.setenv("AIRFLOW_CONN_CONVOX_DEFAULT", json.dumps(value))
    task = ConvoxPromoteReleaseOperator(
        task_id="promote", app=APP, wait_for_completion=False, poll_interval=FAST
    )
    ti = PullingTI()
    task._preflight({"ti": ti})
    with task._client():
        pass
    assert ti.pushed[0] == (
        "convox_app_page",
        f"{console.url}/organizations/acme/racks/staging/apps/{APP}",
    )
    assert SECRET not in json.dumps(ti.pushed)


# --- the actor of a deferred wait -------------------------------------------------------------


def test_a_trigger_carries_the_actor_through_its_serialization(rack: RackEmulator) -> None:
    actor = "airflow:deploy/manual__1/promote"
    release_id = rack.app(APP)["release"]
    trigger = ConvoxReleaseTrigger(
        convox_conn_id="convox_default",
        app=APP,
        release_id=release_id,
        end_time=time.time() + 10,
        poll_interval=FAST,
        actor=actor,
    )
    _, kwargs = trigger.serialize()
    assert kwargs["actor"] == actor
    assert "actor" not in ConvoxReleaseTrigger(**{**kwargs, "actor": None}).serialize()[1]
    rack.requests.clear()
    (event,) = run_trigger(ConvoxReleaseTrigger(**json.loads(json.dumps(kwargs))))
    assert event["status"] == "success"
    assert len(rack.requests) > 0
    assert {r.header("Convox-Actor") for r in rack.requests} == {actor}


def test_a_task_passes_its_actor_to_the_trigger(
    rack: RackEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "convox_provider.hooks.convox.actor_of_current_task", lambda: "airflow:d/r/promote"
    )
    task = ConvoxPromoteReleaseOperator(
        task_id="promote", app=APP, deferrable=True, poll_interval=FAST
    )
    rack.requests.clear()
    with pytest.raises(TaskDeferred) as deferred:
        task.execute({"ti": PullingTI()})
    assert deferred.value.trigger.actor == "airflow:d/r/promote"
    assert {r.header("Convox-Actor") for r in rack.requests} == {"airflow:d/r/promote"}
