"""ConvoxScaleServiceOperator against the rack emulator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jinja2
import pytest
from airflow_compat import TaskDeferred
from convox_support import APP, FAST, RecordingTI, connect, context, run_trigger, seed

from convox_provider.client.client import ConvoxClient
from convox_provider.client.errors import ConvoxNotFoundError
from convox_provider.operators.services import ConvoxScaleServiceOperator
from convox_provider.testing import RackEmulator, Timing
from convox_provider.triggers.releases import ConvoxReleaseTrigger

RackFactory = Callable[..., RackEmulator]


@pytest.fixture
def make_rack(convox_rack_factory: RackFactory, monkeypatch: pytest.MonkeyPatch) -> RackFactory:
    def make(rollout: float = 0.0) -> RackEmulator:
        rack = convox_rack_factory(timing=Timing(rollout=rollout))
        connect(monkeypatch, rack)
        seed(rack)
        return rack

    return make


@pytest.fixture
def rack(make_rack: RackFactory) -> RackEmulator:
    return make_rack()


def scale_op(**options: Any) -> ConvoxScaleServiceOperator:
    return ConvoxScaleServiceOperator(task_id="scale", app=APP, poll_interval=FAST, **options)


def web(client: ConvoxClient) -> tuple[int, int, int]:
    (service,) = [s for s in client.services.list(APP) if s.name == "web"]
    return service.count, service.cpu, service.memory


def test_templated_fields() -> None:
    assert set(ConvoxScaleServiceOperator.template_fields) == {
        "convox_conn_id",
        "app",
        "service",
        "count",
        "cpu",
        "memory",
    }


def test_something_must_change() -> None:
    with pytest.raises(ValueError, match="needs count, cpu or memory"):
        scale_op(service="web")


def test_scale_and_wait_for_the_rollout(rack: RackEmulator, client: ConvoxClient) -> None:
    release = rack.app(APP)["release"]
    ti = RecordingTI()
    assert scale_op(service="web", count=3, cpu=256, memory=512).execute(context(ti)) == release
    assert web(client) == (3, 256, 512)
    assert (rack.app(APP)["status"], rack.app(APP)["release"]) == ("running", release)
    assert ti.pushed == [("release_id", release)]
    assert rack.requests.count("PUT", f"/apps/{APP}/services/web") == 1
    assert len(rack.releases(APP)) == 1  # scaling creates no release


def test_rendered_sizes_are_whole_numbers(rack: RackEmulator, client: ConvoxClient) -> None:
    op = scale_op(service="web", count="{{ params.count }}")
    op.render_template_fields({"params": {"count": 4}}, jinja2.Environment())  # type: ignore[typeddict-unknown-key]
    assert op.count == "4"
    op.execute(context())
    assert web(client)[0] == 4


def test_a_size_that_is_not_a_number_fails_before_any_request(rack: RackEmulator) -> None:
    rack.requests.clear()
    with pytest.raises(ValueError, match="count must be a whole number, not 'many'"):
        scale_op(service="web", count="many").execute(context())
    assert len(rack.requests) == 0


def test_an_unknown_service_fails(rack: RackEmulator) -> None:
    with pytest.raises(ConvoxNotFoundError):
        scale_op(service="worker", count=1).execute(context())


def test_without_waiting(make_rack: RackFactory) -> None:
    rack = make_rack(rollout=60)
    scale_op(service="web", count=2, wait_for_completion=False).execute(context())
    assert rack.app(APP)["status"] == "updating"


def test_deferred(make_rack: RackFactory) -> None:
    rack = make_rack(rollout=0.2)
    release = rack.app(APP)["release"]
    op = scale_op(service="web", count=5, deferrable=True, timeout=60)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, ConvoxReleaseTrigger)
    assert trigger.release_id == release
    (event,) = run_trigger(trigger)
    assert op.execute_complete(context(), event) == release
    assert rack.app(APP)["status"] == "running"
    with ConvoxClient(rack.url, "password") as client:
        assert web(client)[0] == 5
