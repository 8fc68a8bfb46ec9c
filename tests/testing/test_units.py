"""Server rules that need no network: env parsing, Go formats, manifests, scripts."""

from __future__ import annotations

import re

import pytest

from convox_provider.testing import CommandResult, Invocation, RackError, Scripts
from convox_provider.testing.encoding import (
    format_time,
    go_shell_join,
    parse_duration_ns,
    parse_query,
    render_error_json,
    render_json,
    shell_split,
)
from convox_provider.testing.environment import env_diff, parse_env
from convox_provider.testing.manifest import ManifestError, load_manifest, parse_yaml
from convox_provider.testing.scripts import run_builtin


def test_parse_env_follows_the_server() -> None:
    text = " KEY = spaced value \n#HASH=1\nnoequals\n=empty\nDUP=1\nDUP=2\nCRLF=x\r\nEQ=a=b"
    assert parse_env(text) == {
        "KEY": " spaced value ",
        "#HASH": "1",
        "DUP": "2",
        "CRLF": "x",
        "EQ": "a=b",
    }
    with pytest.raises(RackError, match="token too long"):
        parse_env("A=" + "x" * 70_000)


def test_env_diff_description() -> None:
    assert env_diff("A=1\nB=2\nC=3", "A=1\nB=9\nD=4\nE=5") == "add:D add:E change:B remove:C"
    assert env_diff("A=1", "A=1") == ""


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("90s", 90 * 10**9),
        ("1h30m", 5400 * 10**9),
        ("500ms", 5 * 10**8),
        ("-1h", -3600 * 10**9),
        ("0", 0),
        ("2m0s", 120 * 10**9),
        ("1.5s", 15 * 10**8),
    ],
)
def test_go_durations(text: str, ns: int) -> None:
    assert parse_duration_ns(text) == ns


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5", 'time: missing unit in duration "5"'),
        ("abc", 'time: invalid duration "abc"'),
        ("5x", 'time: unknown unit "x" in duration "5x"'),
        ("", 'time: invalid duration ""'),
    ],
)
def test_go_duration_errors(text: str, message: str) -> None:
    with pytest.raises(RackError) as caught:
        parse_duration_ns(text)
    assert (caught.value.status, caught.value.message) == (500, message)


def test_times_and_json() -> None:
    assert format_time(None) == "0001-01-01T00:00:00Z"
    assert format_time(1_768_487_465_447_120_000) == "2026-01-15T14:31:05.44712Z"
    assert format_time(1_768_487_465_000_000_000) == "2026-01-15T14:31:05Z"
    assert render_json({"a": [], "b": {}, "c": 1.0, "d": "<&>"}) == (
        b'{\n  "a": [],\n  "b": {},\n  "c": 1,\n  "d": "\\u003c\\u0026\\u003e"\n}\n'
    )
    assert render_error_json("app not found: x") == b'{"error":"app not found: x"}\n'


def test_shell_words() -> None:
    assert go_shell_join(["sh", "-c", "echo hi"]) == "sh -c 'echo hi'"
    assert go_shell_join(["it's here"]) == "'it'\\''s here'"
    assert go_shell_join(["a$b", ""]) == "a\\$b ''"
    assert shell_split("sh -c 'echo a; echo b'") == ["sh", "-c", "echo a; echo b"]
    with pytest.raises(RackError, match="Unterminated single-quoted string"):
        shell_split("echo 'open")


def test_query_parsing_matches_go() -> None:
    assert parse_query("a=1&a=2&b=x+y&c=%2F") == ({"a": ["1", "2"], "b": ["x y"], "c": ["/"]}, None)
    assert parse_query("a=1;b=2")[1] == "invalid semicolon separator in query"
    assert parse_query("a=%zz&b=1") == ({"b": ["1"]}, 'invalid URL escape "%zz"')


def test_manifest_subset() -> None:
    manifest = load_manifest(
        """
environment:
  - SHARED
services:
  api:
    image: nginx:1.25   # comment
    port: https:8443
    internal: true
    scale:
      count: 1-3
      cpu: 512
  web:
    build: .
    port: 3000
    command: ["bin/web", "--port", "3000"]
    environment: [DATABASE_URL, LOG_LEVEL=info]
"""
    )
    api, web = manifest.services
    assert (api.port, api.port_scheme, api.internal, api.count_min, api.count_max, api.cpu) == (
        8443,
        "https",
        True,
        1,
        3,
        512,
    )
    assert (web.command, web.environment, web.memory) == (
        "bin/web --port 3000",
        ("DATABASE_URL", "LOG_LEVEL=info"),
        512,
    )
    with pytest.raises(RackError, match="required env: DATABASE_URL, SHARED"):
        manifest.service_environment("web", {})
    assert manifest.service_environment("web", {"SHARED": "1", "DATABASE_URL": "pg"}) == {
        "SHARED": "1",
        "DATABASE_URL": "pg",
        "LOG_LEVEL": "info",
    }


def test_yaml_block_scalars_and_errors() -> None:
    assert parse_yaml("a: |\n  one\n  two\nb: >-\n  x\n  y\n") == {"a": "one\ntwo\n", "b": "x y"}
    with pytest.raises(ManifestError, match=r"yaml: line \d+"):
        parse_yaml("services:\n  web:\n    port: 1\n   bad: indent\n")


def test_builtin_shell_subset() -> None:
    result = run_builtin(
        ["sh", "-c", "echo a && false || echo b; sleep 0.5; echo $NAME; exit 4"], {"NAME": "env"}
    )
    assert result.chunks == ((0.0, b"a\n"), (0.0, b"b\n"), (0.5, b"env\n"))
    assert (result.exit_code, result.duration) == (4, 0.5)
    assert run_builtin(["false"], {}).exit_code == 1
    assert run_builtin(["exit", "300"], {}).exit_code == 44
    unknown = run_builtin(["rake", "db:migrate"], {})
    assert unknown.timeline() == ((0.0, b"rake: emulated command (no script registered)\n"),)
    assert unknown.exit_code == 0


def test_builtin_shell_reads_quotes_alike_in_lists_and_pipelines() -> None:
    # An escaped quote inside double quotes does not close them, for `|` as for `;` and `&&`.
    result = run_builtin(["sh", "-c", 'echo "a\\"|b" | cat; echo "c;d" && echo e'], {})
    assert result.chunks == ((0.0, b'a"|b\n'), (0.0, b"c;d\n"), (0.0, b"e\n"))
    assert result.exit_code == 0


def test_scripts_match_exact_regex_and_times() -> None:
    scripts = Scripts()
    scripts.on_command(re.compile(r"bin/rake .*"), output="rake\n")
    scripts.on_command("bin/rake db:migrate", exit_code=9, times=1)

    def call(command: str) -> CommandResult:
        return scripts.resolve(
            Invocation(command, tuple(command.split()), "app", "web", "web-1", "exec")
        )

    assert call("bin/rake db:migrate").exit_code == 9
    assert call("bin/rake db:migrate").output == b"rake\n"
    assert call("bin/other").output == b""
    assert call("bin/other").timeline()[0][1].startswith(b"bin/other: emulated")
