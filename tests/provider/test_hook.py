"""ConvoxHook: connection parsing, clients, async sharing, test_connection, secrets."""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import BaseHook
from airflow.sdk.log import redact
from airflow_compat import AIRFLOW_RELEASE, AirflowNotFoundException
from pytest_httpx import HTTPXMock

from convox_provider import get_provider_info
from convox_provider.client.client import AsyncConvoxClient, ConvoxClient
from convox_provider.client.errors import ConvoxConfigError
from convox_provider.hooks.convox import (
    ConvoxConnectionConfigError,
    ConvoxHook,
    shared_async_clients,
)

KEY = "dk-0123456789abcdef-secret"
SetConnection = Callable[..., str]
SYSTEM = {"name": "production", "version": "3.24.9", "status": "running"}


# --- reading the connection -------------------------------------------------------------------


def test_uri_connection_extras_are_converted(set_connection: SetConnection) -> None:
    set_connection(
        f"convox://:{KEY}@console.convox.com/?rack=acme%2Fproduction&verify_ssl=false"
        "&timeout=12.5&max_retries=1&retry_on_500=true"
    )
    config = ConvoxHook().get_config()
    assert config.base_url == "https://console.convox.com"
    assert config.api_key == KEY
    assert config.rack == "acme/production"
    assert config.console is True
    assert config.username == "convox"
    assert config.verify is False
    assert config.timeout == 12.5
    assert config.retry.max_retries == 1
    assert config.retry.retry_on_500 is True


def test_json_connection_with_typed_extras(set_connection: SetConnection) -> None:
    set_connection(
        {
            "host": "https://api.rack.example.org",
            "port": 5443,
            "password": KEY,
            "schema": "ignored",
            "extra": {"verify_ssl": True, "timeout": 45, "max_retries": 0, "retry_on_500": False},
        },
        conn_id="convox_direct",
    )
    config = ConvoxHook(convox_conn_id="convox_direct").get_config()
    assert config.base_url == "https://api.rack.example.org:5443"
    assert config.rack is None
    assert config.console is False
    assert config.verify is True
    assert config.timeout == 45.0
    assert config.retry.max_retries == 0
    assert config.retry.retry_on_500 is False


def test_defaults_when_extras_are_absent_or_empty(set_connection: SetConnection) -> None:
    set_connection(
        {
            "host": "https://api.rack.example.org",
            "password": KEY,
            "extra": {"rack": "", "verify_ssl": None, "timeout": None, "ca_bundle": ""},
        }
    )
    config = ConvoxHook().get_config()
    assert config.rack is None
    assert config.verify is True
    assert config.timeout == 30.0
    assert config.retry.max_retries == 3
    assert config.retry.retry_on_500 is False


@pytest.mark.parametrize(
    ("host", "port", "base_url"),
    [
        ("console.convox.com", None, "https://console.convox.com"),
        ("https://api.rack.example.org", 5443, "https://api.rack.example.org:5443"),
        ("api.rack.example.org", 5443, "https://api.rack.example.org:5443"),
        ("api.rack.example.org:5443", 5443, "https://api.rack.example.org:5443"),
        ("http://127.0.0.1", 8080, "http://127.0.0.1:8080"),
        ("http://localhost:8080", None, "http://localhost:8080"),
        ("https://[::1]", 9443, "https://[::1]:9443"),
    ],
)
def test_host_and_port_are_combined(
    set_connection: SetConnection, host: str, port: int | None, base_url: str
) -> None:
    set_connection({"host": host, "port": port, "password": KEY})
    assert ConvoxHook().get_config().base_url == base_url


def test_host_given_as_a_uri_with_scheme(set_connection: SetConnection) -> None:
    set_connection(f"convox://:{KEY}@http%3A%2F%2F127.0.0.1:8080")
    assert ConvoxHook().get_config().base_url == "http://127.0.0.1:8080"


def test_key_may_come_from_a_rack_url_in_the_host(set_connection: SetConnection) -> None:
    set_connection({"host": f"https://convox:{KEY}@api.rack.example.org"})
    config = ConvoxHook().get_config()
    assert config.api_key == KEY
    assert config.base_url == "https://api.rack.example.org"


@pytest.mark.parametrize(("login", "username"), [(None, "convox"), ("", "convox"), ("jwt", "jwt")])
def test_login_is_the_basic_auth_user(
    set_connection: SetConnection, login: str | None, username: str
) -> None:
    set_connection({"host": "https://api.rack.example.org", "login": login, "password": KEY})
    assert ConvoxHook().get_config().username == username


def test_pre_declarative_prefixed_extras_are_read(set_connection: SetConnection) -> None:
    set_connection(
        {
            "host": "console.convox.com",
            "password": KEY,
            "extra": {"extra__convox__rack": "acme/staging", "extra__convox__timeout": "5"},
        }
    )
    config = ConvoxHook().get_config()
    assert config.rack == "acme/staging"
    assert config.timeout == 5.0


def test_ca_bundle(set_connection: SetConnection, tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    set_connection(
        {"host": "https://rack.example.org", "password": KEY, "extra": {"ca_bundle": str(bundle)}}
    )
    assert ConvoxHook().get_config().verify == str(bundle)
    set_connection(
        {
            "host": "https://rack.example.org",
            "password": KEY,
            "extra": {"ca_bundle": str(bundle), "verify_ssl": "false"},
        }
    )
    assert ConvoxHook().get_config().verify is False


BAD_CONNECTIONS: list[tuple[str, dict[str, Any], str]] = [
    ("empty host", {"host": "", "password": KEY}, "host"),
    ("no host", {"password": KEY}, "host"),
    ("empty password", {"host": "console.convox.com", "password": ""}, "password"),
    ("key with newline", {"host": "console.convox.com", "password": KEY + "\n"}, "password"),
    ("http to a remote host", {"host": "http://rack.example.org", "password": KEY}, "host"),
    ("http with the key in the URL", {"host": f"http://convox:{KEY}@rack.example.org"}, "host"),
    (
        "key pasted into timeout",
        {"host": "c.example.org", "password": KEY, "extra": {"timeout": KEY}},
        "timeout",
    ),
    ("host with a path", {"host": "https://rack.example.org/api", "password": KEY}, "host"),
    (
        "two different ports",
        {"host": "rack.example.org:5443", "port": 443, "password": KEY},
        "port",
    ),
    ("login with colon", {"host": "rack.example.org", "login": "a:b", "password": KEY}, "login"),
    ("extra not JSON", {"host": "rack.example.org", "password": KEY, "extra": "{nope"}, "extra"),
    ("extra a list", {"host": "rack.example.org", "password": KEY, "extra": "[1]"}, "extra"),
]
BAD_EXTRAS: list[tuple[str, Any]] = [
    ("rack", "acme production"),
    ("rack", "production"),
    ("rack", "acme/prod/x"),
    ("rack", 7),
    ("verify_ssl", "maybe"),
    ("verify_ssl", 2),
    ("retry_on_500", "sometimes"),
    ("timeout", "abc"),
    ("timeout", "0"),
    ("timeout", -1),
    ("timeout", "nan"),
    ("timeout", True),
    ("max_retries", "-1"),
    ("max_retries", "1.5"),
    ("max_retries", 2.5),
    ("max_retries", True),
    ("ca_bundle", "/nonexistent/ca.pem"),
    ("actor", "naïve"),
    ("actor", f"ci-{KEY}"),
    ("actor", 7),
]


def _expect_config_error(field: str) -> tuple[ConvoxConnectionConfigError, str]:
    with pytest.raises(ConvoxConnectionConfigError) as info:
        ConvoxHook().get_config()
    error = info.value
    assert error.field == field
    assert error.conn_id == "convox_default"
    return error, str(error)


@pytest.mark.parametrize(
    ("case", "fields", "field"), BAD_CONNECTIONS, ids=[c[0] for c in BAD_CONNECTIONS]
)
def test_bad_connection_names_the_field_to_fix(
    set_connection: SetConnection, case: str, fields: dict[str, Any], field: str
) -> None:
    set_connection(fields)
    if field == "extra" and AIRFLOW_RELEASE < (3, 2):
        pytest.skip(
            "Airflow 3.1 drops an environment connection whose extra is not a JSON object "
            '("The conn_id `convox_default` isn\'t defined") before the hook can read it'
        )
    error, message = _expect_config_error(field)
    assert isinstance(error, ConvoxConfigError)
    assert "'convox_default'" in message
    assert f"({field})" in message
    assert KEY not in message


@pytest.mark.parametrize(("field", "value"), BAD_EXTRAS)
def test_bad_extra_is_rejected_with_its_name(
    set_connection: SetConnection, field: str, value: Any
) -> None:
    set_connection({"host": "console.convox.com", "password": KEY, "extra": {field: value}})
    _, message = _expect_config_error(field)
    label = get_provider_info()["connection-types"][0]["conn-fields"][field]["label"]
    assert f"{label!r} ({field})" in message


def test_bad_uri_extra_is_rejected(set_connection: SetConnection) -> None:
    set_connection(f"convox://:{KEY}@console.convox.com/?rack=acme%2Fprod&verify_ssl=nope")
    _, message = _expect_config_error("verify_ssl")
    assert "'nope'" in message


def test_client_error_text_is_kept(set_connection: SetConnection) -> None:
    set_connection({"host": "http://rack.example.org", "password": KEY})
    _, message = _expect_config_error("host")
    assert "Console or rack API host" in message
    assert "Refusing plain http:// for rack.example.org" in message


def test_unknown_connection_id() -> None:
    with pytest.raises(AirflowNotFoundException):
        ConvoxHook(convox_conn_id="convox_missing").get_config()


# --- secrets ----------------------------------------------------------------------------------


def test_key_is_registered_with_the_secret_masker(set_connection: SetConnection) -> None:
    key = "dk-masked-by-the-sync-path-4711"
    set_connection({"host": f"https://convox:{key}@api.rack.example.org"})
    ConvoxHook().get_config()
    assert key not in redact(f"the key is {key}")


async def test_async_path_registers_the_key_too(set_connection: SetConnection) -> None:
    key = "dk-masked-by-the-async-path-0815"
    set_connection({"host": f"https://convox:{key}@api.rack.example.org"})
    await ConvoxHook().aget_config()
    assert key not in redact(f"the key is {key}")


def test_key_never_in_reprs(set_connection: SetConnection) -> None:
    set_connection({"host": "https://api.rack.example.org", "password": KEY})
    with ConvoxHook() as hook:
        assert KEY not in repr(hook)
        assert repr(hook) == "ConvoxHook(convox_conn_id='convox_default')"
        assert KEY not in repr(hook.get_config())
        assert KEY not in repr(hook.get_conn())


# --- sync client ------------------------------------------------------------------------------


def test_get_conn_is_cached_until_closed(set_connection: SetConnection) -> None:
    set_connection({"host": "https://api.rack.example.org", "password": KEY})
    hook = ConvoxHook()
    client = hook.get_conn()
    assert isinstance(client, ConvoxClient)
    assert hook.get_conn() is client
    hook.close()
    assert client._driver.http.is_closed
    assert hook.get_conn() is not client
    hook.close()


def test_airflow_resolves_the_hook_from_the_connection_type(set_connection: SetConnection) -> None:
    set_connection({"host": "https://api.rack.example.org", "password": KEY}, conn_id="convox_ops")
    hook = BaseHook.get_hook("convox_ops")
    assert isinstance(hook, ConvoxHook)
    assert hook.convox_conn_id == "convox_ops"


# --- shared async client ----------------------------------------------------------------------


async def test_hooks_of_one_connection_share_a_client_per_loop(
    set_connection: SetConnection,
) -> None:
    set_connection({"host": "https://api.rack.example.org", "password": KEY})
    first, second = ConvoxHook(), ConvoxHook()
    client = await first.get_async_conn()
    assert isinstance(client, AsyncConvoxClient)
    assert await second.get_async_conn() is client
    assert await first.get_async_conn() is client
    assert shared_async_clients() == 1

    await first.aclose()
    assert not client._driver.http.is_closed
    await first.aclose()
    assert not client._driver.http.is_closed
    await second.aclose()
    assert client._driver.http.is_closed
    assert shared_async_clients() == 0


async def test_other_connection_ids_get_their_own_client(set_connection: SetConnection) -> None:
    set_connection({"host": "https://api.one.example.org", "password": KEY}, conn_id="convox_one")
    set_connection({"host": "https://api.two.example.org", "password": KEY}, conn_id="convox_two")
    async with ConvoxHook("convox_one") as one, ConvoxHook("convox_two") as two:
        first = await one.get_async_conn()
        second = await two.get_async_conn()
        assert first is not second
        assert second.config.base_url == "https://api.two.example.org"
        assert shared_async_clients() == 2
    assert first._driver.http.is_closed
    assert second._driver.http.is_closed


async def test_a_concurrently_running_loop_gets_its_own_client(
    set_connection: SetConnection,
) -> None:
    set_connection({"host": "https://api.rack.example.org", "password": KEY})
    here = ConvoxHook()
    client = await here.get_async_conn()
    seen: list[AsyncConvoxClient] = []

    async def elsewhere() -> None:
        async with ConvoxHook() as hook:
            seen.append(await hook.get_async_conn())
            seen.append(await ConvoxHook().get_async_conn())

    thread = threading.Thread(target=asyncio.run, args=(elsewhere(),))
    thread.start()
    await asyncio.to_thread(thread.join)
    assert seen[0] is seen[1]
    assert seen[0] is not client
    async with ConvoxHook() as again:
        assert await again.get_async_conn() is client
    await here.aclose()


def test_a_closed_loop_is_forgotten_and_never_reused(set_connection: SetConnection) -> None:
    set_connection({"host": "https://api.rack.example.org", "password": KEY})

    async def leave_open() -> AsyncConvoxClient:
        return await ConvoxHook().get_async_conn()

    first = asyncio.run(leave_open())
    assert shared_async_clients() == 0
    second = asyncio.run(leave_open())
    assert second is not first


async def test_changed_connection_gets_a_new_client(set_connection: SetConnection) -> None:
    set_connection({"host": "https://api.rack.example.org", "password": KEY})
    old_hook = ConvoxHook()
    old = await old_hook.get_async_conn()
    set_connection({"host": "https://api.rack.example.org", "password": KEY + "-rotated"})
    new_hook = ConvoxHook()
    new = await new_hook.get_async_conn()
    assert new is not old
    assert not old._driver.http.is_closed
    await old_hook.aclose()
    assert old._driver.http.is_closed
    assert not new._driver.http.is_closed
    await new_hook.aclose()


async def test_async_lookup_never_uses_the_blocking_one(
    set_connection: SetConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    def blocking(cls: type[BaseHook], conn_id: str) -> None:
        raise AssertionError("the async path called the blocking get_connection")

    monkeypatch.setattr(ConvoxHook, "get_connection", classmethod(blocking))
    set_connection({"host": "https://api.rack.example.org", "password": KEY})
    async with ConvoxHook() as hook:
        config = (await hook.get_async_conn()).config
    assert config.api_key == KEY


async def test_async_bad_connection_raises_the_same_error(set_connection: SetConnection) -> None:
    set_connection({"host": "console.convox.com", "password": KEY, "extra": {"rack": "a b"}})
    with pytest.raises(ConvoxConnectionConfigError, match=r"\(rack\)"):
        await ConvoxHook().get_async_conn()


async def test_shared_client_serves_concurrent_requests(
    set_connection: SetConnection, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        url="https://api.rack.example.org/system", json=SYSTEM, is_reusable=True
    )
    set_connection({"host": "https://api.rack.example.org", "password": KEY})
    hooks = [ConvoxHook() for _ in range(20)]
    clients = await asyncio.gather(*(hook.get_async_conn() for hook in hooks))
    assert len({id(client) for client in clients}) == 1
    answers = await asyncio.gather(*(client.api.get("/system") for client in clients))
    assert all(answer["name"] == "production" for answer in answers)
    for hook in hooks:
        await hook.aclose()
    assert shared_async_clients() == 0


# --- test_connection --------------------------------------------------------------------------


def test_connection_through_a_console(set_connection: SetConnection, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url="https://console.convox.com/system",
        match_headers={"Rack": "acme/production"},
        json=SYSTEM,
    )
    set_connection(
        {"host": "console.convox.com", "password": KEY, "extra": {"rack": "acme/production"}}
    )
    ok, message = ConvoxHook().test_connection()
    assert ok is True
    assert message == "Connected to rack production (version 3.24.9) through console.convox.com"
    (request,) = httpx_mock.get_requests()
    assert request.headers["Authorization"].startswith("Basic ")


def test_connection_does_not_retry(set_connection: SetConnection, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url="https://api.rack.example.org/system", status_code=503, text="busy")
    set_connection(
        {"host": "https://api.rack.example.org", "password": KEY, "extra": {"max_retries": 5}}
    )
    ok, message = ConvoxHook().test_connection()
    assert ok is False
    assert "503" in message
    assert "busy" in message
    assert len(httpx_mock.get_requests()) == 1


def test_connection_html_answer(set_connection: SetConnection, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url="https://console.convox.com/system",
        headers={"Content-Type": "text/html; charset=utf-8"},
        text="<html>login</html>",
    )
    set_connection({"host": "console.convox.com", "password": KEY})
    ok, message = ConvoxHook().test_connection()
    assert ok is False
    assert "HTML" in message
    assert "rack" in message


def test_connection_bad_input_is_reported_not_raised(set_connection: SetConnection) -> None:
    set_connection({"host": "http://rack.example.org", "password": KEY})
    ok, message = ConvoxHook().test_connection()
    assert ok is False
    assert message.startswith("Fix the field 'Console or rack API host' (host): ")
    assert KEY not in message


def test_connection_test_never_names_the_forms_transient_id(
    set_connection: SetConnection,
) -> None:
    """The UI's Test button runs on a copy under a random id: naming it would only confuse."""
    set_connection({"host": "http://rack.example.org", "password": KEY}, conn_id="h2RtelZt")
    ok, message = ConvoxHook(convox_conn_id="h2RtelZt").test_connection()
    assert ok is False
    assert "h2RtelZt" not in message
    assert "(host)" in message


def test_connection_missing_connection() -> None:
    ok, message = ConvoxHook(convox_conn_id="convox_nowhere").test_connection()
    assert ok is False
    assert "convox_nowhere" in message


def test_connection_unexpected_error_is_scrubbed(
    set_connection: SetConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    def exploding(self: ConvoxClient, config: Any) -> None:
        raise RuntimeError(f"boom with {config.api_key}")

    monkeypatch.setattr(ConvoxClient, "__init__", exploding)
    set_connection({"host": "https://api.rack.example.org", "password": KEY})
    ok, message = ConvoxHook().test_connection()
    assert ok is False
    assert message == "RuntimeError: boom with ***"


def test_connection_closed_port(set_connection: SetConnection, closed_port: int) -> None:
    set_connection({"host": "http://127.0.0.1", "port": closed_port, "password": KEY})
    ok, message = ConvoxHook().test_connection()
    assert ok is False
    assert message.startswith("Could not reach the rack")
    assert f"127.0.0.1:{closed_port}" in message
    assert KEY not in message


# --- against the emulator ---------------------------------------------------------------------

RACK_KEY = "rack-password-0123456789abcdefghij"


@pytest.fixture
def rack(convox_rack_factory: Callable[..., Any]) -> Any:
    return convox_rack_factory(password=RACK_KEY, rack_name="staging", version="3.24.7")


def test_connection_to_the_emulator(set_connection: SetConnection, rack: Any) -> None:
    set_connection({"host": rack.url, "password": RACK_KEY})
    assert ConvoxHook().test_connection() == (True, "Connected to rack staging (version 3.24.7)")
    assert rack.requests.count("GET", "/system") == 1


def test_connection_to_the_emulator_by_rack_url(set_connection: SetConnection, rack: Any) -> None:
    set_connection({"host": rack.rack_url})
    assert ConvoxHook().test_connection()[0] is True


def test_connection_to_the_emulator_with_a_wrong_key(
    set_connection: SetConnection, rack: Any
) -> None:
    wrong = "dk-wrong-key-for-this-rack-000"
    set_connection({"host": rack.url, "password": wrong})
    ok, message = ConvoxHook().test_connection()
    assert ok is False
    assert message.startswith("Authentication failed")
    assert "401" in message
    assert wrong not in message
    assert RACK_KEY not in message


def test_connection_through_an_emulated_console(
    set_connection: SetConnection, convox_rack_factory: Callable[..., Any]
) -> None:
    console = convox_rack_factory(
        password=RACK_KEY, console="acme/staging", session="challenge", rack_name="staging"
    )
    set_connection({"host": console.url, "password": RACK_KEY, "extra": {"rack": "acme/staging"}})
    ok, message = ConvoxHook().test_connection()
    assert ok is True
    assert message.startswith("Connected to rack staging (version ")
    assert message.endswith(f" through 127.0.0.1:{console.port}")


def test_connection_to_a_console_without_a_rack(
    set_connection: SetConnection, convox_rack_factory: Callable[..., Any]
) -> None:
    console = convox_rack_factory(password=RACK_KEY, console="acme/staging")
    set_connection({"host": console.url, "password": RACK_KEY})
    ok, message = ConvoxHook().test_connection()
    assert ok is False
    assert "HTML" in message
    assert "set the rack" in message


def test_connection_to_a_console_asking_for_a_hardware_key(
    set_connection: SetConnection, convox_rack_factory: Callable[..., Any]
) -> None:
    console = convox_rack_factory(password=RACK_KEY, console="acme/staging", session="token")
    set_connection({"host": console.url, "password": RACK_KEY, "extra": {"rack": "acme/staging"}})
    ok, message = ConvoxHook().test_connection()
    assert ok is False
    assert "deploy key" in message
    assert RACK_KEY not in message


def test_sync_client_talks_to_the_emulator(set_connection: SetConnection, rack: Any) -> None:
    set_connection({"host": rack.url, "password": RACK_KEY})
    with ConvoxHook() as hook:
        assert hook.get_conn().api.get("/system")["name"] == "staging"


async def test_shared_async_client_talks_to_the_emulator(
    set_connection: SetConnection, rack: Any
) -> None:
    set_connection({"host": rack.url, "password": RACK_KEY})
    async with ConvoxHook() as one, ConvoxHook() as two:
        first, second = await one.get_async_conn(), await two.get_async_conn()
        assert first is second
        answers = await asyncio.gather(*(client.api.get("/system") for client in (first, second)))
    assert [answer["name"] for answer in answers] == ["staging", "staging"]


def _eager_imports(module: str) -> set[str]:
    """``convox_provider`` modules imported when ``module`` is (``TYPE_CHECKING`` blocks aside)."""
    spec = importlib.util.find_spec(module)
    assert spec is not None
    assert spec.origin is not None
    found: set[str] = set()
    pending: list[ast.AST] = list(ast.parse(Path(spec.origin).read_text()).body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            pending.extend(node.orelse)
        elif isinstance(node, (ast.If, ast.Try)):
            pending.extend(ast.iter_child_nodes(node))
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("convox_provider")}


def test_importing_the_hook_defers_the_client_classes() -> None:
    seen: set[str] = set()
    pending = ["convox_provider.hooks.convox"]
    while pending:
        module = pending.pop()
        if module not in seen:
            seen.add(module)
            pending.extend(_eager_imports(module))
    assert "convox_provider.hooks.convox" in seen
    assert "convox_provider.client.config" in seen
    assert "convox_provider.client.client" not in seen


# --- the audit actor (Convox-Actor) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "expected"),
    [({}, None), ({"actor": ""}, None), ({"actor": "off"}, None), ({"actor": "ci-bot"}, "ci-bot")],
)
def test_the_actor_outside_a_task(
    set_connection: SetConnection, extra: dict[str, Any], expected: str | None
) -> None:
    """Outside a task there is no task to name: only a fixed name is sent."""
    set_connection({"host": "https://api.rack.example", "password": KEY, "extra": extra})
    hook = ConvoxHook()
    assert hook.task_actor() == expected
    assert hook.get_conn().config.actor == expected
    assert (hook.get_conn().config.headers().get("Convox-Actor")) == expected
    hook.close()


def test_a_fixed_actor_is_in_the_shared_config(set_connection: SetConnection) -> None:
    set_connection({"host": "https://api.rack.example", "password": KEY, "extra": {"actor": "ci"}})
    assert ConvoxHook().get_config().actor == "ci"


def test_a_bad_actor_never_shows_the_key(set_connection: SetConnection) -> None:
    set_connection(
        {"host": "https://api.rack.example", "password": KEY, "extra": {"actor": f"x{KEY}"}}
    )
    _, message = _expect_config_error("actor")
    assert KEY not in message
    assert "must not contain the key" in message
