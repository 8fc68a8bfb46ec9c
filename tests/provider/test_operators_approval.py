"""ConvoxApprovalOperator against emulated racks: the body it asks with, and what it refuses.

These tests stop at the hand-over to Airflow's ApprovalOperator: its request row
(``upsert_hitl_detail``) is recorded here instead of being written to a metadata DB, and the
wait it then starts (``awaiting_input`` on 3.3, a deferral on 3.1) is caught. The whole
exchange, answered as the UI answers it, runs under ``dag.test()`` in
``tests/e2e/test_approved_release.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from airflow.providers.standard.operators import hitl
from airflow_compat import (
    AIRFLOW_RELEASE,
    AirflowFailException,
    AirflowSkipException,
    TaskAwaitingInput,
    TaskDeferred,
)
from convox_support import APP, MANIFEST, RecordingTI, connect

from convox_provider.client.errors import ConvoxInputError
from convox_provider.operators.approval import ConvoxApprovalOperator
from convox_provider.testing import RackEmulator

RackFactory = Callable[..., RackEmulator]
SECRETS = {"DATABASE_URL": "postgres://u:s3cr3t-old@db/x", "API_TOKEN": "tok-0ld-v4lue"}
NEW_SECRETS = {"DATABASE_URL": "postgres://u:s3cr3t-NEW@db/x", "SIGNING_KEY": "k3y-n3w-v4lue"}
WORKER = MANIFEST + "  worker:\n    build: .\n"


class Asked(Exception):
    """Raised in place of Airflow's wait once the approval request was written."""


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The approval requests written (each ``upsert_hitl_detail``'s arguments)."""
    requests: list[dict[str, Any]] = []

    def upsert(**fields: Any) -> None:
        requests.append(fields)
        raise Asked

    monkeypatch.setattr(hitl, "upsert_hitl_detail", upsert)
    return requests


class TI(RecordingTI):
    id = uuid.uuid4()

    def xcom_pull(self, task_ids: str, key: str) -> Any:
        return self.xcoms.get(key)


def ctx(ti: TI | None = None) -> dict[str, Any]:
    ti = ti or TI()
    return {"ti": ti, "task_instance": ti}


@pytest.fixture
def staging(convox_rack_factory: RackFactory, monkeypatch: pytest.MonkeyPatch) -> RackEmulator:
    rack = convox_rack_factory()
    connect(monkeypatch, rack, password=rack.password, conn_id="staging")
    rack.create_app(APP)
    rack.add_release(APP, MANIFEST, env=SECRETS, description="build 1111111111 first")
    return rack


@pytest.fixture
def production(convox_rack_factory: RackFactory, monkeypatch: pytest.MonkeyPatch) -> RackEmulator:
    rack = convox_rack_factory()
    connect(monkeypatch, rack, password=rack.password, conn_id="production")
    rack.create_app(APP)
    rack.add_release(APP, MANIFEST, env=SECRETS, description="prod first")
    return rack


def approval(release_id: str, **kwargs: Any) -> ConvoxApprovalOperator:
    kwargs.setdefault("convox_conn_id", "staging")
    return ConvoxApprovalOperator(task_id="approve", app=APP, release_id=release_id, **kwargs)


def candidate(rack: RackEmulator) -> dict[str, Any]:
    _, release = rack.add_release(
        APP, WORKER, env=NEW_SECRETS, description="build 2222222222 add worker", promote=False
    )
    return release


def test_the_body_shows_builds_env_keys_and_the_manifest_diff(
    staging: RackEmulator, asked: list[dict[str, Any]]
) -> None:
    new = candidate(staging)
    active = staging.app(APP)["release"]
    ti = TI()
    with pytest.raises(Asked):
        approval(new["id"]).execute(ctx(ti))
    [request] = asked
    body = request["body"]
    assert request["options"] == ["Approve", "Reject"]
    assert request["subject"] == f"Promote release {new['id']} of {APP}?"
    assert f"| Release | `{new['id']}` | `{active}` |" in body
    assert "| Build description | build 2222222222 add worker | build 1111111111 first |" in body
    assert "- Added: `SIGNING_KEY`" in body
    assert "- Removed: `API_TOKEN`" in body
    assert "- Changed: `DATABASE_URL`" in body
    assert "+  worker:\n+    build: ." in body
    assert ti.xcoms.keys() == {"release_id", "active_release", "change"}
    assert (ti.xcoms["release_id"], ti.xcoms["active_release"]) == (new["id"], active)
    for value in (*SECRETS.values(), *NEW_SECRETS.values()):
        assert value not in body


def test_a_candidate_on_another_rack_shows_the_env_a_copy_would_run_with(
    staging: RackEmulator, production: RackEmulator, asked: list[dict[str, Any]]
) -> None:
    new = candidate(staging)
    with pytest.raises(Asked):
        approval(new["id"], convox_conn_id="production", source_conn_id="staging").execute(ctx())
    body = asked[0]["body"]
    newest = production.releases(APP)[0]["id"]
    assert f"environment of release `{newest}`" in body
    assert "- no change" in body.split("**Manifest**")[0]  # production's env is unchanged
    assert "+  worker:" in body
    assert asked[0]["subject"] == f"Promote release {new['id']} of {APP} on {production.url}?"


def test_the_active_release_skips_without_asking(
    staging: RackEmulator, asked: list[dict[str, Any]]
) -> None:
    active = staging.app(APP)["release"]
    with pytest.raises(AirflowSkipException, match=f"already runs release {active}"):
        approval(active).execute(ctx())
    assert asked == []


def test_the_active_release_is_asked_about_when_told(
    staging: RackEmulator, asked: list[dict[str, Any]]
) -> None:
    active = staging.app(APP)["release"]
    with pytest.raises(Asked):
        approval(active, skip_when_unchanged=False).execute(ctx())
    assert "**Nothing would change:**" in asked[0]["body"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"release_id": "RNOSUCHRELEASE"}, "candidate release RNOSUCHRELEASE .* does not exist"),
        ({"app": "missing"}, "app missing does not exist on rack"),
        ({"source_app": "missing"}, "candidate release .* of app missing does not exist"),
    ],
)
def test_bad_input_is_refused_before_anyone_is_asked(
    staging: RackEmulator, asked: list[dict[str, Any]], kwargs: dict[str, Any], message: str
) -> None:
    release_id = kwargs.pop("release_id", candidate(staging)["id"])
    task = ConvoxApprovalOperator(
        task_id="approve",
        convox_conn_id="staging",
        release_id=release_id,
        **{"app": APP, **kwargs},
    )
    staging.requests.clear()
    with pytest.raises(ConvoxInputError, match=message):
        task.execute(ctx())
    assert asked == []
    assert staging.requests.count("GET") == len(staging.requests) > 0


def test_an_older_candidate_is_refused_with_the_rollback_hint(
    staging: RackEmulator, asked: list[dict[str, Any]]
) -> None:
    older = staging.app(APP)["release"]
    staging.add_release(APP, WORKER, description="newer")
    with pytest.raises(ConvoxInputError, match=r"older than the active release.*roll back"):
        approval(older).execute(ctx())
    assert asked == []


def test_arguments_are_checked_when_the_dag_is_parsed() -> None:
    with pytest.raises(TypeError, match="release_id must be a str"):
        ConvoxApprovalOperator(task_id="approve", app=APP, release_id=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"skip_when_unchanged=.* is a Jinja template"):
        ConvoxApprovalOperator(
            task_id="approve",
            app=APP,
            release_id="R1",
            skip_when_unchanged="{{ params.skip }}",  # type: ignore[arg-type]
        )
    with pytest.raises(ValueError, match="options"):
        ConvoxApprovalOperator(task_id="approve", app=APP, release_id="R1", options=["x"])


def test_the_wait_is_airflows_own_and_its_answer_resumes_the_task(
    staging: RackEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """3.3 parks the task in ``awaiting_input``; 3.1 defers to ``HITLTrigger``. Either way the
    answer comes back to ``execute_complete``: "Approve" returns Airflow's payload, "Reject"
    with ``fail_on_reject`` fails the task."""
    from datetime import datetime, timezone

    from airflow.providers.standard.exceptions import HITLRejectException

    written: list[dict[str, Any]] = []
    monkeypatch.setattr(hitl, "upsert_hitl_detail", lambda **fields: written.append(fields))
    new = candidate(staging)
    task = approval(new["id"], fail_on_reject=True)
    ti = TI()
    if AIRFLOW_RELEASE >= (3, 3):
        with pytest.raises(TaskAwaitingInput):
            task.execute(ctx(ti))
    else:
        with pytest.raises(TaskDeferred) as deferred:
            task.execute(ctx(ti))
        assert type(deferred.value.trigger).__name__ == "HITLTrigger"
    assert written[0]["options"] == ["Approve", "Reject"]
    answer = {
        "params_input": {},
        "responded_at": datetime.now(timezone.utc),
        "responded_by_user": {"id": "ops", "name": "ops"},
    }
    approved = task.execute_complete(ctx(ti), {**answer, "chosen_options": ["Approve"]})
    assert approved["chosen_options"] == ["Approve"]
    with pytest.raises(HITLRejectException):
        task.execute_complete(ctx(ti), {**answer, "chosen_options": ["Reject"]})


def test_an_approval_of_a_change_that_moved_since_fails(
    staging: RackEmulator, asked: list[dict[str, Any]]
) -> None:
    """Someone promoted another release while the approval waited: the approver did not see
    what a promote would change now, so their "Approve" does not let the run go on."""
    from datetime import datetime, timezone

    new = candidate(staging)
    ti = TI()
    task = approval(new["id"])
    with pytest.raises(Asked):
        task.execute(ctx(ti))
    _, meanwhile = staging.add_release(APP, MANIFEST, env={"ONLY_KEY": "v4lue-x"})
    answer = {
        "chosen_options": ["Approve"],
        "params_input": {},
        "responded_at": datetime.now(timezone.utc),
        "responded_by_user": {"id": "ops", "name": "ops"},
    }
    with pytest.raises(
        AirflowFailException,
        match=rf"no longer the one shown: .*older than the active release {meanwhile['id']}.*"
        r"run the DAG again",
    ) as failed:
        task.execute_complete(ctx(ti), answer)
    assert "v4lue-x" not in str(failed.value)
    # a Reject is not checked: nothing goes on anyway
    rejected = task.execute_complete(ctx(ti), {**answer, "chosen_options": ["Reject"]})
    assert rejected["chosen_options"] == ["Reject"]


def test_an_approval_fails_when_the_env_a_copy_would_run_changed_since(
    staging: RackEmulator, production: RackEmulator, asked: list[dict[str, Any]]
) -> None:
    from datetime import datetime, timezone

    new = candidate(staging)
    ti = TI()
    task = approval(new["id"], convox_conn_id="production", source_conn_id="staging")
    with pytest.raises(Asked):
        task.execute(ctx(ti))
    newest = production.set_env(APP, {**SECRETS, "FEATURE_FLAG": "on-v4lue"}, promote=False)
    answer = {
        "chosen_options": ["Approve"],
        "params_input": {},
        "responded_at": datetime.now(timezone.utc),
        "responded_by_user": {"id": "ops", "name": "ops"},
    }
    with pytest.raises(AirflowFailException) as failed:
        task.execute_complete(ctx(ti), answer)
    message = str(failed.value)
    assert f"would run the environment of release {newest['id']} (keys added ['FEATURE_FLAG'])" in (
        message
    )
    assert "on-v4lue" not in message
