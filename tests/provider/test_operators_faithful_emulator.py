"""Operators fail on the emulator where they would fail on a rack (issue 15, end to end)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from airflow_compat import AirflowException, AirflowFailException
from convox_support import APP, FAST, RecordingTI, connect, context, sample_app, seed

from convox_provider.operators.builds import ConvoxBuildOperator
from convox_provider.operators.processes import ConvoxRunProcessOperator
from convox_provider.testing import RackEmulator, Timing

RackFactory = Callable[..., RackEmulator]


@pytest.fixture
def rack(convox_rack_factory: RackFactory, monkeypatch: pytest.MonkeyPatch) -> RackEmulator:
    rack = convox_rack_factory(timing=Timing(process_start=0.02, process_run=0.02))
    connect(monkeypatch, rack)
    seed(rack)
    return rack


def build_op(source: Path, **options: Any) -> ConvoxBuildOperator:
    return ConvoxBuildOperator(
        task_id="build", app=APP, source_dir=str(source), poll_interval=FAST, **options
    )


def run_op(command: str) -> ConvoxRunProcessOperator:
    return ConvoxRunProcessOperator(
        task_id="run", app=APP, service="web", command=command, poll_interval=FAST
    )


def test_the_sample_app_still_builds(rack: RackEmulator, tmp_path: Path) -> None:
    build_id = build_op(sample_app(tmp_path)).execute(context())
    assert rack.builds(APP)[0]["id"] == build_id
    assert rack.builds(APP)[0]["status"] == "complete"


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (
            lambda app: (app / "convox.yml").write_text("services:\n  web:\n    port: [8000]\n"),
            "cannot unmarshal !!seq into manifest.ServicePortScheme",
        ),
        (lambda app: (app / "Dockerfile").unlink(), "/Dockerfile: no such file or directory"),
        (
            lambda app: (app / "convox.yml").write_text(
                "services:\n  web:\n    build:\n      manifest: Dockerfile.prod\n"
            ),
            "/Dockerfile.prod: no such file or directory",
        ),
    ],
)
def test_a_build_a_rack_would_fail_fails_the_operator_with_the_log_tail(
    rack: RackEmulator, tmp_path: Path, change: Callable[[Path], object], error: str
) -> None:
    source = sample_app(tmp_path)
    change(source)
    ti = RecordingTI()
    with pytest.raises(AirflowFailException) as failure:
        build_op(source).execute(context(ti))
    message = str(failure.value)
    assert "Last lines of the build log:" in message
    assert "ERROR: " in message.split("Last lines of the build log:", 1)[1]
    assert error in message
    build = rack.builds(APP)[0]
    assert (build["status"], build["release"]) == ("failed", "")
    assert list(ti.xcoms) == ["build_id"]  # no release id: the build made none


def test_a_migration_script_sees_the_release_and_its_exit_code(
    rack: RackEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    rack.scripts.on_command("bin/migrate", output="applied 2\n", exit_code=0)
    release = rack.app(APP)["release"]
    ti = RecordingTI()
    script = "sh -c 'echo \"release $RELEASE of $APP\"; bin/migrate && echo migrated-ok >&2'"
    assert run_op(script).execute(context(ti)) == 0
    out = capfd.readouterr().out
    # the output follows the operator's own line naming the command (which has the marker too)
    printed = [out.rindex(text) for text in (f"release {release} of demo", "applied 2")]
    assert printed[0] < printed[1] < out.rindex("migrated-ok")
    rack.scripts.on_command("bin/migrate", output="lock timeout\n", exit_code=4)
    with pytest.raises(AirflowException, match="exited with code 4"):
        run_op("sh -c 'bin/migrate || exit $?; echo not-reached'").execute(context(RecordingTI()))
    out = capfd.readouterr().out
    assert out.count("not-reached") == 1  # in the command the operator logs, never as output
    assert "lock timeout" in out


def test_run_output_has_the_injected_variables(
    rack: RackEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    release = rack.app(APP)["release"]
    run_op("sh -c 'echo RELEASE=$RELEASE SERVICE=$SERVICE PORT=$PORT'").execute(context())
    assert f"RELEASE={release} SERVICE=web PORT=3000" in capfd.readouterr().out
