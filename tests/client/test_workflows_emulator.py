"""The workflows over real HTTP and WebSocket against the rack emulator, on both clients."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from convox_provider.client.client import AsyncConvoxClient, ConvoxClient
from convox_provider.client.errors import (
    ConvoxBuildFailedError,
    ConvoxGatewayError,
    ConvoxRollbackError,
)
from convox_provider.client.models import Build
from convox_provider.client.retry import RetryConfig
from convox_provider.client.waiting import WaitOptions
from convox_provider.client.workflows import (
    BuildWorkflows,
    EnvironmentWorkflows,
    ProcessWorkflows,
    ReleaseWorkflows,
    ServiceWorkflows,
)
from convox_provider.client.workflows.events import (
    EnvironmentConflict,
    StreamInterrupted,
    WaitRetrying,
)
from convox_provider.testing.emulator import RackEmulator
from convox_provider.testing.timing import Timing

MANIFEST = """\
services:
  web:
    build: .
    port: 3000
    environment:
      - "*"
"""
FAST = {"poll_interval": 0.01}
ROLLOUT = {"poll_interval": 0.01, "initial_delay": 0.0}


class Flows:
    """The workflow groups bound to one client's driver, and a way to run them on either."""

    def __init__(self, kind: str, client: ConvoxClient | AsyncConvoxClient) -> None:
        self.kind = kind
        self.client = client
        driver: Any = client._driver
        self.builds: BuildWorkflows[Any] = BuildWorkflows(driver)
        self.releases: ReleaseWorkflows[Any] = ReleaseWorkflows(driver)
        self.environment: EnvironmentWorkflows[Any] = EnvironmentWorkflows(driver)
        self.processes: ProcessWorkflows[Any] = ProcessWorkflows(driver)
        self.services: ServiceWorkflows[Any] = ServiceWorkflows(driver)

    async def __call__(self, operation: Callable[[Flows], Any]) -> Any:
        result = operation(self)
        if inspect.isawaitable(result):
            return await result
        return result


async def _close(client: ConvoxClient | AsyncConvoxClient) -> None:
    if isinstance(client, ConvoxClient):
        client.close()
    else:
        await client.aclose()


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    (tmp_path / "convox.yml").write_text(MANIFEST)
    (tmp_path / "Dockerfile").write_text(
        'FROM python:3.12-slim\nCMD ["python", "-m", "http.server"]\n'
    )
    return tmp_path


def make_flows(rack: RackEmulator, kind: str, retry: RetryConfig | None = None) -> Flows:
    cls = ConvoxClient if kind == "sync" else AsyncConvoxClient
    return Flows(kind, cls(rack.url, rack.password, retry=retry))


@pytest.fixture
async def flows(convox_rack: RackEmulator, kind: str) -> AsyncIterator[Flows]:
    convox_rack.create_app("demo")
    made = make_flows(convox_rack, kind)
    yield made
    await _close(made.client)


def posts(rack: RackEmulator, path: str) -> int:
    return rack.requests.count("POST", path)


async def deploy(flows: Flows, source: Path) -> Build:
    build: Build = await flows(lambda f: f.builds.build_from_directory("demo", source, **FAST))
    await flows(lambda f: f.releases.promote("demo", build.release, **ROLLOUT))
    return build


class TestBuild:
    async def test_following_the_log_of_a_build_stops_at_the_wait_timeout(
        self,
        convox_rack_factory: Any,
        kind: str,
        source: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        import time

        from convox_provider.client import websocket
        from convox_provider.client.errors import ConvoxWaitTimeoutError

        monkeypatch.setattr(websocket, "PING_INTERVAL", 0.05)  # ticks of a silent stream
        rack = convox_rack_factory(timing=Timing(build=60.0))
        rack.create_app("demo")
        flows = make_flows(rack, kind)
        started = time.monotonic()
        try:
            with pytest.raises(ConvoxWaitTimeoutError):
                await flows(
                    lambda f: f.builds.build_from_directory(
                        "demo", source, follow_logs=True, timeout=0.5, **FAST
                    )
                )
        finally:
            await _close(flows.client)
        assert time.monotonic() - started < 10  # not the build's 60 s
        assert rack.builds("demo")[0]["status"] == "running"

    async def test_build_from_directory_streams_its_logs_and_completes(
        self, flows: Flows, convox_rack: RackEmulator, source: Path
    ) -> None:
        output: list[bytes] = []
        build = await flows(
            lambda f: f.builds.build_from_directory(
                "demo", source, description="v1", on_output=output.append, **FAST
            )
        )
        assert build.status == "complete"
        assert build.release
        assert build.description == "v1"
        log = b"".join(output)
        push = f"Running: docker push {convox_rack.state.registry('demo')}:web.{build.id}\n"
        assert log.endswith(push.encode())
        assert log.count(b"Running: docker push") == 1  # the catch-up read added nothing twice
        assert posts(convox_rack, "/apps/demo/objects/tmp/*.tgz") == 1
        assert posts(convox_rack, "/apps/demo/builds") == 1

    async def test_a_failed_build_raises_with_its_log(
        self, flows: Flows, convox_rack: RackEmulator, source: Path
    ) -> None:
        convox_rack.scripts.fail_next_build("npm install exited 1")
        with pytest.raises(ConvoxBuildFailedError, match="npm install exited 1") as info:
            await flows(lambda f: f.builds.build_from_directory("demo", source, **FAST))
        assert "npm install exited 1" in info.value.logs_tail
        assert posts(convox_rack, "/apps/demo/builds") == 1

    async def test_a_cut_log_stream_is_resumed_without_repeating(
        self, flows: Flows, convox_rack: RackEmulator, source: Path
    ) -> None:
        convox_rack.faults.truncate("GET", "/apps/demo/builds/*/logs", after_bytes=12)
        output: list[bytes] = []
        events: list[Any] = []
        build = await flows(
            lambda f: f.builds.build_from_directory(
                "demo", source, on_output=output.append, on_event=events.append, **FAST
            )
        )
        assert [type(e) for e in events if isinstance(e, StreamInterrupted)] == [StreamInterrupted]
        full: list[bytes] = []
        await flows(
            lambda f: f.builds.wait_for_build(
                "demo", build.id, follow_logs=True, on_output=full.append
            )
        )
        assert b"".join(output) == b"".join(full)
        assert len(b"".join(output)) > 12


class TestPromote:
    async def test_promote_waits_for_the_rollout(
        self, flows: Flows, convox_rack: RackEmulator, source: Path
    ) -> None:
        build = await deploy(flows, source)
        assert convox_rack.app("demo")["release"] == build.release
        assert convox_rack.app("demo")["status"] == "running"
        assert posts(convox_rack, "/apps/demo/releases/*/promote") == 1

    async def test_a_rolled_back_promote_raises(
        self, flows: Flows, convox_rack: RackEmulator, source: Path
    ) -> None:
        first = await deploy(flows, source)
        second: Build = await flows(lambda f: f.builds.build_from_directory("demo", source, **FAST))
        convox_rack.scripts.fail_next_promote("demo")
        with pytest.raises(ConvoxRollbackError) as info:
            await flows(lambda f: f.releases.promote("demo", second.release, **ROLLOUT))
        assert info.value.release_id == second.release
        assert info.value.active_release == first.release
        assert convox_rack.app("demo")["release"] == first.release

    async def test_a_rollback_status_is_seen_during_a_slow_rollout(
        self, convox_rack_factory: Callable[..., RackEmulator], kind: str, source: Path
    ) -> None:
        rack = convox_rack_factory(timing=Timing(rollout=0.3))
        rack.create_app("demo")
        rack.add_release("demo", MANIFEST)
        flows = make_flows(rack, kind)
        try:
            build: Build = await flows(
                lambda f: f.builds.build_from_directory("demo", source, **FAST)
            )
            rack.scripts.fail_next_promote("demo")
            with pytest.raises(
                ConvoxRollbackError, match=r"its rollout failed \(status 'rollback'\)"
            ):
                await flows(lambda f: f.releases.promote("demo", build.release, **ROLLOUT))
        finally:
            await _close(flows.client)

    async def test_a_rollback_says_what_its_crashing_pods_wrote(
        self, convox_rack_factory: Callable[..., RackEmulator], kind: str, source: Path
    ) -> None:
        rack = convox_rack_factory(timing=Timing(rollout=0.5, process_start=0.05))
        rack.create_app("demo")
        rack.add_release("demo", MANIFEST)
        flows = make_flows(rack, kind)
        try:
            await flows(lambda f: f.builds.build_from_directory("demo", source, **FAST))
            secret = {"DB_PASSWORD": "pw9x-secret"}
            release = await flows(lambda f: f.environment.set("demo", secret, promote=False))
            release_id = release.id
            crash = ["connecting to postgres://u:pw9x@db/x", "login pw9x-secret refused"]
            rack.scripts.fail_next_promote("demo", crash=[*crash, "Error: database is down"])
            with pytest.raises(ConvoxRollbackError) as info:
                await flows(lambda f: f.releases.promote("demo", release_id, **ROLLOUT))
        finally:
            await _close(flows.client)
        message = str(info.value)
        assert info.value.release_id == release_id
        assert "Its processes not ready (1 of 1):" in message
        assert "(web): crashed" in message
        assert "    Error: database is down" in message
        assert "pw9x" not in message  # the env value and the URL's password
        assert "postgres://u:****@db/x" in message
        assert "login **** refused" in message

    async def test_rollback_promotes_a_new_release_from_the_old_build_and_env(
        self, flows: Flows, convox_rack: RackEmulator, source: Path
    ) -> None:
        first = await deploy(flows, source)
        await flows(lambda f: f.environment.set("demo", {"COLOR": "blue"}, promote=True, **ROLLOUT))
        await deploy(flows, source)

        new_id = await flows(lambda f: f.releases.rollback("demo", first.release, **ROLLOUT))

        assert new_id != first.release
        app = convox_rack.app("demo")
        assert app["release"] == new_id
        restored = next(r for r in convox_rack.releases("demo") if r["id"] == new_id)
        assert restored["build"] == first.id
        assert "COLOR" not in restored["env"]
        assert posts(convox_rack, f"/apps/demo/releases/{first.release}/promote") == 1  # by deploy


class TestEnvironment:
    async def test_two_concurrent_writers_both_keep_their_change(
        self, flows: Flows, convox_rack: RackEmulator, source: Path
    ) -> None:
        await deploy(flows, source)
        # Both writers read the same newest release before either release is created.
        convox_rack.faults.delay("POST", "/apps/demo/releases", 0.3, times=2)
        events: list[Any] = []
        first = make_flows(convox_rack, flows.kind)
        second = make_flows(convox_rack, flows.kind)
        try:
            if flows.kind == "sync":
                threads = [
                    threading.Thread(
                        target=w.environment.set,
                        args=("demo", change),
                        kwargs={"on_event": events.append, "promote": False},
                    )
                    for w, change in ((first, {"ONE": "1"}), (second, {"TWO": "2"}))
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
            else:
                await asyncio.gather(
                    first.environment.set(
                        "demo", {"ONE": "1"}, on_event=events.append, promote=False
                    ),
                    second.environment.set(
                        "demo", {"TWO": "2"}, on_event=events.append, promote=False
                    ),
                )
        finally:
            await _close(first.client)
            await _close(second.client)
        newest = convox_rack.releases("demo")[0]
        assert "ONE=1" in newest["env"].split("\n")
        assert "TWO=2" in newest["env"].split("\n")
        assert any(isinstance(e, EnvironmentConflict) for e in events)

    async def test_set_pins_the_parent_release_and_unset_removes(
        self, flows: Flows, convox_rack: RackEmulator, source: Path
    ) -> None:
        build = await deploy(flows, source)
        set_id = (
            await flows(lambda f: f.environment.set("demo", {"A": "1", "B": "2"}, promote=False))
        ).id
        unset_id = (await flows(lambda f: f.environment.unset("demo", ["A"], promote=False))).id
        releases = {r["id"]: r for r in convox_rack.releases("demo")}
        assert releases[set_id]["build"] == build.id
        assert releases[unset_id]["env"] == "B=2"
        create = convox_rack.requests.find("POST", "/apps/demo/releases")[-1]
        assert create.status == 200


class TestDecisions:
    """The decisions the Airflow layer delegates, over HTTP on both clients."""

    @pytest.fixture
    async def slow(
        self, convox_rack_factory: Callable[..., RackEmulator], kind: str
    ) -> AsyncIterator[tuple[RackEmulator, Flows]]:
        rack = convox_rack_factory(timing=Timing(build=30, rollout=30))
        rack.create_app("demo")
        rack.add_release("demo", MANIFEST)
        made = make_flows(rack, kind)
        yield rack, made
        await _close(made.client)

    async def test_cancel_stops_an_active_build_and_leaves_an_ended_one(
        self, slow: tuple[RackEmulator, Flows], source: Path
    ) -> None:
        rack, flows = slow
        build: Build = await flows(
            lambda f: f.builds.build_from_directory("demo", source, wait=False, **FAST)
        )
        assert await flows(lambda f: f.client.builds.cancel("demo", build.id)) is True
        assert rack.requests.count("DELETE", f"/apps/demo/processes/{build.process}") == 1
        ended = rack.builds("demo")[-1]  # the seeded build, complete
        assert await flows(lambda f: f.client.builds.cancel("demo", ended["id"])) is False
        assert rack.requests.count("DELETE", "/apps/demo/processes/*") == 1

    async def test_cancel_rollout_cancels_only_the_rollout_of_that_release(
        self, slow: tuple[RackEmulator, Flows]
    ) -> None:
        rack, flows = slow
        release = rack.add_release("demo", MANIFEST, promote=False)[1]["id"]
        await flows(lambda f: f.releases.promote("demo", release, wait=False, force=True))
        assert rack.app("demo")["status"] == "updating"
        other = rack.releases("demo")[-1]["id"]
        assert await flows(lambda f: f.client.apps.cancel_rollout("demo", other)) is False
        assert posts(rack, "/apps/demo/cancel") == 0
        assert await flows(lambda f: f.client.apps.cancel_rollout("demo", release)) is True
        assert posts(rack, "/apps/demo/cancel") == 1
        assert rack.app("demo")["status"] == "rollback"

    async def test_promote_or_attach_never_promotes_a_release_twice(
        self, slow: tuple[RackEmulator, Flows]
    ) -> None:
        rack, flows = slow
        release = rack.add_release("demo", MANIFEST, promote=False)[1]["id"]
        first = await flows(
            lambda f: f.client.releases.promote_or_attach("demo", release, wait=False)
        )
        assert first.pending
        again = await flows(
            lambda f: f.client.releases.promote_or_attach("demo", release, wait=False)
        )
        assert again.pending
        assert posts(rack, f"/apps/demo/releases/{release}/promote") == 1

    async def test_promote_or_attach_is_done_when_the_app_runs_the_release(
        self, flows: Flows, convox_rack: RackEmulator, source: Path
    ) -> None:
        build = await deploy(flows, source)
        done = await flows(
            lambda f: f.client.releases.promote_or_attach(
                "demo", build.release, waiting=WaitOptions(**ROLLOUT)
            )
        )
        assert (done.release_id, done.pending) == (build.release, False)
        assert posts(convox_rack, f"/apps/demo/releases/{build.release}/promote") == 1

    async def test_a_replaced_environment_is_written_once(
        self, flows: Flows, convox_rack: RackEmulator, source: Path
    ) -> None:
        await deploy(flows, source)
        first = await flows(
            lambda f: f.environment.set(
                "demo", {"ONLY": "1"}, replace=True, if_changed=True, promote=False
            )
        )
        again = await flows(
            lambda f: f.environment.set(
                "demo", {"ONLY": "1"}, replace=True, if_changed=True, promote=False
            )
        )
        assert again.id == first.id
        assert posts(convox_rack, "/apps/demo/releases") == 1

    async def test_rollout_state_reads_the_app(
        self, flows: Flows, convox_rack: RackEmulator, source: Path
    ) -> None:
        first = await deploy(flows, source)
        second = await deploy(flows, source)
        state = await flows(lambda f: f.client.releases.rollout_state("demo", second.release))
        assert state.state == state.RUNNING
        older = await flows(lambda f: f.client.releases.rollout_state("demo", first.release))
        assert older.state == older.OLDER

    async def test_poll_settles_an_ended_build(
        self, flows: Flows, convox_rack: RackEmulator, source: Path
    ) -> None:
        convox_rack.scripts.fail_next_build("tests failed", app="demo")
        failed: Build = await flows(
            lambda f: f.builds.build_from_directory("demo", source, wait=False, **FAST)
        )
        with pytest.raises(ConvoxBuildFailedError, match="tests failed"):
            await flows(lambda f: f.client.builds.poll("demo", failed.id))


class TestRun:
    async def test_run_returns_the_exit_code_and_deletes_the_pod(
        self, flows: Flows, convox_rack: RackEmulator, source: Path
    ) -> None:
        await deploy(flows, source)
        output: list[bytes] = []
        code = await flows(
            lambda f: f.processes.run_attached(
                "demo", "web", "sh -c 'echo migrating; exit 3'", on_output=output.append, **FAST
            )
        )
        assert code == 3
        assert b"".join(output) == b"migrating\n"
        assert posts(convox_rack, "/apps/demo/services/web/processes") == 1
        assert convox_rack.requests.count("DELETE", "/apps/demo/processes/*") == 1
        assert not [p for p in convox_rack.processes("demo") if p["command"].startswith("sleep")]

    async def test_cancelling_the_async_run_deletes_the_pod(
        self, convox_rack: RackEmulator, source: Path
    ) -> None:
        convox_rack.create_app("demo")
        convox_rack.add_release("demo", MANIFEST)
        flows = make_flows(convox_rack, "async")
        try:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(
                    flows.processes.run_attached("demo", "web", "sleep 30", **FAST), 0.5
                )
        finally:
            await _close(flows.client)
        assert convox_rack.requests.count("GET", "/apps/demo/processes/*/exec") == 1
        assert convox_rack.requests.count("DELETE", "/apps/demo/processes/*") == 1


class TestScale:
    async def test_scale_waits_for_the_rollout(
        self, flows: Flows, convox_rack: RackEmulator, source: Path
    ) -> None:
        await deploy(flows, source)
        final = await flows(lambda f: f.services.scale("demo", "web", count=3, **ROLLOUT))
        assert final.status == "running"
        web = [p for p in convox_rack.processes("demo") if p["name"] == "web"]
        assert len(web) == 3


class TestFaults:
    async def test_a_502_during_a_wait_is_tolerated(
        self, convox_rack: RackEmulator, kind: str, source: Path
    ) -> None:
        convox_rack.create_app("demo")
        flows = make_flows(convox_rack, kind, RetryConfig(max_retries=0))
        events: list[Any] = []
        try:
            build: Build = await flows(
                lambda f: f.builds.build_from_directory("demo", source, **FAST)
            )
            convox_rack.faults.respond("GET", "/apps/demo", 502, times=1)
            await flows(
                lambda f: f.releases.promote(
                    "demo", build.release, force=True, on_event=events.append, **ROLLOUT
                )
            )
        finally:
            await _close(flows.client)
        assert [e.failures for e in events if isinstance(e, WaitRetrying)] == [1]
        assert convox_rack.requests.count("GET", "/apps/demo", status=502) == 1

    @pytest.mark.parametrize(
        ("path", "step"),
        [
            ("/apps/demo/objects/tmp/*.tgz", "build"),
            ("/apps/demo/builds", "build"),
            ("/apps/demo/releases/*/promote", "promote"),
            ("/apps/demo/releases", "env"),
            ("/apps/demo/services/web/processes", "run"),
        ],
    )
    async def test_a_lost_answer_never_makes_a_create_happen_twice(
        self, convox_rack: RackEmulator, kind: str, source: Path, path: str, step: str
    ) -> None:
        convox_rack.create_app("demo")
        _, release = convox_rack.add_release("demo", MANIFEST)
        # A gateway that times out after the rack did the work: the client must not resend.
        convox_rack.faults.respond("POST", path, 502, after_handler=True)
        retrying = RetryConfig(max_retries=3, backoff_base=0, backoff_max=0)
        flows = make_flows(convox_rack, kind, retrying)
        steps: dict[str, Callable[[Flows], Any]] = {
            "build": lambda f: f.builds.build_from_directory("demo", source, **FAST),
            "promote": lambda f: f.releases.promote("demo", release["id"], force=True, **ROLLOUT),
            "env": lambda f: f.environment.set("demo", {"K": "v"}, promote=False),
            "run": lambda f: f.processes.run_attached("demo", "web", "true", **FAST),
        }
        try:
            with pytest.raises(ConvoxGatewayError):
                await flows(steps[step])
        finally:
            await _close(flows.client)
        assert posts(convox_rack, path) == 1
