"""Connection settings: validation, headers, TLS, timeouts, environment and CLI settings files."""

from __future__ import annotations

import base64
import json
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest

from convox_provider.client.client import AsyncConvoxClient, ConvoxClient
from convox_provider.client.config import ClientConfig, _default_cli_dirs
from convox_provider.client.errors import ConvoxConfigError
from convox_provider.client.retry import RetryConfig

KEY = "s3cretKEY0123456789"
CONSOLE_TOKEN = "consoleTOKENabcdef"
RACK_PASSWORD = "rackPASSWORD98765"
ALL_SECRETS = (KEY, CONSOLE_TOKEN, RACK_PASSWORD)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# -- create(): what is refused -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "key", "options", "message"),
    [
        ("", KEY, {}, "host is empty"),
        ("   ", KEY, {}, "host is empty"),
        ("https://", KEY, {}, "no host name"),
        ("ftp://rack.example", KEY, {}, "scheme 'ftp'"),
        ("rack.example", "", {}, "key is empty"),
        ("rack.example", "   ", {}, "key is empty"),
        ("rack.example", None, {}, "key is empty"),
        ("rack.example", KEY + "\n", {}, "whitespace or control"),
        ("rack.example", " " + KEY, {}, "whitespace or control"),
        ("rack.example", "ab\x00cd", {}, "whitespace or control"),
        ("http://rack.example", KEY, {}, "Refusing plain http:// for rack.example"),
        ("http://10.0.0.5:5443", KEY, {}, "Refusing plain http://"),
        ("https://rack.example/apps", KEY, {}, "must not contain a path"),
        ("https://rack.example?x=1", KEY, {}, "must not contain a path"),
        ("https://rack.example:99999", KEY, {}, "invalid port"),
        ("https://rack.example:abc", KEY, {}, "invalid port"),
        ("https://rack example.org", KEY, {}, "whitespace or control"),
        ("rack.example", KEY, {"rack": "my org/rack"}, "without whitespace"),
        ("rack.example", KEY, {"rack": "  "}, "non-empty"),
        ("rack.example", KEY, {"rack": "org/räck"}, "without whitespace"),
        ("rack.example", KEY, {"username": "con:vox"}, "must not contain ':'"),
        ("rack.example", KEY, {"session": "sess\nion"}, "session must be printable ASCII"),
        ("rack.example", KEY, {"actor": "bob\r\n"}, "actor must be printable ASCII"),
        ("rack.example", KEY, {"timeout": 0}, "timeout must be a positive"),
        ("rack.example", KEY, {"timeout": -1.0}, "timeout must be a positive"),
        ("rack.example", KEY, {"verify": "/nonexistent/ca.pem"}, "CA bundle /nonexistent"),
        ("rack.example", KEY, {"verify": 3}, "verify must be a bool"),
    ],
)
def test_create_refuses(host: str, key: str | None, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConvoxConfigError, match=message) as info:
        ClientConfig.create(host, key, **options)
    assert KEY not in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("host", "base_url"),
    [
        ("rack.example", "https://rack.example"),
        ("  https://api.rack.example/  ", "https://api.rack.example"),
        ("api.rack.example:5443", "https://api.rack.example:5443"),
        ("HTTPS://API.Rack.Example", "https://api.rack.example"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://localhost:5443", "http://localhost:5443"),
        ("http://[::1]:5443", "http://[::1]:5443"),
    ],
)
def test_create_normalises_the_host(host: str, base_url: str) -> None:
    config = ClientConfig.create(host, KEY)
    assert config.base_url == base_url
    assert config.api_key == KEY


def test_plain_http_elsewhere_needs_an_explicit_opt_in() -> None:
    config = ClientConfig.create("http://10.0.0.5:5443", KEY, allow_insecure_http=True)
    assert config.base_url == "http://10.0.0.5:5443"


@pytest.mark.parametrize(
    ("url", "username", "key"),
    [
        (f"https://convox:{RACK_PASSWORD}@api.rack.example", "convox", RACK_PASSWORD),
        (
            "https://jwt:eyJhbGc.eyJyb2xlIjoiciJ9.c2ln@api.rack.example",
            "jwt",
            "eyJhbGc.eyJyb2xlIjoiciJ9.c2ln",
        ),
        ("https://convox:pa%2Fss%40word@api.rack.example", "convox", "pa/ss@word"),
    ],
)
def test_rack_url_user_info_becomes_the_credentials(url: str, username: str, key: str) -> None:
    config = ClientConfig.create(url)
    assert (config.base_url, config.username, config.api_key) == (
        "https://api.rack.example",
        username,
        key,
    )
    assert key not in repr(config)


def test_an_explicit_key_wins_over_the_url_password() -> None:
    config = ClientConfig.create(f"https://convox:{RACK_PASSWORD}@api.rack.example", KEY)
    assert config.api_key == KEY


# -- headers -----------------------------------------------------------------------------------


def test_direct_rack_headers() -> None:
    headers = ClientConfig.create("api.rack.example", KEY).headers()
    assert headers["Authorization"] == basic("convox", KEY)
    assert headers["Accept"] == "application/json"
    assert headers["User-Agent"].startswith("airflow-provider-convox/")
    assert "Rack" not in headers
    assert "Version" not in headers


def test_console_headers_look_like_the_go_cli() -> None:
    headers = ClientConfig.create("console.convox.com", KEY, rack="acme/production").headers()
    assert headers["Rack"] == "acme/production"
    assert headers["User-Agent"] == "convox.go/dev"
    assert headers["Version"] == "dev"
    assert headers["Accept"] == "application/json"


def test_jwt_user_and_actor_headers() -> None:
    headers = ClientConfig.create(
        "api.rack.example", KEY, username="jwt", actor="airflow"
    ).headers()
    assert headers["Authorization"] == basic("jwt", KEY)
    assert headers["Convox-Actor"] == "airflow"


def test_repr_hides_the_key_and_the_session() -> None:
    config = ClientConfig.create("console.convox.com", KEY, rack="acme/prod", session="sess-42")
    text = repr(config) + str(config)
    assert KEY not in text
    assert "sess-42" not in text
    assert "acme/prod" in text


# -- TLS and timeouts --------------------------------------------------------------------------


def test_tls_verification_is_on_by_default() -> None:
    context = ClientConfig.create("rack.example", KEY).ssl_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


def test_tls_verification_can_be_switched_off() -> None:
    context = ClientConfig.create("rack.example", KEY, verify=False).ssl_context()
    assert context.verify_mode == ssl.CERT_NONE
    assert not context.check_hostname


def test_an_ssl_context_is_used_as_given() -> None:
    mine = ssl.create_default_context()
    assert ClientConfig.create("rack.example", KEY, verify=mine).ssl_context() is mine


def test_a_ca_file_that_is_not_a_certificate_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")
    config = ClientConfig.create("rack.example", KEY, verify=bogus)
    assert config.verify == str(bogus)
    with pytest.raises(ConvoxConfigError, match="Cannot load the CA certificates from"):
        config.ssl_context()


@pytest.mark.parametrize(
    ("configured", "call", "expected"),
    [
        (30.0, 30.0, {"connect": 30.0, "read": 30.0, "write": 30.0, "pool": 30.0}),
        (30.0, 3600.0, {"connect": 30.0, "read": 3600.0, "write": 3600.0, "pool": 3600.0}),
        (30.0, 5.0, {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}),
        (30.0, None, {"connect": 30.0, "read": None, "write": None, "pool": None}),
        (None, None, {"connect": None, "read": None, "write": None, "pool": None}),
    ],
)
def test_call_timeouts_never_lengthen_connecting(
    configured: float | None, call: float | None, expected: dict[str, float | None]
) -> None:
    config = ClientConfig.create("rack.example", KEY, timeout=configured)
    assert config.httpx_timeout(call).as_dict() == expected


# -- from_env ----------------------------------------------------------------------------------


def test_from_env_console() -> None:
    config = ClientConfig.from_env(
        {"CONVOX_HOST": "console.convox.com", "CONVOX_PASSWORD": KEY, "CONVOX_RACK": "acme/prod"}
    )
    assert (config.base_url, config.rack, config.api_key) == (
        "https://console.convox.com",
        "acme/prod",
        KEY,
    )


def test_from_env_rack_url_is_a_direct_rack() -> None:
    config = ClientConfig.from_env(
        {"RACK_URL": f"https://convox:{RACK_PASSWORD}@api.rack.example", "CONVOX_RACK": "x/y"}
    )
    assert (config.base_url, config.rack, config.api_key) == (
        "https://api.rack.example",
        None,
        RACK_PASSWORD,
    )


def test_from_env_without_a_password_says_what_to_export() -> None:
    with pytest.raises(ConvoxConfigError, match="CONVOX_PASSWORD is not set"):
        ClientConfig.from_env({"CONVOX_HOST": "console.convox.com"})


def test_from_env_passes_options_on() -> None:
    retry = RetryConfig(max_retries=7)
    config = ClientConfig.from_env({"RACK_URL": f"https://convox:{KEY}@r.example"}, retry=retry)
    assert config.retry is retry


# -- from_cli_config ---------------------------------------------------------------------------


def write(directory: Path, files: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, value in files.items():
        text = value if isinstance(value, str) else json.dumps(value, indent=2)
        (directory / name).write_text(text)
    return directory


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def env_for(home: Path, **extra: str) -> dict[str, str]:
    return {"HOME": str(home), **extra}


# The layouts the CLIs write (convox/convox pkg/cli/login.go + pkg/rack/rack.go; convox/rack
# pkg/cli/login.go + pkg/cli/switch.go).
V3_CONSOLE = {
    "auth": {"console.convox.com": CONSOLE_TOKEN, "api.rack.example": RACK_PASSWORD},
    "console": "console.convox.com\n",
    "current": {"name": "acme/production", "type": "console"},
    "session": {"console.convox.com": "sess-v3"},
}
V2_CONSOLE = {
    "auth": {"console.convox.com": CONSOLE_TOKEN},
    "host": "console.convox.com",
    "racks": {"console.convox.com": "acme/legacy"},
    "session": {"console.convox.com": "sess-v2"},
    "id": "user@example.com",
}
V2_DIRECT = {"auth": {"api.rack.example": RACK_PASSWORD}, "host": "api.rack.example"}


@pytest.mark.parametrize(
    ("where", "files", "expected"),
    [
        (
            ".config/convox",
            V3_CONSOLE,
            ("https://console.convox.com", "acme/production", CONSOLE_TOKEN, "sess-v3"),
        ),
        (
            ".config/convox2",
            V2_CONSOLE,
            ("https://console.convox.com", "acme/legacy", CONSOLE_TOKEN, "sess-v2"),
        ),
        (
            ".convox",
            V2_CONSOLE,
            ("https://console.convox.com", "acme/legacy", CONSOLE_TOKEN, "sess-v2"),
        ),
        (".convox", V2_DIRECT, ("https://api.rack.example", None, RACK_PASSWORD, None)),
        (
            ".config/convox",
            {**V3_CONSOLE, "rack": "acme/staging"},
            ("https://console.convox.com", "acme/staging", CONSOLE_TOKEN, "sess-v3"),
        ),
    ],
)
def test_cli_layouts(
    home: Path, where: str, files: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    write(home / where, files)
    config = ClientConfig.from_cli_config(environ=env_for(home))
    assert (config.base_url, config.rack, config.api_key, config.session) == expected
    assert config.console == (expected[1] is not None)


def test_v3_is_preferred_when_both_clis_are_logged_in(home: Path) -> None:
    write(home / ".config/convox", V3_CONSOLE)
    write(home / ".convox", V2_CONSOLE)
    assert ClientConfig.from_cli_config(environ=env_for(home)).rack == "acme/production"


def test_the_directory_that_knows_the_host_wins(home: Path) -> None:
    write(home / ".config/convox", V3_CONSOLE)
    write(home / ".convox", {"auth": {"old.rack.example": KEY}})
    config = ClientConfig.from_cli_config(host="old.rack.example", environ=env_for(home))
    assert (config.base_url, config.api_key, config.rack) == ("https://old.rack.example", KEY, None)


def test_xdg_config_home_and_convox_config_are_honoured(tmp_path: Path, home: Path) -> None:
    write(tmp_path / "xdg" / "convox", V3_CONSOLE)
    env = env_for(home, XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    assert ClientConfig.from_cli_config(environ=env).rack == "acme/production"

    write(tmp_path / "elsewhere", V2_DIRECT)
    env["CONVOX_CONFIG"] = str(tmp_path / "elsewhere")
    assert ClientConfig.from_cli_config(environ=env).base_url == "https://api.rack.example"


def test_config_dir_argument(tmp_path: Path, home: Path) -> None:
    directory = write(tmp_path / "cli", V2_DIRECT)
    config = ClientConfig.from_cli_config(config_dir=directory, environ=env_for(home))
    assert config.api_key == RACK_PASSWORD


def test_arguments_and_environment_override_the_files(home: Path) -> None:
    write(home / ".config/convox", V3_CONSOLE)
    env = env_for(home, CONVOX_RACK="acme/from-env")
    assert ClientConfig.from_cli_config(environ=env).rack == "acme/from-env"
    assert ClientConfig.from_cli_config(rack="acme/arg", environ=env).rack == "acme/arg"

    env = env_for(home, CONVOX_HOST="api.rack.example")
    config = ClientConfig.from_cli_config(environ=env)
    assert (config.base_url, config.api_key) == ("https://api.rack.example", RACK_PASSWORD)

    env = env_for(home, CONVOX_PASSWORD=KEY)
    assert ClientConfig.from_cli_config(environ=env).api_key == KEY


def test_rack_url_selects_a_direct_rack_like_the_cli(home: Path) -> None:
    write(home / ".config/convox", V3_CONSOLE)
    env = env_for(home, RACK_URL=f"https://convox:{KEY}@api.other.example")
    config = ClientConfig.from_cli_config(environ=env)
    assert (config.base_url, config.rack, config.api_key) == (
        "https://api.other.example",
        None,
        KEY,
    )


def test_password_from_the_environment_needs_no_files(home: Path) -> None:
    env = env_for(home, CONVOX_HOST="api.rack.example", CONVOX_PASSWORD=KEY)
    config = ClientConfig.from_cli_config(environ=env)
    assert (config.base_url, config.api_key) == ("https://api.rack.example", KEY)


def test_dev_http_like_the_cli(home: Path) -> None:
    write(home / ".config/convox", {"auth": {"127.0.0.1:5080": KEY}, "console": "127.0.0.1:5080"})
    env = env_for(home, X_DEV_ALLOW_HTTP="true", CONVOX_RACK="dev/rack")
    assert ClientConfig.from_cli_config(environ=env).base_url == "http://127.0.0.1:5080"
    config = ClientConfig.from_cli_config(host="http://127.0.0.1:5080", environ=env_for(home))
    assert (config.base_url, config.api_key) == ("http://127.0.0.1:5080", KEY)


def test_options_reach_create(home: Path) -> None:
    write(home / ".convox", V2_DIRECT)
    config = ClientConfig.from_cli_config(environ=env_for(home), verify=False, timeout=5.0)
    assert (config.verify, config.timeout) == (False, 5.0)


def test_early_v3_switch_map(home: Path) -> None:
    write(
        home / ".config/convox",
        {"auth": {"c.example": KEY}, "host": "c.example", "switch": {"c.example": "o/r"}},
    )
    assert ClientConfig.from_cli_config(environ=env_for(home)).rack == "o/r"


def test_no_login_anywhere_says_where_it_looked(home: Path) -> None:
    with pytest.raises(ConvoxConfigError) as info:
        ClientConfig.from_cli_config(environ=env_for(home))
    text = str(info.value)
    for where in (".config/convox/auth", ".config/convox2/auth", ".convox/auth"):
        assert str(home / where) in text
    assert "convox login" in text


@pytest.mark.parametrize(
    ("auth_text", "position"),
    [
        ('{"console.convox.com": "' + CONSOLE_TOKEN + '",}', "line 1 column"),
        ('{\n  "console.convox.com": "' + CONSOLE_TOKEN + '"\n  "x": "' + KEY + '"\n}', "line 3"),
        ('{"console.convox.com": "' + CONSOLE_TOKEN, "line 1 column"),
    ],
)
def test_malformed_auth_file_names_the_file_and_position_but_no_password(
    home: Path, auth_text: str, position: str
) -> None:
    directory = write(home / ".config/convox", {"auth": auth_text, "console": "console.convox.com"})
    with pytest.raises(ConvoxConfigError, match="is not valid JSON") as info:
        ClientConfig.from_cli_config(environ=env_for(home))
    text = str(info.value)
    assert str(directory / "auth") in text
    assert position in text
    assert info.value.__cause__ is None
    assert info.value.__context__ is None  # the JSON error holds the whole file in .doc
    for secret in ALL_SECRETS:
        assert secret not in text


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"auth": ["console.convox.com", CONSOLE_TOKEN]}, "not a JSON object of strings"),
        ({"auth": {"console.convox.com": 42}}, "not a JSON object of strings"),
        ({"auth": {"console.convox.com": CONSOLE_TOKEN}, "session": "{oops"}, "session is not"),
        ({"auth": {"console.convox.com": CONSOLE_TOKEN}, "current": "[1"}, "current is not"),
    ],
)
def test_other_malformed_files(home: Path, files: dict[str, Any], message: str) -> None:
    write(home / ".config/convox", {"console": "console.convox.com", "rack": "a/b", **files})
    if "current" in files:
        (home / ".config/convox" / "rack").unlink()
    with pytest.raises(ConvoxConfigError, match=message) as info:
        ClientConfig.from_cli_config(environ=env_for(home))
    assert CONSOLE_TOKEN not in str(info.value)


def test_host_missing_from_auth_lists_the_hosts_it_has(home: Path) -> None:
    write(home / ".config/convox", V3_CONSOLE)
    with pytest.raises(ConvoxConfigError) as info:
        ClientConfig.from_cli_config(host="api.unknown.example", environ=env_for(home))
    text = str(info.value)
    assert "no password for 'api.unknown.example'" in text
    assert "api.rack.example, console.convox.com" in text
    assert "convox login api.unknown.example" in text
    for secret in ALL_SECRETS:
        assert secret not in text


def test_empty_password(home: Path) -> None:
    write(home / ".convox", {"auth": {"api.rack.example": "  "}, "host": "api.rack.example"})
    with pytest.raises(ConvoxConfigError, match=r"empty password for 'api\.rack\.example'"):
        ClientConfig.from_cli_config(environ=env_for(home))


def test_no_current_host(home: Path) -> None:
    write(home / ".config/convox", {"auth": {"a.example": KEY, "b.example": KEY}})
    with pytest.raises(ConvoxConfigError, match="no current host") as info:
        ClientConfig.from_cli_config(environ=env_for(home))
    assert "has: a.example, b.example" in str(info.value)
    assert KEY not in str(info.value)


def test_console_without_a_rack_says_how_to_pick_one(home: Path) -> None:
    write(home / ".config/convox", {"auth": V3_CONSOLE["auth"], "console": "console.convox.com"})
    with pytest.raises(ConvoxConfigError, match="No rack selected for the console"):
        ClientConfig.from_cli_config(environ=env_for(home))


def test_terraform_current_rack_is_explained(home: Path) -> None:
    write(
        home / ".config/convox",
        {
            "auth": V3_CONSOLE["auth"],
            "console": "console.convox.com",
            "current": {"name": "dev", "type": "terraform"},
        },
    )
    with pytest.raises(ConvoxConfigError, match=r"terraform rack .* RACK_URL"):
        ClientConfig.from_cli_config(environ=env_for(home))


@pytest.mark.parametrize(
    ("platform", "env", "first"),
    [
        ("linux", {"HOME": "/h"}, "/h/.config/convox"),
        ("linux", {"HOME": "/h", "XDG_CONFIG_HOME": "/x"}, "/x/convox"),
        ("darwin", {"HOME": "/h"}, "/h/Library/Preferences/convox"),
        (
            "win32",
            {"USERPROFILE": "C:/u", "LOCALAPPDATA": "C:/u/AppData/Local"},
            "C:/u/AppData/Local/convox",
        ),
    ],
)
def test_default_directories_per_platform(platform: str, env: dict[str, str], first: str) -> None:
    dirs = _default_cli_dirs(env, platform)
    assert [d.as_posix() for d in dirs[:1]] == [first]
    assert dirs[1].name == "convox2"
    assert dirs[2].name == ".convox"


@pytest.mark.parametrize("cls", [ConvoxClient, AsyncConvoxClient])
async def test_clients_from_cli_config(home: Path, cls: type[Any]) -> None:
    write(home / ".convox", V2_DIRECT)
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    client = cls.from_cli_config(environ=env_for(home), transport=httpx.MockTransport(answer))
    result = client.api.get("/apps")
    assert (await result if cls is AsyncConvoxClient else result) == []
    assert seen[0].headers["Authorization"] == basic("convox", RACK_PASSWORD)
    assert RACK_PASSWORD not in repr(client)
    if cls is AsyncConvoxClient:
        await client.aclose()
    else:
        client.close()
