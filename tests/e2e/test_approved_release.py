"""``convox_approved_release`` under ``dag.test()``: two racks, and a person answering.

The approval is answered the way Airflow's UI answers it: the Required Actions page sends
``PATCH /api/v2/dags/{dag}/dagRuns/{run}/taskInstances/{task}/{map_index}/hitlDetails`` to the
api-server, which records the answer in the ``hitl_detail`` row and (Airflow 3.3) moves the task
from ``awaiting_input`` back to ``scheduled``; ``dag.test()`` then resumes it. Here that route
runs in-process (FastAPI's test client on Airflow's own core API app, with a JWT of the simple
auth manager), from a thread that waits for the run's request row while ``dag.test()`` runs.

Airflow 3.1 cannot do this under ``dag.test()``: there the approval defers to ``HITLTrigger``,
which ``dag.test()`` runs inline under its in-process task supervisor, and that supervisor
answers only the request that creates the approval (``CreateHITLDetailPayload``), not the
trigger's poll (``GetHITLDetailResponse``, served by the real triggerer alone): the trigger gets
"Unhandled request" and the task fails before anyone can answer. So this module runs on 3.3+.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from airflow_compat import AIRFLOW_RELEASE

from convox_provider.testing import RackEmulator

from .harness import MANIFEST, MODES, POLL_INTERVAL, TIMING
from .test_example_dags import exception_lines, task_states, xcoms
from .test_example_dags_part2 import raw_xcoms, rendered_fields

pytestmark = pytest.mark.skipif(
    AIRFLOW_RELEASE < (3, 3),
    reason=(
        "Airflow 3.1's dag.test() runs HITLTrigger under its in-process task supervisor, which"
        " does not serve the trigger's GetHITLDetailResponse request (only the triggerer does),"
        " so an approval cannot be answered under dag.test() (see the module docstring)"
    ),
)

DAG_ID = "convox_approved_release"
TASKS = ["deploy_staging", "approve", "copy_to_production", "promote_production"]
ExampleDag = Callable[[str, str], Any]


@dataclass
class Racks:
    staging: RackEmulator
    production: RackEmulator
    secrets: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def two_racks() -> Iterator[Racks]:
    """Two emulated racks behind the connections ``convox_staging`` and ``convox_production``."""
    racks = Racks(
        RackEmulator(password=secrets.token_hex(16), timing=TIMING).start(),
        RackEmulator(password=secrets.token_hex(16), timing=TIMING).start(),
    )
    with pytest.MonkeyPatch.context() as patch:
        for name, rack in (("STAGING", racks.staging), ("PRODUCTION", racks.production)):
            connection = {"conn_type": "convox", "host": rack.url, "password": rack.password}
            patch.setenv(f"AIRFLOW_CONN_CONVOX_{name}", json.dumps(connection))
        patch.setenv("CONVOX_POLL_INTERVAL", str(POLL_INTERVAL))
        try:
            yield racks
        finally:
            racks.staging.stop()
            racks.production.stop()


_apps = iter(range(1, 1000))


@pytest.fixture
def app(two_racks: Racks) -> str:
    """A new app on both racks, each running a first release with secret env values."""
    name = f"approved-{next(_apps)}"
    for rack in (two_racks.staging, two_racks.production):
        secret = f"s3cr3t-{secrets.token_hex(8)}"
        two_racks.secrets.append(secret)
        rack.create_app(name)
        rack.add_release(name, MANIFEST, env={"DATABASE_URL": secret, "API_KEY": secret})
    return name


@pytest.fixture(scope="module")
def core_api(airflow_db: None) -> Any:
    """Airflow's core REST API app (what the UI calls), in-process, and an admin's token."""
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    client = TestClient(create_app(apps="core"))
    token = get_auth_manager().generate_jwt(
        SimpleAuthManagerUser(username="approver", role="admin")
    )
    client.headers["Authorization"] = f"Bearer {token}"
    return client


@dataclass
class Answered:
    """What the approver saw (the request row) and what the API answered."""

    subject: str = ""
    body: str = ""
    status: int = 0
    response: dict[str, Any] = field(default_factory=dict)


class Approver(threading.Thread):
    """Waits for the run's pending approval and answers it through the REST API."""

    def __init__(
        self,
        api: Any,
        choice: str,
        timeout: float = 120.0,
        meanwhile: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.api, self.choice, self.timeout = api, choice, timeout
        self.meanwhile = meanwhile
        """What happens on the racks between the question and the answer."""
        self.answered = Answered()
        self.error: BaseException | None = None

    def pending(self) -> tuple[str, str, str, int, str, str] | None:
        from airflow.models.hitl import HITLDetail
        from airflow.utils.session import create_session

        with create_session() as session:
            for row in session.query(HITLDetail):
                ti = row.task_instance
                if ti.dag_id == DAG_ID and not row.response_received:
                    return ti.dag_id, ti.run_id, ti.task_id, ti.map_index, row.subject, row.body
        return None

    def run(self) -> None:
        try:
            deadline = time.monotonic() + self.timeout
            while (found := self.pending()) is None:
                if time.monotonic() > deadline:
                    raise TimeoutError("no approval was asked for")
                time.sleep(0.2)
            dag_id, run_id, task_id, map_index, subject, body = found
            self.answered.subject, self.answered.body = subject, body
            if self.meanwhile is not None:
                self.meanwhile()
            path = (
                f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}"
                "/hitlDetails"
            )
            reply = self.api.patch(path, json={"chosen_options": [self.choice]})
            self.answered.status = reply.status_code
            self.answered.response = reply.json()
        except BaseException as exc:
            self.error = exc


def run_answering(
    example_dag: ExampleDag,
    core_api: Any,
    app: str,
    mode: str,
    choice: str,
    *,
    meanwhile: Callable[[], None] | None = None,
    **test: Any,
) -> tuple[Any, Answered]:
    approver = Approver(core_api, choice, meanwhile=meanwhile)
    approver.start()
    run = example_dag(DAG_ID, mode).test(run_conf={"app": app}, **test)
    approver.join(timeout=5)
    assert approver.error is None, approver.error
    return run, approver.answered


@pytest.mark.parametrize("mode", MODES)
def test_approved_the_build_goes_to_production(
    *,
    mode: str,
    app: str,
    two_racks: Racks,
    example_dag: ExampleDag,
    core_api: Any,
    capfd: pytest.CaptureFixture[str],
) -> None:
    production_before = two_racks.production.app(app)["release"]

    run, answered = run_answering(example_dag, core_api, app, mode, "Approve")

    output = capfd.readouterr().out
    assert run.state == "success", exception_lines(output)
    assert task_states(run) == dict.fromkeys(TASKS, "success")
    assert answered.status == 200
    assert answered.response["responded_by"] == {"id": "approver", "name": "approver"}
    pushed = xcoms(run)
    staging_release = pushed["deploy_staging", "return_value"]
    assert pushed["approve", "release_id"] == staging_release
    assert pushed["approve", "active_release"] == production_before
    assert pushed["approve", "return_value"]["chosen_options"] == ["Approve"]
    # what the approver was shown: the staging release against production's active release
    assert answered.subject == f"Promote {app} from staging to production?"
    assert f"| Release | `{staging_release}` | `{production_before}` |" in answered.body
    assert "Deployed to staging by run" in answered.body
    environment = answered.body.split("**Environment**")[1].split("**Manifest**")[0]
    assert "- no change" in environment  # production's environment is not touched
    copied = pushed["copy_to_production", "release_id"]
    assert pushed["promote_production", "return_value"] == copied
    state = two_racks.production.app(app)
    assert (state["release"], state["status"]) == (copied, "running")


def test_rejected_nothing_reaches_production(
    *, app: str, two_racks: Racks, example_dag: ExampleDag, core_api: Any
) -> None:
    production_before = two_racks.production.app(app)["release"]

    # With no logical date, as a run triggered through the REST API or the UI may be.
    run, answered = run_answering(example_dag, core_api, app, "sync", "Reject", logical_date=None)

    assert run.state == "success"
    assert run.logical_date is None
    assert task_states(run) == {
        "deploy_staging": "success",
        "approve": "success",
        "copy_to_production": "skipped",
        "promote_production": "skipped",
    }
    assert answered.status == 200
    assert answered.response["chosen_options"] == ["Reject"]
    # Airflow skips the downstream tasks (and pushes no return value) on "Reject"
    assert xcoms(run)["approve", "skipmixin_key"] == {"skipped": ["copy_to_production"]}
    assert two_racks.production.app(app)["release"] == production_before
    assert len(two_racks.production.builds(app)) == 1  # nothing was copied


def test_an_approval_of_a_change_that_moved_meanwhile_stops_the_run(
    *,
    app: str,
    two_racks: Racks,
    example_dag: ExampleDag,
    core_api: Any,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """While the approval waited, someone added a key to production's environment: the copy
    would run with it, and the approver never saw it, so their "Approve" fails the task."""
    production_before = two_racks.production.app(app)["release"]

    def add_a_key() -> None:
        env = two_racks.production.releases(app)[0]["env"]
        two_racks.production.set_env(app, f"{env}\nFEATURE=on", promote=False)

    run, answered = run_answering(
        example_dag, core_api, app, "sync", "Approve", meanwhile=add_a_key
    )

    output = capfd.readouterr().out
    assert answered.status == 200
    assert run.state == "failed"
    assert task_states(run) == {
        "deploy_staging": "success",
        "approve": "failed",
        "copy_to_production": "upstream_failed",
        "promote_production": "upstream_failed",
    }
    assert "the change is no longer the one shown" in output
    assert "keys added ['FEATURE']" in output
    assert two_racks.production.app(app)["release"] == production_before
    assert len(two_racks.production.builds(app)) == 1  # nothing was copied


def test_env_values_of_both_releases_show_nowhere(
    *,
    app: str,
    two_racks: Racks,
    example_dag: ExampleDag,
    core_api: Any,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Secret values on staging (the candidate forks them) and on production, changed on
    production's newest release: the approval shows the keys and no value anywhere."""
    new_secret = f"s3cr3t-{secrets.token_hex(8)}"
    two_racks.secrets.append(new_secret)
    current = two_racks.production.releases(app)[0]["env"]
    two_racks.production.set_env(app, f"{current}\nSIGNING_KEY={new_secret}", promote=False)
    mine = [s for s in two_racks.secrets if any(s in r["env"] for r in _releases(two_racks, app))]
    assert len(mine) == 3  # one per rack, and the new one

    run, answered = run_answering(example_dag, core_api, app, "sync", "Approve")

    output = capfd.readouterr()
    assert run.state == "success", exception_lines(output.out)
    assert "- Added: `SIGNING_KEY`" in answered.body
    seen = {
        "approval body": answered.body + answered.subject,
        "stdout": output.out,
        "stderr": output.err,
        "log records": caplog.text,
        "XComs": "\n".join(raw_xcoms(run)),
        "rendered templates": json.dumps(rendered_fields(run), default=str),
        "hitl_detail rows": _hitl_rows(),
    }
    leaks = {where: s for where, text in seen.items() for s in mine if s in text}
    assert leaks == {}


def _releases(racks: Racks, app: str) -> list[dict[str, Any]]:
    return racks.staging.releases(app) + racks.production.releases(app)


def _hitl_rows() -> str:
    from airflow.models.hitl import HITLDetail
    from airflow.utils.session import create_session

    with create_session() as session:
        return json.dumps(
            [
                {column: getattr(row, column) for column in ("subject", "body", "params")}
                for row in session.query(HITLDetail)
            ],
            default=str,
        )
