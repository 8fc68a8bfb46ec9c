"""ConvoxCopyBuildOperator between two emulated racks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from airflow_compat import TaskDeferred
from convox_support import APP, FAST, MANIFEST, RecordingTI, connect, context, run_trigger

from convox_provider.client.errors import ConvoxInputError
from convox_provider.client.relay import ConvoxCopyError
from convox_provider.operators.builds import ConvoxCopyBuildOperator
from convox_provider.testing import RackEmulator

RackFactory = Callable[..., RackEmulator]


class PullingTI(RecordingTI):
    def xcom_pull(self, task_ids: str, key: str) -> Any:
        return self.xcoms[key]


@pytest.fixture
def racks(
    convox_rack_factory: RackFactory, monkeypatch: pytest.MonkeyPatch
) -> tuple[RackEmulator, RackEmulator, str]:
    staging, production = convox_rack_factory(), convox_rack_factory()
    connect(monkeypatch, staging, conn_id="staging")
    connect(monkeypatch, production, conn_id="production")
    staging.create_app(APP)
    production.create_app(APP)
    build, _ = staging.add_release(APP, MANIFEST, description="v1", env={"SECRET": "hunter2"})
    return staging, production, str(build["id"])


def operator(build_id: str, **kwargs: Any) -> ConvoxCopyBuildOperator:
    return ConvoxCopyBuildOperator(
        task_id="copy",
        source_conn_id="staging",
        source_app=APP,
        build_id=build_id,
        target_conn_id="production",
        poll_interval=FAST,
        **kwargs,
    )


def test_copies_and_pushes_the_target_ids(racks: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _, production, build_id = racks
    ti = RecordingTI()
    result = operator(build_id).execute(context(ti))
    logged = capsys.readouterr().out
    [copied] = production.builds(APP)
    assert result == copied["id"]
    assert ti.xcoms == {"build_id": copied["id"], "release_id": copied["release"]}
    assert production.app(APP)["release"] != copied["release"]  # not promoted
    assert "Not verified: that the images were pushed" in logged
    assert "hunter2" not in logged


def test_a_retry_does_not_import_twice(racks: Any) -> None:
    _, production, build_id = racks
    first = operator(build_id).execute(context())
    second = operator(build_id).execute(context())
    assert first == second
    assert production.requests.count("POST", f"/apps/{APP}/builds/import") == 1


def test_promote_waits_for_the_rollout_on_the_target(racks: Any) -> None:
    _, production, build_id = racks
    ti = RecordingTI()
    result = operator(build_id, promote=True).execute(context(ti))
    assert production.app(APP)["release"] == ti.xcoms["release_id"]
    assert production.app(APP)["status"] == "running"
    assert result == ti.xcoms["build_id"]


def test_promote_defers_on_the_target(racks: Any) -> None:
    _, production, build_id = racks
    ti = PullingTI()
    task = operator(build_id, promote=True, deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(context(ti))
    assert set(ti.xcoms) == {"build_id", "release_id"}
    trigger: Any = deferred.value.trigger
    assert trigger.convox_conn_id == "production"
    [event] = run_trigger(trigger)[-1:]
    assert task.execute_complete(context(ti), event) == ti.xcoms["build_id"]
    assert production.app(APP)["release"] == ti.xcoms["release_id"]


def test_bad_input_writes_nothing(racks: Any) -> None:
    staging, production, build_id = racks
    with pytest.raises(ConvoxInputError, match="does not exist on the target rack"):
        operator(build_id, target_app="missing").execute(context())
    with pytest.raises(ConvoxInputError, match="cannot contain"):
        operator(build_id, target_app="a/b").execute(context())
    for rack in (staging, production):
        assert rack.requests.count("POST") == 0


def test_a_cut_export_leaves_nothing_on_the_target(racks: Any) -> None:
    staging, production, build_id = racks
    staging.faults.truncate("GET", f"/apps/{APP}/builds/{build_id}.tgz", 100)
    with pytest.raises(ConvoxCopyError, match="source rack"):
        operator(build_id).execute(context())
    assert production.builds(APP) == []
