"""The official ``convox`` SDK 0.1.0's public calls over real HTTP against the rack emulator.

Written from the SDK's README and docstrings: each call with its documented argument forms,
on both clients. Calls a v3 rack refuses (501 ``unimplemented``, 400 ``unavailable on v3
racks``) are sent and their refusal comes back typed, as the SDK's would. Waiting workflows get
fast poll settings (keywords the SDK lacks) so the suite stays quick.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

import convox_provider.client as convox
from convox_provider.client.models import (
    App,
    AppConfig,
    Certificate,
    Process,
    Release,
    System,
    SystemJwt,
)
from convox_provider.testing.emulator import RackEmulator

MANIFEST = 'services:\n  web:\n    build: .\n    port: 3000\n    environment:\n      - "*"\n'
ROLLOUT = {"poll_interval": 0.01, "initial_delay": 0.0}


class Sdk:
    """A client of the emulator; ``await sdk(lambda c: …)`` runs on either kind."""

    def __init__(self, client: Any, rack: RackEmulator) -> None:
        self.client = client
        self.rack = rack

    async def __call__(self, operation: Callable[[Any], Any]) -> Any:
        result = operation(self.client)
        return await result if inspect.isawaitable(result) else result


@pytest.fixture
async def sdk(client_kind: str, convox_rack: RackEmulator) -> AsyncIterator[Sdk]:
    convox_rack.create_app("demo")
    convox_rack.add_release("demo", MANIFEST, env={"FIRST": "1"})
    retry = convox.RetryConfig(max_retries=0)
    if client_kind == "sync":
        with convox.ConvoxClient(
            host=convox_rack.url, api_key=convox_rack.password, retry=retry, timeout=10.0
        ) as client:
            yield Sdk(client, convox_rack)
    else:
        async with convox.AsyncConvoxClient(
            host=convox_rack.url, api_key=convox_rack.password, retry=retry, timeout=10.0
        ) as aclient:
            yield Sdk(aclient, convox_rack)


class TestApps:
    async def test_create_list_get_update_delete(self, sdk: Sdk) -> None:
        created = await sdk(lambda c: c.apps.create("myapp", generation="2", timeout=60))
        assert isinstance(created, App)
        assert created.name == "myapp"
        assert "myapp" in [a.name for a in await sdk(lambda c: c.apps.list())]
        await sdk(lambda c: c.apps.update("demo", lock=True))
        assert (await sdk(lambda c: c.apps.get("demo"))).locked is True
        with pytest.raises(convox.ConvoxConflictError):
            await sdk(lambda c: c.apps.delete("demo"))
        await sdk(lambda c: c.apps.update("demo", lock=False))
        await sdk(lambda c: c.apps.delete("myapp"))

    async def test_a_second_create_is_a_conflict(self, sdk: Sdk) -> None:
        with pytest.raises(convox.ConvoxConflictError):
            await sdk(lambda c: c.apps.create("demo"))

    async def test_a_missing_app_is_not_found(self, sdk: Sdk) -> None:
        with pytest.raises(convox.ConvoxNotFoundError):
            await sdk(lambda c: c.apps.get("nope"))

    async def test_cancel_without_a_rollout_is_forbidden(self, sdk: Sdk) -> None:
        with pytest.raises(convox.ConvoxForbiddenError):
            await sdk(lambda c: c.apps.cancel("demo"))

    async def test_config_set_with_value_base64_then_get(self, sdk: Sdk) -> None:
        await sdk(lambda c: c.apps.config_set("demo", "greeting", value_base64="aGk="))
        config = await sdk(lambda c: c.apps.config_get("demo", "greeting"))
        assert isinstance(config, AppConfig)
        assert config.value == "hi"
        assert "greeting" in [x.name for x in await sdk(lambda c: c.apps.config_list("demo"))]

    async def test_config_set_positional_is_the_base64_value_as_in_the_sdk(self, sdk: Sdk) -> None:
        await sdk(lambda c: c.apps.config_set("demo", "greeting", "aGk="))
        assert (await sdk(lambda c: c.apps.config_get("demo", "greeting"))).value == "hi"
        await sdk(lambda c: c.apps.config_set("demo", "plain", value="aGk="))
        assert (await sdk(lambda c: c.apps.config_get("demo", "plain"))).value == "aGk="

    async def test_metrics_is_refused_by_v3_racks(self, sdk: Sdk) -> None:
        with pytest.raises(convox.ConvoxNotImplementedError):
            await sdk(lambda c: c.apps.metrics("demo", period=60, metrics=["cpu"]))


class TestEnvironmentAndReleases:
    async def test_get_set_unset_promote_by_default(self, sdk: Sdk) -> None:
        assert await sdk(lambda c: c.environment.get("demo")) == {"FIRST": "1"}

        # the SDK returns the Release it created (and promoted): a model, not an id
        made = await sdk(lambda c: c.environment.set("demo", {"KEY": "value"}, **ROLLOUT))
        assert isinstance(made, Release)
        assert (made.app, made.environment) == ("demo", {"FIRST": "1", "KEY": "value"})
        assert (await sdk(lambda c: c.apps.get("demo"))).release == made.id
        assert await sdk(lambda c: c.environment.get("demo")) == {"FIRST": "1", "KEY": "value"}

        unmade = await sdk(lambda c: c.environment.unset("demo", "KEY", **ROLLOUT))
        assert isinstance(unmade, Release)
        assert unmade.environment == {"FIRST": "1"}
        assert (await sdk(lambda c: c.apps.get("demo"))).release == unmade.id
        assert await sdk(lambda c: c.environment.get("demo")) == {"FIRST": "1"}

    async def test_set_with_promote_false_only_creates(self, sdk: Sdk) -> None:
        active = (await sdk(lambda c: c.apps.get("demo"))).release
        new = await sdk(lambda c: c.environment.set("demo", env={"X": "1"}, promote=False))
        assert isinstance(new, Release)
        assert new.id != active
        assert (await sdk(lambda c: c.releases.get("demo", new.id))).env == new.env
        assert (await sdk(lambda c: c.apps.get("demo"))).release == active

    async def test_a_set_the_newest_release_already_has_returns_that_release(
        self, sdk: Sdk
    ) -> None:
        newest = (await sdk(lambda c: c.releases.list("demo", limit=1)))[0]
        same = await sdk(lambda c: c.environment.set("demo", {"FIRST": "1"}, promote=False))
        assert isinstance(same, Release)
        assert same.id == newest.id
        assert len(await sdk(lambda c: c.releases.list("demo"))) == 1

    async def test_list_get_create_promote_rollback(self, sdk: Sdk) -> None:
        releases = await sdk(lambda c: c.releases.list("demo", limit=5))
        assert all(isinstance(r, Release) for r in releases)
        first = releases[0]
        assert (await sdk(lambda c: c.releases.get("demo", first.id))).id == first.id

        created = await sdk(
            lambda c: c.releases.create("demo", build=first.build, env="A=1\n", description="d")
        )
        await sdk(
            lambda c: c.releases.promote(
                "demo", created.id, force=False, idle=False, development=False, **ROLLOUT
            )
        )
        assert (await sdk(lambda c: c.apps.get("demo"))).release == created.id

        # the SDK's rollback(app, release_id) promotes the old id, which the rack refuses;
        # ours creates a new release from its build and env and promotes that
        back = await sdk(lambda c: c.releases.rollback("demo", first.id, **ROLLOUT))
        assert back not in (first.id, created.id)
        assert (await sdk(lambda c: c.apps.get("demo"))).release == back
        assert await sdk(lambda c: c.environment.get("demo")) == {"FIRST": "1"}

    async def test_promoting_an_older_release_directly_is_refused(self, sdk: Sdk) -> None:
        first = (await sdk(lambda c: c.releases.list("demo")))[-1]
        await sdk(lambda c: c.environment.set("demo", {"B": "2"}, **ROLLOUT))
        with pytest.raises(convox.ConvoxValidationError, match="can not promote an older"):
            await sdk(lambda c: c.releases.promote("demo", first.id, **ROLLOUT))


class TestProcessesAndServices:
    async def test_run_is_detached_and_returns_the_process(self, sdk: Sdk) -> None:
        process = await sdk(lambda c: c.processes.run("demo", "web", command="sleep 30"))
        assert isinstance(process, Process)
        listed = await sdk(lambda c: c.processes.list("demo", service="web"))
        assert process.id in [p.id for p in listed]
        assert (await sdk(lambda c: c.processes.get("demo", process.id))).id == process.id
        await sdk(lambda c: c.processes.stop("demo", process.id))

    async def test_run_attached_returns_the_exit_code(self, sdk: Sdk) -> None:
        code = await sdk(
            lambda c: c.processes.run_attached("demo", "web", "true", poll_interval=0.01)
        )
        assert code == 0

    async def test_services_list_update_restart(self, sdk: Sdk) -> None:
        assert [s.name for s in await sdk(lambda c: c.services.list("demo"))] == ["web"]
        await sdk(lambda c: c.services.update("demo", "web", count=2, memory=512))
        await sdk(lambda c: c.services.restart("demo", "web"))


class TestRackRoutes:
    async def test_system_get_capacity_processes_releases(self, sdk: Sdk) -> None:
        assert isinstance(await sdk(lambda c: c.system.get()), System)
        await sdk(lambda c: c.system.capacity())
        await sdk(lambda c: c.system.processes(all=True))
        with pytest.raises(convox.ConvoxNotImplementedError):  # as the emulated v3 rack answers
            await sdk(lambda c: c.system.releases())

    async def test_jwt_token_with_and_without_options(self, sdk: Sdk) -> None:
        plain = await sdk(lambda c: c.system.jwt_token())
        scoped = await sdk(lambda c: c.system.jwt_token(role="write", duration_in_hour="2"))
        assert isinstance(plain, SystemJwt)
        assert plain.token
        assert scoped.token

    @pytest.mark.parametrize(
        "call",
        [
            lambda c: c.system.metrics(period=60),
            lambda c: c.instances.keyroll(),
            lambda c: c.certificates.apply("demo", "web", 443, "cert-1"),
            lambda c: c.system.letsencrypt_config_get(),
            lambda c: c.system.letsencrypt_config_apply(convox.LetsEncryptConfig(role="r")),
        ],
    )
    async def test_501_routes_come_back_not_implemented(
        self, sdk: Sdk, call: Callable[[Any], Any]
    ) -> None:
        with pytest.raises(convox.ConvoxNotImplementedError):
            await sdk(call)

    @pytest.mark.parametrize(
        "call",
        [
            lambda c: c.resources.system_update("hook", parameters={"Url": "https://x"}),
            lambda c: c.resources.system_link("hook", "demo"),
            lambda c: c.resources.system_unlink("hook", "demo"),
        ],
    )
    async def test_v2_resource_routes_come_back_as_validation_errors(
        self, sdk: Sdk, call: Callable[[Any], Any]
    ) -> None:
        with pytest.raises(convox.ConvoxValidationError, match="unavailable on v3 racks"):
            await sdk(call)

    async def test_webhook_resources(self, sdk: Sdk) -> None:
        made = await sdk(
            lambda c: c.resources.system_create(
                "webhook", name="hook", parameters={"Url": "https://h.example/x"}
            )
        )
        assert made.name == "hook"
        assert "hook" in [r.name for r in await sdk(lambda c: c.resources.system_list())]
        assert (await sdk(lambda c: c.resources.system_get("hook"))).name == "hook"
        await sdk(lambda c: c.resources.system_types())
        await sdk(lambda c: c.resources.system_delete("hook"))
        await sdk(lambda c: c.resources.list("demo"))

    async def test_certificates_generate_list_renew_delete(self, sdk: Sdk) -> None:
        cert = await sdk(lambda c: c.certificates.generate(["a.example"]))
        assert isinstance(cert, Certificate)
        assert cert.id in [x.id for x in await sdk(lambda c: c.certificates.list())]
        await sdk(lambda c: c.certificates.delete(cert.id))

    async def test_registries_and_instances(self, sdk: Sdk) -> None:
        await sdk(lambda c: c.registries.add("r.example", "user", "pass"))
        assert "r.example" in [r.server for r in await sdk(lambda c: c.registries.list())]
        await sdk(lambda c: c.registries.remove("r.example"))
        assert await sdk(lambda c: c.instances.list())

    async def test_api_escape_hatch(self, sdk: Sdk) -> None:
        apps = await sdk(lambda c: c.api.get("/apps"))
        assert "demo" in [a["name"] for a in apps]
        made = await sdk(lambda c: c.api.post("/apps", data={"name": "newapp"}))
        assert made["name"] == "newapp"

    async def test_stream_of_the_logs_path_gets_the_routers_404(self, sdk: Sdk) -> None:
        # §8 item 1: logs are a WebSocket route; use apps.logs() instead
        response = await sdk(
            lambda c: c.stream("GET", "/apps/demo/logs", params={"follow": "true"})
        )
        assert response.status_code == 404
        if isinstance(sdk.client, convox.ConvoxClient):
            response.close()
        else:
            await response.aclose()


# -- constructors, as the SDK documents them -----------------------------------------------


def _cli_dir(tmp_path: Path, auth: dict[str, str]) -> Path:
    directory = tmp_path / "convox"
    directory.mkdir()
    (directory / "auth").write_text(json.dumps(auth))
    return directory


def test_from_cli_config_rack_naming_a_host_is_that_direct_rack(
    tmp_path: Path, convox_rack: RackEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = convox_rack.url.split("://", 1)[1]
    auth = _cli_dir(tmp_path, {host: convox_rack.password, "console.convox.com": "k"}) / "auth"
    monkeypatch.setenv("X_DEV_ALLOW_HTTP", "true")
    for var in ("CONVOX_HOST", "CONVOX_PASSWORD", "CONVOX_RACK", "RACK_URL", "CONVOX_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    with convox.ConvoxClient.from_cli_config(
        rack=host, config_path=str(auth), retry=convox.RetryConfig(max_retries=0), timeout=5.0
    ) as client:
        assert client.config.rack is None
        assert client.apps.list() == []


def test_from_cli_config_console_host_and_rack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = _cli_dir(tmp_path, {"console.convox.com": "deploy-key", "other.example": "x"}) / "auth"
    for var in ("CONVOX_HOST", "CONVOX_PASSWORD", "CONVOX_RACK", "RACK_URL", "CONVOX_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    client = convox.ConvoxClient.from_cli_config(
        host="console.convox.com", rack="acme/production", config_path=str(auth)
    )
    with client:
        assert client.config.rack == "acme/production"
        assert client.config.base_url == "https://console.convox.com"
    # the SDK's positional form: the first argument is the rack, never the host
    sdk_form = convox.ConvoxClient.from_cli_config(
        "acme/production", host="console.convox.com", config_path=str(auth)
    )
    with sdk_form:
        assert sdk_form.config.rack == "acme/production"


def test_from_cli_config_a_lone_login_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = _cli_dir(tmp_path, {"rack.example.com": "pw"})
    for var in ("CONVOX_HOST", "CONVOX_PASSWORD", "CONVOX_RACK", "RACK_URL", "CONVOX_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    with convox.ConvoxClient.from_cli_config(config_path=str(directory / "auth")) as client:
        assert client.config.base_url == "https://rack.example.com"


def test_from_cli_config_unknown_host_is_a_value_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = _cli_dir(tmp_path, {"a.example": "1", "b.example": "2"})
    for var in ("CONVOX_HOST", "CONVOX_PASSWORD", "CONVOX_RACK", "RACK_URL", "CONVOX_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ValueError, match=r"c\.example"):
        convox.ConvoxClient.from_cli_config(host="c.example", config_path=str(directory / "auth"))


@pytest.mark.parametrize("name", ["creds.json", "auth"])
def test_from_cli_config_config_path_is_any_auth_file_with_the_session_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """As the SDK: ``config_path`` is the auth JSON whatever its name; the ``session`` file is
    read from its directory."""
    for var in ("CONVOX_HOST", "CONVOX_PASSWORD", "CONVOX_RACK", "RACK_URL", "CONVOX_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    auth = tmp_path / name
    auth.write_text(json.dumps({"console.convox.com": "deploy-key", "other.example": "x"}))
    (tmp_path / "session").write_text(json.dumps({"console.convox.com": "sess-1"}))
    client = convox.ConvoxClient.from_cli_config(
        "acme/production", host="console.convox.com", config_path=str(auth)
    )
    with client:
        assert (client.config.api_key, client.config.session) == ("deploy-key", "sess-1")
        assert client.config.rack == "acme/production"
    lone = tmp_path / "lone.json"
    lone.write_text(json.dumps({"rack.example.com": "pw"}))
    with convox.ConvoxClient.from_cli_config(config_path=lone) as client:
        assert (client.config.base_url, client.config.api_key) == ("https://rack.example.com", "pw")


def test_from_cli_config_a_missing_config_path_is_file_not_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK raises ``FileNotFoundError``; ours is that and a ``ValueError``, even when the
    environment has a host and password (the path asked for is missing)."""
    monkeypatch.setenv("CONVOX_HOST", "rack.example.com")
    monkeypatch.setenv("CONVOX_PASSWORD", "pw")
    missing = tmp_path / "nowhere" / "creds.json"
    for cls in (FileNotFoundError, ValueError, convox.ConvoxConfigError):
        with pytest.raises(cls, match=r"creds\.json"):
            convox.ConvoxClient.from_cli_config(config_path=str(missing))
    with pytest.raises(ValueError, match="not both"):
        convox.ConvoxClient.from_cli_config(config_path=missing, config_dir=tmp_path)


def test_from_env_with_retry_and_timeout(
    convox_rack: RackEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVOX_HOST", convox_rack.url)
    monkeypatch.setenv("CONVOX_PASSWORD", convox_rack.password)
    monkeypatch.delenv("CONVOX_RACK", raising=False)
    retry = convox.RetryConfig(max_retries=5, backoff_base=2.0, backoff_max=60.0, retry_on_500=True)
    with convox.ConvoxClient.from_env(retry=retry, timeout=12.0) as client:
        assert client.config.retry == retry
        assert client.config.timeout == 12.0
        assert client.apps.list() == []
