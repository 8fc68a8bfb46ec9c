"""Bad input: every row fails the task before anything changes on the rack, says what is wrong
and how to fix it, and never shows the key or an environment value.

Rows are crossed with the subjects they apply to (the connection rows with every operator and
sensor). Each cell asserts the error type, the message (a regex naming the problem and the fix),
that the rack is unchanged (input problems: not a single write was even sent), and that neither
the message nor the captured logs contain the secrets of the cell.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import BaseOperator
from airflow_compat import AirflowException, AirflowSkipException
from convox_support import FAST

from convox_provider.assets import convox_app_asset
from convox_provider.client.errors import (
    ConvoxAuthError,
    ConvoxConfigError,
    ConvoxConflictError,
    ConvoxForbiddenError,
    ConvoxInputError,
    ConvoxNotFoundError,
)
from convox_provider.client.relay import ConvoxCopyError
from convox_provider.hooks.convox import ConvoxConnectionConfigError
from convox_provider.operators.builds import ConvoxCopyBuildOperator
from convox_provider.operators.environment import ConvoxEnvSetOperator
from convox_provider.operators.processes import ConvoxRunProcessOperator
from convox_provider.testing import RackEmulator

from .matrix import (
    APP,
    NEW_APP,
    SUBJECTS,
    Cell,
    Subject,
    add_source_rack,
    check_source_untouched,
    drive,
    unwrapped,
    writes_of,
)

RackFactory = Callable[..., RackEmulator]

KEY = "dk-7Qx9Lm2Vw4Rt8Zp3Ka6"
"""The rack password (a deploy key's shape); it must never be shown."""
WRONG_KEY = "dk-Wr0ngK3y-5Hs1Nd8Uq"
SECRET_VALUE = "s3cr3t-pw-9d81f7a2c4"


@dataclass
class Env:
    """What a row needs around a cell: the rack (a console for the console rows), and a host
    that answers web pages."""

    rack: RackEmulator
    html_url: str


@dataclass(frozen=True)
class Row:
    name: str
    error: type[Exception]
    message: str
    """A regex the message must match: the problem and the fix."""
    subjects: tuple[str, ...] = ()
    """Names of the subjects the row applies to (empty: all)."""
    connection: Callable[[Env], dict[str, Any]] | None = None
    """The connection (default: the rack with the right key)."""
    task: Callable[[Cell, Subject], BaseOperator] | None = None
    """Builds the task (default: the subject's own, its attributes then changed by ``setup``)."""
    setup: Callable[[Env, BaseOperator], None] | None = None
    secrets: tuple[str, ...] = ()
    """Values that must appear nowhere (besides the key, always checked)."""
    sends_requests: bool = False
    """Whether requests may reach the rack (they must not change anything); otherwise the input
    is refused before the first write is even sent."""
    accepted: tuple[str, ...] = ()
    """Writes the rack may accept all the same (labels of ``matrix.Write``): an unknown app's
    source upload is taken by the emulator's objects API, which does not check the app (what
    a real rack does there is not known); the build create then fails with 404."""


def _good(env: Env) -> dict[str, Any]:
    return {"host": env.rack.url, "password": KEY}


def _app(name: str) -> Callable[[Env, BaseOperator], None]:
    def setup(env: Env, task: BaseOperator) -> None:
        task.app = name  # as a rendered template would set it
        if isinstance(task, ConvoxCopyBuildOperator):
            task.target_app = name  # the app a copy writes to

    return setup


def _release(release_id: str) -> Callable[[Env, BaseOperator], None]:
    def setup(env: Env, task: BaseOperator) -> None:
        task.release_id = release_id  # as a rendered template would set it

    return setup


def _active_release(env: Env, task: BaseOperator) -> None:
    task.release_id = env.rack.app(APP)["release"]  # type: ignore[attr-defined]


def _older_release(env: Env, task: BaseOperator) -> None:
    task.release_id = env.rack.releases(APP)[-1]["id"]  # type: ignore[attr-defined]


def _copy(**changes: Any) -> Callable[[Cell, Subject], BaseOperator]:
    """The copy subject's task with ``changes`` (as rendered templates would set them)."""

    def make(cell: Cell, subject: Subject) -> BaseOperator:
        task = subject.make(cell, False)
        for name, value in changes.items():
            setattr(task, name, value)
        return task

    return make


def _copy_of_a_running_build(cell: Cell, subject: Subject) -> BaseOperator:
    """The copy of a build that is still running on the source rack."""
    assert cell.source is not None
    cell.source.state.builds.build(APP, cell.seeded["copied"]).status = "running"
    cell.seeded["source"]["builds"] = cell.source.builds(APP)
    return subject.make(cell, False)


COPY = ("copy",)
NOT_COPY = tuple(s.name for s in SUBJECTS if s.name not in COPY)


def _env_set(values: dict[str, str]) -> Callable[[Cell, Subject], BaseOperator]:
    def make(cell: Cell, subject: Subject) -> BaseOperator:
        if subject.name == "run":
            return ConvoxRunProcessOperator(
                task_id="migrate",
                app=APP,
                service="web",
                command="python manage.py migrate",
                environment=values,
                poll_interval=FAST,
            )
        return ConvoxEnvSetOperator(task_id="env", app=APP, set=values, poll_interval=FAST)

    return make


def _forbid(env: Env, task: BaseOperator) -> None:
    env.rack.faults.respond(
        None, "**", 403, times=None, message="deploy key role does not allow this action"
    )


def _set(name: str, value: Any) -> Callable[[Env, BaseOperator], None]:
    def setup(env: Env, task: BaseOperator) -> None:
        setattr(task, name, value)  # as a rendered template (or a later edit) would set it

    return setup


ENV_TAKERS = ("env-set", "run")
APP_TAKERS = ("create-app", "delete-app", "restart")
#: The subjects that work on an app that must exist already. A copy checks its target app (the
#: row copy-target-app-unknown); an approval refuses a missing app in its own words.
WORKS_ON_EXISTING_APPS = tuple(
    s.name for s in SUBJECTS if s.name not in ("create-app", "approval", *COPY)
)


def _existing_app(env: Env, task: BaseOperator) -> None:
    env.rack.create_app(NEW_APP)


def _locked(env: Env, task: BaseOperator) -> None:
    env.rack.state.app_update(APP, lock=True, parameters=None)


def _service(name: str) -> Callable[[Env, BaseOperator], None]:
    def setup(env: Env, task: BaseOperator) -> None:
        task.service = name  # type: ignore[attr-defined]  # as a rendered template would set it

    return setup


def _other_rack(env: Env, task: BaseOperator) -> None:
    task.outlets = [convox_app_asset("acme/production", APP)]


DEPLOYERS = ("deploy", "promote", "rollback", "env-set", "scale")
FIX_FIELD = r"Convox connection 'convox_default': fix the field '[^']+' \({field}\): "

ROWS = (
    Row(
        "app-with-slash",
        ConvoxInputError,
        r"invalid app name 'shop/\.\./demo': app names cannot contain '/'",
        setup=_app("shop/../demo"),
    ),
    Row(
        "app-with-space",
        ConvoxInputError,
        r"invalid app name 'my shop': app names cannot contain whitespace$",
        setup=_app("my shop"),
    ),
    Row(
        "app-empty",
        ConvoxInputError,
        r"invalid app name '': app names cannot be empty",
        setup=_app(""),
    ),
    Row(
        "app-unknown",
        ConvoxNotFoundError,
        r'^(404: app not found: shop-typo|500: builds\.convox\.com "b\w+" not found) \(',
        subjects=WORKS_ON_EXISTING_APPS,
        setup=_app("shop-typo"),
        sends_requests=True,
        accepted=("source upload",),
    ),
    Row(
        "app-unknown",
        ConvoxInputError,
        r"^app shop-typo does not exist on rack http://127\.0\.0\.1:\d+: create it first .*"
        r"nobody was asked to approve anything$",
        subjects=("approval",),
        setup=_app("shop-typo"),
        sends_requests=True,
    ),
    Row(
        "release-unknown",
        ConvoxInputError,
        r"^candidate release RNOSUCHRELEASE of app demo does not exist on rack .*: give the id of"
        r" an existing release",
        subjects=("approval",),
        setup=_release("RNOSUCHRELEASE"),
        sends_requests=True,
    ),
    Row(
        "release-active",
        AirflowSkipException,
        r"^Nothing to approve: app demo already runs release R\w+, so promoting it would change"
        r" nothing \(pass skip_when_unchanged=False to ask anyway\)$",
        subjects=("approval",),
        setup=_active_release,
        sends_requests=True,
    ),
    Row(
        "release-older",
        ConvoxInputError,
        r"^candidate release R\w+ of app demo is older than the active release R\w+: the rack"
        r" refuses to promote an older release .* roll back to it instead",
        subjects=("approval",),
        setup=_older_release,
        sends_requests=True,
    ),
    Row(
        "app-name-not-a-convox-name",
        ConvoxInputError,
        r"invalid app name 'Shop_1': app names must start with a lowercase letter and contain "
        r"only lowercase letters, digits and '-'$",
        subjects=APP_TAKERS,
        setup=_app("Shop_1"),
    ),
    Row(
        "app-name-trailing-dash",
        ConvoxInputError,
        r"invalid app name 'pr-': app names cannot end with '-' .*drop the trailing '-'$",
        subjects=("create-app",),
        setup=_app("pr-"),
    ),
    Row(
        "app-exists",
        ConvoxConflictError,
        rf"^409: app already exists: {NEW_APP}; nothing was changed\. Choose another name, "
        r"delete the app first, or pass exists_ok=True",
        subjects=("create-app",),
        setup=_existing_app,
    ),
    Row(
        "app-locked",
        ConvoxConflictError,
        rf"^409: app is locked: {APP}; the rack refuses to delete a locked app; nothing was "
        r"deleted\. Unlock it first",
        subjects=("delete-app",),
        setup=_locked,
    ),
    Row(
        "app-missing-hint",
        ConvoxNotFoundError,
        r"^404: app not found: shop-typo \(GET /apps/shop-typo\).*; nothing was "
        r"(deleted\. Check the name, or pass missing_ok=True|restarted\. Check the app name)$",
        subjects=("delete-app", "restart"),
        setup=_app("shop-typo"),
    ),
    Row(
        "service-unknown",
        ConvoxInputError,
        rf"^app {APP} has no service 'api' \(its services: web\); nothing was restarted\. "
        r"Check the service name in convox\.yml$",
        subjects=("restart",),
        setup=_service("api"),
    ),
    Row(
        "copy-same-app-and-rack",
        ConvoxInputError,
        r"^the source and the target of the copy are the same app demo on the same rack "
        r"http://127\.0\.0\.1:\d+: give another target app or another target rack$",
        subjects=COPY,
        task=_copy(source_conn_id="convox_default"),
    ),
    Row(
        "copy-build-not-complete",
        ConvoxInputError,
        r"^build B\w+ of app demo on the source rack http://127\.0\.0\.1:\d+ is 'running': "
        r"only a complete build \(with its release\) can be exported; wait for it to complete, "
        r"or copy another build$",
        subjects=COPY,
        task=_copy_of_a_running_build,
        sends_requests=True,
    ),
    Row(
        "copy-target-app-unknown",
        ConvoxInputError,
        r"^app shop-typo does not exist on the target rack http://127\.0\.0\.1:\d+: create it "
        r"first \(convox apps create shop-typo, or client\.apps\.create\) and let it reach "
        r"running, or give the name of an app of that rack; nothing was copied$",
        subjects=COPY,
        task=_copy(target_app="shop-typo"),
        sends_requests=True,
    ),
    Row(
        "copy-build-id-with-slash",
        ConvoxInputError,
        r"^invalid build id 'B1/\.\./B2': build ids cannot contain '/'$",
        subjects=COPY,
        task=_copy(build_id="B1/../B2"),
    ),
    Row(
        "copy-build-id-dots",
        ConvoxInputError,
        r"^invalid build id '\.\.': build ids cannot be '\.' or '\.\.'$",
        subjects=COPY,
        task=_copy(build_id=".."),
    ),
    Row(
        "copy-source-app-with-slash",
        ConvoxInputError,
        r"^invalid app name 'demo/\.\.': app names cannot contain '/'$",
        subjects=COPY,
        task=_copy(source_app="demo/.."),
    ),
    Row(
        "process-status-unknown",
        ConvoxInputError,
        r"invalid process status 'finished': give one or more of complete, crashed, failed,"
        r" pending, running, starting, unhealthy \(docs/rack-api\.md §5\.5\), or none to wait"
        r" for the process to end$",
        subjects=("process-sensor",),
        setup=_set("statuses", ["finished"]),
    ),
    Row(
        "process-id-with-slash",
        ConvoxInputError,
        r"invalid process id 'web/\.\./x': process ids cannot contain '/'",
        subjects=("process-sensor",),
        setup=_set("process_id", "web/../x"),
    ),
    Row(
        "release-id-with-slash",
        ConvoxInputError,
        r"invalid release id 'R/\.\./x': release ids cannot contain '/'",
        subjects=("app-sensor",),
        setup=_set("release_id", "R/../x"),
    ),
    Row(
        "env-key-with-space",
        ConvoxInputError,
        r"invalid environment \(1 bad key\): 'DB URL': keys cannot contain whitespace$",
        subjects=ENV_TAKERS,
        task=_env_set({"DB URL": SECRET_VALUE}),
        secrets=(SECRET_VALUE,),
    ),
    Row(
        "env-key-with-equals",
        ConvoxInputError,
        r"'A=B': keys cannot contain '=' \(the rack splits each line at its first '='\)",
        subjects=ENV_TAKERS,
        task=_env_set({"A=B": SECRET_VALUE}),
        secrets=(SECRET_VALUE,),
    ),
    Row(
        "env-key-empty",
        ConvoxInputError,
        r"'': keys cannot be empty \(the rack drops the line\)$",
        subjects=ENV_TAKERS,
        task=_env_set({"": SECRET_VALUE}),
        secrets=(SECRET_VALUE,),
    ),
    Row(
        "env-value-multiline",
        ConvoxInputError,
        r"'DB_PASSWORD': value contains a line break; the rack's environment is one KEY=VALUE "
        r"per line$",
        subjects=ENV_TAKERS,
        task=_env_set({"DB_PASSWORD": f"{SECRET_VALUE}\nADMIN=1"}),
        secrets=(SECRET_VALUE, "ADMIN=1"),
    ),
    Row(
        "env-value-nul",
        ConvoxInputError,
        r"'DB_PASSWORD': value contains a NUL character, which no process environment can hold$",
        subjects=ENV_TAKERS,
        task=_env_set({"DB_PASSWORD": f"{SECRET_VALUE}\x00"}),
        secrets=(SECRET_VALUE,),
    ),
    Row(
        "no-host",
        ConvoxConnectionConfigError,
        FIX_FIELD.format(field="host") + "Convox host is empty: pass the console host",
        connection=lambda env: {"password": KEY},
    ),
    Row(
        "no-password",
        ConvoxConnectionConfigError,
        FIX_FIELD.format(field="password")
        + "no key: enter the deploy key \\(console\\) or the rack API password",
        connection=lambda env: {"host": env.rack.url},
    ),
    Row(
        "http-host",
        ConvoxConnectionConfigError,
        FIX_FIELD.format(field="host")
        + r"Refusing plain http:// for rack\.example\.com: the key would be sent unencrypted\. "
        r"Use https://; plain http:// is accepted for loopback hosts only$",
        connection=lambda env: {"host": "http://rack.example.com", "password": KEY},
    ),
    Row(
        "actor-holds-the-key",
        ConvoxConnectionConfigError,
        FIX_FIELD.format(field="actor") + "the actor name must not contain the key$",
        connection=lambda env: {
            "host": env.rack.url,
            "password": KEY,
            "extra": {"actor": f"ci {KEY}"},
        },
    ),
    Row(
        "asset-of-another-rack",
        AirflowException,
        r"its outlet convox://acme/production/demo names rack 'acme/production', but connection "
        r"'convox_default' reaches '127\.0\.0\.1:\d+', so nothing was sent to the rack\. "
        r"Give rack='127\.0\.0\.1:\d+'",
        subjects=DEPLOYERS,
        setup=_other_rack,
    ),
    Row(
        "wrong-key-401",
        ConvoxAuthError,
        r"^401: invalid authentication \(.*; the credential was refused: check the deploy key "
        r"or rack password$",
        connection=lambda env: {"host": env.rack.url, "password": WRONG_KEY},
        secrets=(WRONG_KEY,),
        sends_requests=True,
    ),
    Row(
        "forbidden-403",
        ConvoxForbiddenError,
        r"^403: deploy key role does not allow this action "
        rf"\((GET|POST|PUT) /apps/({APP}|{NEW_APP})",
        setup=_forbid,
        sends_requests=True,
    ),
    Row(
        "console-without-rack",
        ConvoxConfigError,
        r"answered with an HTML page \(status 200\) instead of the Convox API\. If this is a "
        r"console \(e\.g\. console\.convox\.com\), set the rack \('<org>/<rack>'\)",
        connection=_good,
        sends_requests=True,
    ),
    Row(
        "web-page-host",
        ConvoxConfigError,
        r"answered with an HTML page \(status 200\) instead of the Convox API\. .*otherwise use "
        r"the rack API URL \(https://api\.<rack-domain>\)",
        connection=lambda env: {"host": env.html_url, "password": KEY},
        sends_requests=True,
    ),
)

CELLS = [
    pytest.param(row, subject, id=f"{row.name}-{subject.name}")
    for row in ROWS
    for subject in SUBJECTS
    if not row.subjects or subject.name in row.subjects
]


class _HtmlPage(http.server.BaseHTTPRequestHandler):
    """A web server that answers every request with a page, as a website or a console does."""

    def _page(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = b"<!DOCTYPE html><html><body>Sign in</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _page

    def log_message(self, format: str, *args: Any) -> None:
        """Silent."""


@pytest.fixture(scope="module")
def html_url() -> Iterator[str]:
    """A tiny HTML-answering server on 127.0.0.1 (the emulator's console mode covers consoles)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HtmlPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _state(rack: RackEmulator) -> dict[str, Any]:
    """Everything an operator could change on the rack."""
    return {
        "app": rack.state.app_get(APP),
        "builds": rack.builds(APP),
        "releases": rack.releases(APP),
        "processes": sorted(p["id"] for p in rack.processes(APP)),
        "services": rack.state.service_list(APP),
        "objects": sorted(p.name for p in (rack.state._storage / "objects").iterdir()),
        "execs": len(rack.execs),
    }


@pytest.mark.parametrize(("row", "subject"), CELLS)
def test_bad_input(
    *,
    row: Row,
    subject: Subject,
    convox_rack_factory: RackFactory,
    html_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    console = row.name.startswith("console")  # the task talks to a console, which is seeded
    env = Env(
        rack=convox_rack_factory(password=KEY, console="acme/production" if console else None),
        html_url=html_url,
    )
    cell = Cell(env.rack, tmp_path)
    add_source_rack(cell, subject, convox_rack_factory, monkeypatch)
    subject.seed(cell, False)
    connection = {"conn_type": "convox", **(row.connection or _good)(env)}
    connection["extra"] = {**connection.get("extra", {}), "max_retries": 0}
    monkeypatch.setenv("AIRFLOW_CONN_CONVOX_DEFAULT", json.dumps(connection))
    task = row.task(cell, subject) if row.task else subject.make(cell, False)
    if row.setup is not None:
        row.setup(env, task)
    before = _state(env.rack)
    env.rack.requests.clear()

    with pytest.raises((row.error, ConvoxCopyError)) as failure:
        drive(task, cell)

    error = unwrapped(failure.value)  # a copy names the rack that failed; its cause is this
    assert isinstance(error, row.error), repr(failure.value)
    if error is not failure.value:
        host = connection.get("host") or ""
        assert str(failure.value).startswith(f"target rack {host}"), failure.value
    message = str(error)
    assert re.search(row.message, message), message
    after = _state(env.rack)
    if any(w.label in row.accepted for w in subject.writes):
        del before["objects"], after["objects"]  # see ``Row.accepted``
    assert after == before  # nothing changed on the rack
    if not row.sends_requests:
        assert writes_of(list(env.rack.requests)) == []  # refused before the first write
    check_source_untouched(cell)  # a copy's source rack: no write, nothing changed
    out = capfd.readouterr()
    shown = "\n".join((str(failure.value), repr(failure.value), caplog.text, out.out, out.err))
    for secret in (KEY, *row.secrets):
        assert secret not in shown
    known = {b["id"] for b in before["builds"]} | {r["id"] for r in before["releases"]}
    assert set(cell.ti.xcoms.values()) <= known  # no id of work that never happened
