"""Bad arguments are refused when the DAG is parsed, and bad rendered values before any request.

Each refusal names the argument and what to do; nothing reaches the rack.
"""

from __future__ import annotations

from typing import Any

import pytest
from convox_support import APP, RecordingTI, context

from convox_provider.operators._base import AirflowException
from convox_provider.operators.builds import ConvoxBuildOperator, ConvoxDeployOperator
from convox_provider.operators.environment import ConvoxEnvSetOperator
from convox_provider.operators.processes import ConvoxRunProcessOperator
from convox_provider.operators.releases import (
    ConvoxPromoteReleaseOperator,
    ConvoxRollbackOperator,
)
from convox_provider.operators.services import ConvoxScaleServiceOperator
from convox_provider.sensors.apps import ConvoxAppSensor
from convox_provider.sensors.builds import ConvoxBuildSensor
from convox_provider.sensors.processes import ConvoxProcessSensor
from convox_provider.sensors.releases import ConvoxReleaseSensor
from convox_provider.testing import RackEmulator

JINJA = "{{ params.interval }}"


def promote(**kwargs: Any) -> ConvoxPromoteReleaseOperator:
    return ConvoxPromoteReleaseOperator(task_id="promote", app=APP, **kwargs)


@pytest.mark.parametrize(
    ("make", "argument"),
    [
        (lambda v: promote(poll_interval=v), "poll_interval"),
        (lambda v: promote(timeout=v), "timeout"),
        (lambda v: promote(force=v), "force"),
        (lambda v: promote(deferrable=v), "deferrable"),
        (lambda v: promote(wait_for_completion=v), "wait_for_completion"),
        (lambda v: ConvoxRollbackOperator(task_id="r", app=APP, force=v), "force"),
        (
            lambda v: ConvoxDeployOperator(task_id="d", app=APP, source_dir=".", force=v),
            "force",
        ),
        (
            lambda v: ConvoxBuildOperator(task_id="b", app=APP, source_dir=".", no_cache=v),
            "no_cache",
        ),
        (lambda v: ConvoxEnvSetOperator(task_id="e", app=APP, set={}, promote=v), "promote"),
        (
            lambda v: ConvoxRunProcessOperator(
                task_id="run", app=APP, service="web", command="true", timeout=v
            ),
            "timeout",
        ),
        (
            lambda v: ConvoxRunProcessOperator(
                task_id="run", app=APP, service="web", command="true", cpu=v
            ),
            "cpu",
        ),
        (
            lambda v: ConvoxScaleServiceOperator(
                task_id="s", app=APP, service="web", count=1, poll_interval=v
            ),
            "poll_interval",
        ),
        (
            lambda v: ConvoxBuildSensor(task_id="bs", app=APP, build_id="B", deferrable=v),
            "deferrable",
        ),
        (
            lambda v: ConvoxReleaseSensor(task_id="rs", app=APP, release_id="R", poke_interval=v),
            "poke_interval",
        ),
        (
            lambda v: ConvoxProcessSensor(task_id="ps", app=APP, process_id="p", allow_gone=v),
            "allow_gone",
        ),
        (lambda v: ConvoxAppSensor(task_id="as", app=APP, timeout=v), "timeout"),
    ],
)
def test_jinja_in_a_field_that_is_not_templated_is_refused_at_parse(
    make: Any, argument: str
) -> None:
    with pytest.raises(TypeError) as refused:
        make(JINJA)
    message = str(refused.value)
    assert f"{argument}={JINJA!r} is a Jinja template" in message
    assert f"{argument} is not a templated field" in message
    assert "templated fields of" in message
    assert "app" in message.rsplit("templated fields of", 1)[1]


@pytest.mark.parametrize("value", ["true", "false", 1, "yes"])
def test_deferrable_must_be_a_bool(value: Any) -> None:
    with pytest.raises(TypeError, match=r"deferrable must be a bool or None, not"):
        promote(deferrable=value)


@pytest.mark.parametrize(
    ("argument", "value", "wanted"),
    [
        ("poll_interval", "5", "int or float"),
        ("timeout", [1], "int or float or None"),
        ("force", "no", "bool"),
        ("release_id", 42, "str or None"),
    ],
)
def test_arguments_of_the_wrong_type_are_refused_naming_them(
    argument: str, value: Any, wanted: str
) -> None:
    with pytest.raises(TypeError, match=rf"'promote': {argument} must be a {wanted}, not"):
        promote(**{argument: value})


def test_templated_fields_still_take_templates() -> None:
    op = promote(release_id="{{ ti.xcom_pull(task_ids='build', key='release_id') }}")
    assert op.release_id.startswith("{{")


def test_execute_outside_a_task_sends_nothing(rack: RackEmulator) -> None:
    before = len(rack.requests)
    for op in (
        promote(),
        ConvoxRollbackOperator(task_id="rollback", app=APP),
        ConvoxRunProcessOperator(task_id="run", app=APP, service="web", command="true"),
        ConvoxBuildSensor(task_id="sensor", app=APP, build_id="BXYZ"),
    ):
        with pytest.raises(AirflowException, match="without a task instance in its context"):
            op.execute({})
    assert len(rack.requests) == before


@pytest.mark.parametrize("rendered", [None, "None"])
def test_a_template_rendered_to_none_is_refused_before_any_request(
    rack: RackEmulator, rendered: Any
) -> None:
    op = promote(release_id="{{ missing }}" if rendered else "{{ ti.xcom_pull('bulid') }}")
    ti = RecordingTI()
    ti.xcom_pull = lambda *args, **kwargs: None  # type: ignore[attr-defined]
    ctx = {**context(ti), "missing": rendered}
    op.render_template_fields(ctx)
    before = len(rack.requests)
    with pytest.raises(AirflowException) as refused:
        op.execute(ctx)
    message = str(refused.value)
    assert "the template of release_id rendered to" in message
    assert "xcom_pull" in message
    assert len(rack.requests) == before


def test_a_template_meaning_none_on_purpose_is_left_alone() -> None:
    op = promote(release_id="{{ params.release_id }}")
    op.render_template_fields({**context(), "params": {"release_id": None}}, None)
    assert op.release_id == "None"  # not native: the text is refused
    native = promote(release_id="{{ params.release_id }}")
    native._templated = frozenset({"release_id"})
    native.release_id = None  # what a native render of an empty param gives
    native._preflight(context())  # no xcom_pull: None means "the default" here
