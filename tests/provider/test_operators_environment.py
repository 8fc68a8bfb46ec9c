"""ConvoxEnvSetOperator against the rack emulator, and the masking of environment values."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jinja2
import pytest
from airflow.sdk._shared.secrets_masker import redact
from airflow.sdk.execution_time.task_runner import _serialize_rendered_fields
from airflow_compat import AirflowFailException, TaskDeferred
from convox_support import APP, FAST, RecordingTI, connect, context, run_trigger, seed

from convox_provider.client.errors import ConvoxInputError
from convox_provider.operators.environment import ConvoxEnvSetOperator, MaskedEnvironment
from convox_provider.testing import RackEmulator, Timing
from convox_provider.triggers.releases import ConvoxReleaseTrigger

RackFactory = Callable[..., RackEmulator]

TOKEN = "tok-3f9a1c77e2b54d0e"  # a value that must never be shown
DB_URL = "postgres://app:s3cr3t-pw@db.internal/app"


@pytest.fixture
def make_rack(convox_rack_factory: RackFactory, monkeypatch: pytest.MonkeyPatch) -> RackFactory:
    """A rack whose rollouts take ``rollout`` seconds; app ``demo`` runs one release with
    ``KEEP=kept`` and ``OLD=gone-soon`` in its environment."""

    def make(rollout: float = 0.0) -> RackEmulator:
        rack = convox_rack_factory(timing=Timing(rollout=rollout))
        connect(monkeypatch, rack)
        seed(rack)
        rack.set_env(APP, {"KEEP": "kept", "OLD": "gone-soon"})
        return rack

    return make


@pytest.fixture
def rack(make_rack: RackFactory) -> RackEmulator:
    return make_rack()


def env_op(**options: Any) -> ConvoxEnvSetOperator:
    return ConvoxEnvSetOperator(task_id="env", app=APP, poll_interval=FAST, **options)


def env_of(rack: RackEmulator, release_id: str) -> dict[str, str]:
    (release,) = [r for r in rack.releases(APP) if r["id"] == release_id]
    return dict(line.split("=", 1) for line in release["env"].splitlines())


def newest(rack: RackEmulator) -> str:
    return str(rack.releases(APP)[0]["id"])


def render(op: ConvoxEnvSetOperator, **params: Any) -> None:
    op.render_template_fields({"params": params}, jinja2.Environment())  # type: ignore[arg-type]


# --- arguments ------------------------------------------------------------------------------------


def test_templated_fields_show_values_masked() -> None:
    assert set(ConvoxEnvSetOperator.template_fields) == {
        "convox_conn_id",
        "app",
        "set",
        "unset",
        "release_id",
    }
    assert ConvoxEnvSetOperator.template_fields_renderers["set"] == "json"


def test_unset_must_be_a_list_of_keys() -> None:
    with pytest.raises(TypeError, match="unset must be a list of keys"):
        env_op(unset="OLD")


def test_set_must_render_to_a_mapping() -> None:
    op = env_op(set="{{ params.pairs }}")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="set must be a mapping of variable names to values"):
        render(op, pairs="A=1")


# --- writing ------------------------------------------------------------------------------------


def test_set_and_unset_in_one_new_release(rack: RackEmulator) -> None:
    before = rack.app(APP)["release"]
    ti = RecordingTI()
    release_id = env_op(set={"TOKEN": TOKEN, "KEEP": "kept"}, unset=["OLD"]).execute(context(ti))
    assert release_id == newest(rack) != before
    assert env_of(rack, release_id) == {"KEEP": "kept", "TOKEN": TOKEN}
    assert rack.requests.count("POST", f"/apps/{APP}/releases") == 1
    assert ti.pushed == [("release_id", release_id)]
    assert rack.app(APP)["release"] == before  # not promoted


def test_a_change_already_in_the_newest_release_creates_nothing(rack: RackEmulator) -> None:
    first = env_op(set={"TOKEN": TOKEN}, unset=["OLD"]).execute(context())
    again = env_op(set={"TOKEN": TOKEN}, unset=["OLD"]).execute(context())  # e.g. a retry
    assert again == first
    assert rack.requests.count("POST", f"/apps/{APP}/releases") == 1


def test_replace_writes_the_whole_environment_once(rack: RackEmulator) -> None:
    first = env_op(set={"TOKEN": TOKEN}, replace=True).execute(context())
    assert env_of(rack, first) == {"TOKEN": TOKEN}
    assert env_op(set={"TOKEN": TOKEN}, replace=True).execute(context()) == first
    assert rack.requests.count("POST", f"/apps/{APP}/releases") == 1


def test_start_from_a_given_release(rack: RackEmulator) -> None:
    base = newest(rack)
    rack.set_env(APP, {"OTHER": "writer"}, promote=False)
    release_id = env_op(set={"TOKEN": TOKEN}, release_id=base).execute(context())
    assert env_of(rack, release_id) == {"KEEP": "kept", "OLD": "gone-soon", "TOKEN": TOKEN}


@pytest.mark.parametrize(
    ("changes", "named"),
    [({"BAD KEY": TOKEN}, "'BAD KEY'"), ({"MULTI": f"{TOKEN}\nINJECTED=1"}, "'MULTI'")],
)
def test_invalid_input_fails_before_any_request_naming_the_key_only(
    rack: RackEmulator, changes: dict[str, str], named: str
) -> None:
    rack.requests.clear()
    with pytest.raises(ConvoxInputError) as failure:
        env_op(set=changes, replace=True).execute(context())
    assert named in str(failure.value)
    assert TOKEN not in str(failure.value)
    assert len(rack.requests) == 0


def test_keys_both_set_and_unset_are_refused(rack: RackEmulator) -> None:
    with pytest.raises(ConvoxInputError, match="keys both set and unset: OLD"):
        env_op(set={"OLD": TOKEN}, unset=["OLD"]).execute(context())


# --- promoting --------------------------------------------------------------------------------


def test_promote_and_wait(make_rack: RackFactory) -> None:
    rack = make_rack(rollout=0.1)
    seen: list[str] = []
    ti = RecordingTI(lambda key, value: seen.append(rack.app(APP)["release"]))
    release_id = env_op(set={"TOKEN": TOKEN}, promote=True).execute(context(ti))
    assert (rack.app(APP)["status"], rack.app(APP)["release"]) == ("running", release_id)
    assert ti.pushed == [("release_id", release_id)]
    assert seen[0] != release_id  # pushed before the promote
    assert rack.requests.count("POST", f"/apps/{APP}/releases/{release_id}/promote") == 1


def test_a_release_the_app_already_runs_is_not_promoted_again(rack: RackEmulator) -> None:
    first = env_op(set={"TOKEN": TOKEN}, promote=True).execute(context())
    assert env_op(set={"TOKEN": TOKEN}, promote=True).execute(context()) == first  # a retry
    assert rack.requests.count("POST", f"/apps/{APP}/releases/{first}/promote") == 1


def test_a_rollout_in_progress_of_the_release_is_waited_for(make_rack: RackFactory) -> None:
    rack = make_rack(rollout=0.3)
    first = env_op(set={"TOKEN": TOKEN}, promote=True, wait_for_completion=False).execute(context())
    assert rack.app(APP)["status"] == "updating"
    assert env_op(set={"TOKEN": TOKEN}, promote=True).execute(context()) == first
    assert (rack.app(APP)["status"], rack.app(APP)["release"]) == ("running", first)
    assert rack.requests.count("POST", f"/apps/{APP}/releases/{first}/promote") == 1


def test_rolled_back_promote_fails_the_task(rack: RackEmulator) -> None:
    before = rack.app(APP)["release"]
    rack.scripts.fail_next_promote(APP)
    with pytest.raises(AirflowFailException, match=f"back on release {before}"):
        env_op(set={"TOKEN": TOKEN}, promote=True).execute(context())


def test_promote_deferred(make_rack: RackFactory) -> None:
    rack = make_rack(rollout=0.2)
    op = env_op(set={"TOKEN": TOKEN}, promote=True, deferrable=True, timeout=60)
    ti = RecordingTI()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context(ti))
    release_id = ti.xcoms["release_id"]
    trigger = deferred.value.trigger
    assert isinstance(trigger, ConvoxReleaseTrigger)
    assert trigger.release_id == release_id
    assert TOKEN not in repr(trigger.serialize())
    (event,) = run_trigger(trigger)
    assert op.execute_complete(context(ti), event) == release_id
    assert rack.app(APP)["release"] == release_id


# --- masking ------------------------------------------------------------------------------------


def test_literal_values_are_masked_when_the_operator_is_created() -> None:
    env_op(set={"DATABASE_URL": DB_URL})
    assert redact(f"connecting to {DB_URL}") == "connecting to ***"


def test_rendered_values_are_masked_and_shown_as_keys_only() -> None:
    op = env_op(set={"API_TOKEN": "{{ params.token }}", "MODE": "on"}, unset=["{{ params.key }}"])
    render(op, token="tok-rendered-5b0c2e", key="OLD")
    assert isinstance(op.set, MaskedEnvironment)
    assert dict(op.set) == {"API_TOKEN": "tok-rendered-5b0c2e", "MODE": "on"}
    assert op.unset == ["OLD"]
    assert redact("token=tok-rendered-5b0c2e") == "token=***"
    assert repr(op.set) == "MaskedEnvironment({'API_TOKEN': '***', 'MODE': '***'})"
    # What Airflow stores as the task's Rendered Templates:
    rendered = _serialize_rendered_fields(op)  # type: ignore[arg-type]
    assert rendered["set"] == {"API_TOKEN": "***", "MODE": "***"}
    assert "tok-rendered-5b0c2e" not in repr(rendered)
    assert "on" not in rendered["set"].values()  # too short for the masker, hidden anyway


def test_a_value_from_the_runs_own_ids_keeps_them_readable() -> None:
    """``{{ ts }}`` is part of a scheduled run's id: masking it would print the run id as
    ``scheduled__***`` in every log line. It is no secret; the other values still are."""
    ts = "2026-11-30T02:00:00+00:00"
    run_id = f"scheduled__{ts}"
    op = env_op(set={"DEPLOYED_AT": "{{ ts }}", "RUN": "{{ run_id }}", "TOKEN": "{{ params.t }}"})
    context = {"ts": ts, "run_id": run_id, "params": {"t": "tok-rendered-77c1d0"}}
    op.render_template_fields(context, jinja2.Environment())  # type: ignore[arg-type]
    assert dict(op.set) == {"DEPLOYED_AT": ts, "RUN": run_id, "TOKEN": "tok-rendered-77c1d0"}
    assert redact(f"run {run_id} started at {ts}") == f"run {run_id} started at {ts}"
    assert redact("token tok-rendered-77c1d0") == "token ***"
    assert repr(op.set) == "MaskedEnvironment({'DEPLOYED_AT': '***', 'RUN': '***', 'TOKEN': '***'})"


def test_no_value_is_logged(rack: RackEmulator, capfd: pytest.CaptureFixture[str]) -> None:
    """The task log here is the unmasked console: what reaches it is what the operator logged."""
    op = env_op(set={"API_TOKEN": TOKEN, "SHORT": "Zq9x"}, unset=["OLD"], promote=True)
    ti = RecordingTI()
    op.execute(context(ti))
    output = capfd.readouterr().out
    assert "set: API_TOKEN, SHORT; unset: OLD" in output  # keys are shown
    assert "Promoting release" in output
    assert TOKEN not in output
    assert "Zq9x" not in output  # too short for the masker: never logged at all
    assert TOKEN not in repr(ti.pushed)
