"""Request encoding (docs/rack-api.md §2) and the rack's environment format (§5.3, §8 item 6)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode

import httpx
import pytest

from convox_provider.client.encoding import (
    ENV_LINE_MAX_BYTES,
    Fields,
    encode_bool,
    encode_build_args,
    encode_duration,
    encode_int,
    encode_list,
    encode_map,
    encode_time,
    object_key,
    parse_env,
    parse_env_assignments,
    render_env,
    segment,
    validate_app_name,
    validate_env,
    validate_env_key,
    validate_env_value,
)
from convox_provider.client.errors import ConvoxInputError
from convox_provider.client.status import BuildStatus

SECRET = "s3cr3t-hunter2"


# --- scalars ----------------------------------------------------------------------------------


def test_encode_bool() -> None:
    assert encode_bool(True) == "true"
    assert encode_bool(False) == "false"


@pytest.mark.parametrize("value", [1, 0, "true", None])
def test_encode_bool_rejects_non_bool(value: Any) -> None:
    with pytest.raises(ConvoxInputError, match="expected a bool"):
        encode_bool(value)


@pytest.mark.parametrize(
    ("value", "wire"), [(0, "0"), (30, "30"), (-5, "-5"), (2**63 - 1, "9223372036854775807")]
)
def test_encode_int(value: int, wire: str) -> None:
    assert encode_int(value) == wire


@pytest.mark.parametrize("value", [True, False, 1.0, "1", None, Decimal(1)])
def test_encode_int_rejects_bool_and_non_int(value: Any) -> None:
    with pytest.raises(ConvoxInputError, match="invalid limit: expected an int"):
        encode_int(value, name="limit")


def test_encode_int_rejects_values_beyond_int64() -> None:
    with pytest.raises(ConvoxInputError, match="64-bit"):
        encode_int(2**63)


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (90, "1m30s"),
        (0.5, "500ms"),
        (0, "0s"),
        (0.0, "0s"),
        (1, "1s"),
        (1.5, "1.5s"),
        (0.1, "100ms"),
        (120, "2m0s"),
        (3600, "1h0m0s"),
        (5400, "1h30m0s"),
        (86400, "24h0m0s"),
        (-90, "-1m30s"),
        (1e-9, "1ns"),
        (0.000001, "1us"),
        (0.0015, "1.5ms"),
        (61.25, "1m1.25s"),
        (timedelta(minutes=2), "2m0s"),
        (timedelta(microseconds=1500), "1.5ms"),
        (timedelta(days=1, seconds=1), "24h0m1s"),
        (timedelta(seconds=-1), "-1s"),
        (timedelta(0), "0s"),
    ],
)
def test_encode_duration_numbers_and_timedeltas_like_go(value: Any, wire: str) -> None:
    assert encode_duration(value) == wire


@pytest.mark.parametrize(
    "text",
    [
        "1h30m",
        "500ms",
        "-1h",
        "+5s",
        "2m0s",
        "1.5h",
        ".5s",
        "1.s",
        "0",
        "-0",
        "0s",
        "90s",
        "1ns",
        "1us",
        "1\u00b5s",
        "1\u03bcs",
        "1h2m3s4ms5us6ns",
        "2562047h",
        "-2562047h47m16.854775808s",
    ],
)
def test_encode_duration_passes_valid_go_strings_through(text: str) -> None:
    assert encode_duration(text) == text


def test_encode_duration_rejects_bare_number_strings_with_the_reason() -> None:
    with pytest.raises(ConvoxInputError, match="needs a unit") as info:
        encode_duration("90", name="since")
    assert "invalid since '90'" in str(info.value)
    with pytest.raises(ConvoxInputError, match="needs a unit"):
        encode_duration("1.5")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "h",
        ".",
        ".s",
        "00",
        "1d",
        "1H",
        "1hh",
        "1 h",
        " 1h",
        "1h ",
        "1h\n",
        "--1s",
        "1s-",
        "\uff11s",
        "2562048h",
        "2562047h47m16.854775808s",
    ],
)
def test_encode_duration_rejects_invalid_strings(text: str) -> None:
    with pytest.raises(ConvoxInputError):
        encode_duration(text)


@pytest.mark.parametrize(
    "value", [True, None, Decimal("1.5"), float("nan"), float("inf"), 2**63, [1]]
)
def test_encode_duration_rejects_other_values(value: Any) -> None:
    with pytest.raises(ConvoxInputError):
        encode_duration(value)


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (datetime(2026, 1, 15, 14, 30, 49, tzinfo=timezone.utc), "20260115.143049.000000000"),
        (
            datetime(2026, 1, 15, 14, 30, 49, 123456, tzinfo=timezone.utc),
            "20260115.143049.123456000",
        ),
        # naive datetimes are taken to be UTC
        (datetime(2026, 1, 15, 14, 30, 49), "20260115.143049.000000000"),
        (
            datetime(2026, 1, 15, 16, 30, 49, tzinfo=timezone(timedelta(hours=2))),
            "20260115.143049.000000000",
        ),
        (datetime(1, 1, 1, tzinfo=timezone.utc), "00010101.000000.000000000"),
    ],
)
def test_encode_time(value: datetime, wire: str) -> None:
    assert encode_time(value) == wire


@pytest.mark.parametrize("value", ["20260115.143049.000000000", 0, None])
def test_encode_time_rejects_non_datetimes(value: Any) -> None:
    with pytest.raises(ConvoxInputError, match="expected a datetime"):
        encode_time(value)


def test_encode_time_rejects_dates() -> None:
    with pytest.raises(ConvoxInputError):
        encode_time(datetime(2026, 1, 15).date())  # type: ignore[arg-type]


# --- lists and maps ---------------------------------------------------------------------------


def test_encode_list() -> None:
    assert encode_list(["cpu", "mem"], name="metrics") == "cpu,mem"
    assert encode_list(iter(["a"]), name="metrics") == "a"


@pytest.mark.parametrize(
    ("items", "problem"),
    [
        ("cpu", "wrap a single item in a list"),
        ([], "empty list"),
        (["a", ""], "item 1 is empty"),
        (["a", 1], "item 1 must be a str"),
        (None, "expected a list"),
    ],
)
def test_encode_list_rejections(items: Any, problem: str) -> None:
    with pytest.raises(ConvoxInputError, match=problem):
        encode_list(items, name="metrics")


def test_encode_list_rejects_commas_without_showing_the_item() -> None:
    with pytest.raises(ConvoxInputError, match="item 0 contains ','") as info:
        encode_list([f"{SECRET},x"], name="build-args")
    assert SECRET not in str(info.value)


def test_encode_map_is_the_inner_query_string_with_sorted_keys() -> None:
    assert encode_map({"BuildMem": "1024", "BuildCpu": "512"}, name="p") == (
        "BuildCpu=512&BuildMem=1024"
    )
    assert encode_map({"FOO": "bar", "COLOR": "blue green"}, name="Environment") == (
        "COLOR=blue+green&FOO=bar"
    )
    assert encode_map({"A": "x&y=z"}, name="p") == "A=x%26y%3Dz"
    assert encode_map({}, name="p") == ""


def test_encode_map_round_trips_through_query_parsing() -> None:
    values = {"A": "x&y=z", "B": "1+1 %2F", "C;D": "semi;colon", "É": "ünï", "E": ""}
    parsed = parse_qs(encode_map(values, name="p"), keep_blank_values=True, strict_parsing=True)
    assert {key: found[0] for key, found in parsed.items()} == values


def test_map_in_a_form_body_is_encoded_twice_on_the_wire() -> None:
    fields = Fields().add_map("parameters", {"BuildCpu": "512", "BuildMem": "1024"})
    expected = b"parameters=BuildCpu%3D512%26BuildMem%3D1024"
    assert urlencode(fields.items()).encode() == expected
    request = httpx.Request("PUT", "https://rack/apps/myapp", data=dict(fields.items()))
    assert request.read() == expected


def test_map_in_a_header_carries_the_inner_form_directly() -> None:
    fields = Fields().add_map("Environment", {"FOO": "bar", "COLOR": "blue green"})
    request = httpx.Request("POST", "https://rack/x", headers=fields.header_items())
    assert request.headers["Environment"] == "COLOR=blue+green&FOO=bar"


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"": "x"}, "keys must be non-empty strings"),
        ({1: "x"}, "keys must be non-empty strings"),
        ({"A": 1}, "the value of 'A' must be a str"),
        ([("A", "1")], "expected a mapping"),
    ],
)
def test_encode_map_rejections(values: Any, problem: str) -> None:
    with pytest.raises(ConvoxInputError, match=problem):
        encode_map(values, name="parameters")


def test_encode_build_args() -> None:
    assert encode_build_args({"A": "1", "B": "x=y", "C": ""}) == "A=1,B=x=y,C="
    assert encode_build_args(["A=1", "B=2"]) == "A=1,B=2"


@pytest.mark.parametrize(
    "value", [f"{SECRET},x", f"{SECRET} x", f"{SECRET}'", f'{SECRET}"', f"{SECRET}\\", "\t"]
)
def test_encode_build_args_rejects_values_the_builder_cannot_carry(value: str) -> None:
    for args in ({"TOKEN": value}, [f"TOKEN={value}"]):
        with pytest.raises(ConvoxInputError, match="invalid build arg 'TOKEN'") as info:
            encode_build_args(args)
        assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ({"A=B": "1"}, "keys cannot contain '='"),
        ({"": "1"}, "a key is empty"),
        (["=1"], "a key is empty"),
        ({"A B": "1"}, "keys cannot contain commas, whitespace"),
        ([SECRET], "item 0: it has no '='"),
        ("A=1", "wrap a single item"),
        ({}, "none given"),
        ([], "none given"),
        ({"A": 1}, "keys and values must be str"),
        ([1], "build args: item 0: expected a KEY=VALUE str"),
    ],
)
def test_encode_build_args_rejections(args: Any, problem: str) -> None:
    with pytest.raises(ConvoxInputError, match=problem) as info:
        encode_build_args(args)
    assert SECRET not in str(info.value)


# --- path segments ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("myapp", "myapp"),
        ("RABCDEFGHIJ", "RABCDEFGHIJ"),
        ("web-5d8f7c9b6-x2kqp", "web-5d8f7c9b6-x2kqp"),
        ("a.b_c~d", "a.b_c~d"),
        ("...", "..."),
        ("a:b@c+d", "a:b@c+d"),
        ("ünï", "%C3%BCn%C3%AF"),
        ("a[b]", "a%5Bb%5D"),
    ],
)
def test_segment_escapes(value: str, escaped: str) -> None:
    assert segment(value, kind="app name") == escaped


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("a/b", "app names cannot contain '/'"),
        ("..", "app names cannot be '.' or '..'"),
        (".", "app names cannot be '.' or '..'"),
        (" a", "app names cannot contain whitespace"),
        ("a\n", "app names cannot contain line breaks"),
        ("a?b", "app names cannot contain '?'"),
        ("", "app names cannot be empty"),
        ("   ", "app names cannot be empty"),
        ("a#b", "app names cannot contain '#'"),
        ("a%2Fb", "app names cannot contain '%'"),
        ("a\\b", "app names cannot contain '\\\\'"),
        ("a\x00", "app names cannot contain control characters"),
        ("a\x7f", "app names cannot contain control characters"),
        ("a\u2028b", "app names cannot contain whitespace"),
        ("a\u00a0b", "app names cannot contain whitespace"),
    ],
)
def test_segment_rejections(value: str, problem: str) -> None:
    with pytest.raises(ConvoxInputError) as info:
        segment(value, kind="app name")
    assert problem in str(info.value)
    assert str(info.value).startswith(f"invalid app name {value!r}")


def test_segment_message_names_the_kind() -> None:
    with pytest.raises(ConvoxInputError, match=r"^invalid build id 'a/b': build ids cannot"):
        segment("a/b", kind="build id")
    with pytest.raises(ConvoxInputError, match="expected a str"):
        segment(5, kind="build id")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["a;b", "a:b", "ü", "a&b=c", "~x", "(x)", "a+b", "a'b", "..."])
def test_escaped_segment_stays_one_segment_in_the_url(value: str) -> None:
    url = httpx.URL(f"https://rack/apps/{segment(value, kind='app name')}/builds")
    parts = url.raw_path.decode().split("/")
    assert parts[:2] == ["", "apps"]
    assert parts[3:] == ["builds"]
    assert unquote(parts[2]) == value


@pytest.mark.parametrize(
    ("key", "escaped"),
    [
        ("tmp/3f9c.tgz", "tmp/3f9c.tgz"),
        ("/tmp/3f9c.tgz", "tmp/3f9c.tgz"),
        ("a", "a"),
        ("a%b/ünï", "a%25b/%C3%BCn%C3%AF"),
        ("a/.b/c..d", "a/.b/c..d"),
    ],
)
def test_object_key_escapes_each_segment(key: str, escaped: str) -> None:
    assert object_key(key) == escaped


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("", "cannot be empty"),
        ("/", "cannot be empty"),
        ("a//b", "empty segments"),
        ("//a", "empty segments"),
        ("a/", "empty segments"),
        ("..", "'.' or '..' segments"),
        ("../a", "'.' or '..' segments"),
        ("a/../b", "'.' or '..' segments"),
        ("./a", "'.' or '..' segments"),
        ("a/.", "'.' or '..' segments"),
        ("a?b", "cannot contain '?'"),
        ("a#b", "cannot contain '#'"),
        ("a b", "cannot contain whitespace"),
        (" a", "cannot contain whitespace"),
        ("a\nb", "cannot contain line breaks"),
        ("a\x01", "cannot contain control characters"),
    ],
)
def test_object_key_rejections(key: str, problem: str) -> None:
    with pytest.raises(ConvoxInputError, match="invalid object key") as info:
        object_key(key)
    assert problem in str(info.value)


def test_object_key_survives_httpx_path_normalisation() -> None:
    url = httpx.URL(f"https://rack/apps/myapp/objects/{object_key('/src/x/ü;1.tgz')}")
    assert unquote(url.raw_path.decode()) == "/apps/myapp/objects/src/x/ü;1.tgz"


@pytest.mark.parametrize("name", ["myapp", "a", "a-1", "app2", "a-"])
def test_validate_app_name_accepts(name: str) -> None:
    validate_app_name(name)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("MyApp", "must start with a lowercase letter"),
        ("1app", "must start with a lowercase letter"),
        ("-app", "must start with a lowercase letter"),
        ("my_app", "must start with a lowercase letter"),
        ("my app", "must start with a lowercase letter"),
        ("app\n", "must start with a lowercase letter"),
        ("", "must start with a lowercase letter"),
        ("rack", "reserved"),
        ("system", "reserved"),
        (None, "expected a str"),
    ],
)
def test_validate_app_name_rejects(name: Any, problem: str) -> None:
    with pytest.raises(ConvoxInputError, match=problem):
        validate_app_name(name)


# --- environment ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "env"),
    [
        ("", {}),
        ("\n\n", {}),
        ("A=1\nB=2", {"A": "1", "B": "2"}),
        ("A=1\n", {"A": "1"}),
        ("#FOO=1", {"#FOO": "1"}),
        ("A==b", {"A": "=b"}),
        (" K =v ", {"K": "v "}),
        ("\tK\t=\tv", {"K": "\tv"}),
        ("K=v\r", {"K": "v"}),
        ("K=v\r\r", {"K": "v\r"}),
        ("K=a\rb", {"K": "a\rb"}),
        ("A=1\r\nB=2\r\n", {"A": "1", "B": "2"}),
        ("A=1\x85B=2", {"A": "1\x85B=2"}),
        ("A=1\u2028B=2", {"A": "1\u2028B=2"}),
        ("A=1\vB=2\fC=3\x1cD=4", {"A": "1\vB=2\fC=3\x1cD=4"}),
        ("=v\n =w\nK=x", {"K": "x"}),
        ("NOEQUALS\nK=x", {"K": "x"}),
        ("K=1\nK=2", {"K": "2"}),
        ("K=", {"K": ""}),
        ("K=a b ", {"K": "a b "}),
        # Go's TrimSpace keeps \x1c (Python's str.strip would not) and trims NBSP and U+3000
        ("\x1cK=v", {"\x1cK": "v"}),
        ("\u00a0K\u3000=v", {"K": "v"}),
    ],
)
def test_parse_env_follows_the_rack(text: str, env: dict[str, str]) -> None:
    assert parse_env(text) == env


def test_parse_env_line_length_limit_is_the_racks() -> None:
    longest = "K=" + "x" * (ENV_LINE_MAX_BYTES - 2)
    assert ENV_LINE_MAX_BYTES == 65535
    assert parse_env(f"A=1\n{longest}\nB=2")["K"] == "x" * (ENV_LINE_MAX_BYTES - 2)
    with pytest.raises(ConvoxInputError, match="line 2 is 65536 bytes") as info:
        parse_env(f"A=1\n{longest}x")
    assert "xxxx" not in str(info.value)
    # the limit counts UTF-8 bytes: 2 + 2 * 32767 = 65536
    with pytest.raises(ConvoxInputError, match="65536 bytes"):
        parse_env("K=" + "é" * 32767)


@pytest.mark.parametrize(
    ("env", "text"),
    [
        ({}, ""),
        ({"B": "2", "A": "1"}, "A=1\nB=2"),
        # lines are sorted, like the CLI: '-' sorts before '='
        ({"A": "1", "A-B": "2"}, "A-B=2\nA=1"),
        ({"K": "a=b"}, "K=a=b"),
    ],
)
def test_render_env_sorted_lines_without_trailing_newline(env: dict[str, str], text: str) -> None:
    assert render_env(env) == text


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"A": "1"},
        {"DATABASE_URL": "postgres://u:p@db/app?x=1&y=2", "LOG_LEVEL": "info"},
        {"#FOO": "1", "EMPTY": "", "SPACES": "  a b  ", "EQ": "==", "TAB": "\t"},
        {"ÜNÏ": "ünï", "NEL": "a\x85b", "LS": "a\u2028b", "VT": "\v"},
        {"A.B": "x", "a-b": "y", "_": "z", "LONG": "x" * (ENV_LINE_MAX_BYTES - 5)},
    ],
)
def test_render_then_parse_round_trips(env: dict[str, str]) -> None:
    assert parse_env(render_env(env)) == env


@pytest.mark.parametrize("key", ["A", "#FOO", "a.b", "A-B", "ünï", "A1_"])
def test_validate_env_key_accepts(key: str) -> None:
    validate_env_key(key)


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("", "cannot be empty"),
        ("A=B", "cannot contain '='"),
        ("A B", "cannot contain whitespace"),
        (" A", "cannot contain whitespace"),
        ("A\t", "cannot contain control characters"),
        ("A\n", "cannot contain line breaks"),
        ("A\x00", "cannot contain control characters"),
        ("A\x7f", "cannot contain control characters"),
        ("A\x85", "cannot contain control characters"),
        ("A\u3000", "cannot contain whitespace"),
        (5, "keys must be str"),
        (None, "keys must be str"),
    ],
)
def test_validate_env_key_rejects(key: Any, problem: str) -> None:
    with pytest.raises(ConvoxInputError, match="invalid environment key") as info:
        validate_env_key(key)
    assert problem in str(info.value)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (f"{SECRET}\nB=2", "line break"),
        (f"{SECRET}\r", "line break"),
        (f"a\r{SECRET}", "line break"),
        (f"{SECRET}\x00", "NUL"),
        ("x" * (ENV_LINE_MAX_BYTES - 1) + SECRET, "bytes"),
        (5, "must be a str"),
        (None, "must be a str"),
    ],
)
def test_validate_env_value_rejects_without_revealing_the_value(value: Any, problem: str) -> None:
    with pytest.raises(ConvoxInputError, match="invalid environment value for 'TOKEN'") as info:
        validate_env_value("TOKEN", value)
    assert problem in str(info.value)
    assert SECRET not in str(info.value)
    assert "xxxx" not in str(info.value)


def test_validate_env_value_line_limit_counts_key_and_utf8_bytes() -> None:
    validate_env_value("K", "x" * (ENV_LINE_MAX_BYTES - 2))
    with pytest.raises(ConvoxInputError, match="65536 bytes"):
        validate_env_value("K", "x" * (ENV_LINE_MAX_BYTES - 1))
    with pytest.raises(ConvoxInputError, match="65536 bytes"):
        validate_env_value("KK", "é" * 32766 + "x")


def test_validate_env_lists_every_bad_key_in_one_error_and_no_value() -> None:
    env = {
        "GOOD": f"{SECRET}-0",
        "BAD=KEY": f"{SECRET}-1",
        "NL": f"{SECRET}-2\nINJECTED=1",
        "": f"{SECRET}-3",
        "LONG": "y" * ENV_LINE_MAX_BYTES,
        " PAD": f"{SECRET}-4",
    }
    with pytest.raises(ConvoxInputError) as info:
        validate_env(env)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert message.startswith("invalid environment (5 bad keys): ")
    for key in ("'BAD=KEY'", "'NL'", "''", "'LONG'", "' PAD'"):
        assert key in message
    assert "GOOD" not in message
    assert SECRET not in message
    assert "INJECTED" not in message
    assert "yyyy" not in message


def test_validate_env_rejects_non_mappings() -> None:
    with pytest.raises(ConvoxInputError, match="expected a mapping"):
        validate_env(["A=1"])  # type: ignore[arg-type]


def test_render_env_validates_first() -> None:
    with pytest.raises(ConvoxInputError, match="'A'") as info:
        render_env({"A": f"{SECRET}\nB=2"})
    assert SECRET not in str(info.value)


def test_parse_env_assignments() -> None:
    assert parse_env_assignments(["A=1", "B=x=y", "A=3", "C="]) == {
        "A": "3",
        "B": "x=y",
        "C": "",
    }


@pytest.mark.parametrize(
    ("items", "problem"),
    [
        (["A=1", SECRET], "assignment 1: it has no '='"),
        ([1], "assignment 0: expected a KEY=VALUE str"),
        ("A=1", "wrap a single item"),
    ],
)
def test_parse_env_assignments_rejects_without_revealing_items(items: Any, problem: str) -> None:
    with pytest.raises(ConvoxInputError, match=problem) as info:
        parse_env_assignments(items)
    assert SECRET not in str(info.value)


# --- Fields -----------------------------------------------------------------------------------


def test_fields_encode_by_type_in_order() -> None:
    fields = Fields().add("name", "x").add("force", True).add("timeout", 30).add("idle", False)
    assert fields.items() == [
        ("name", "x"),
        ("force", "true"),
        ("timeout", "30"),
        ("idle", "false"),
    ]
    assert len(fields) == 4


def test_fields_store_str_subclasses_as_plain_str() -> None:
    ((_, value),) = Fields().add("status", BuildStatus.COMPLETE).items()
    assert type(value) is str
    assert value == "complete"


def test_fields_skip_none_everywhere() -> None:
    fields = (
        Fields()
        .add("a", None)
        .add_duration("b", None)
        .add_time("c", None)
        .add_list("d", None)
        .add_map("e", None)
    )
    assert fields.items() == []


def test_fields_typed_methods() -> None:
    fields = (
        Fields()
        .add_duration("Since", 120)
        .add_time("started", datetime(2026, 1, 15, 14, 30, 49, tzinfo=timezone.utc))
        .add_list("metrics", ["cpu", "mem"])
        .add_map("parameters", {"BuildMem": "1024"})
        .add("description", "")
    )
    assert fields.items() == [
        ("Since", "2m0s"),
        ("started", "20260115.143049.000000000"),
        ("metrics", "cpu,mem"),
        ("parameters", "BuildMem=1024"),
        ("description", ""),
    ]


@pytest.mark.parametrize("value", [1.5, datetime(2026, 1, 1), ["a"], {"a": "b"}, b"x"])
def test_fields_add_refuses_implicit_encodings(value: Any) -> None:
    with pytest.raises(ConvoxInputError, match="need an explicit encoding"):
        Fields().add("x", value)


def test_fields_reject_a_repeated_name() -> None:
    fields = Fields().add("force", True)
    with pytest.raises(ConvoxInputError, match="given twice"):
        fields.add("force", False)


def test_fields_reject_bad_names() -> None:
    with pytest.raises(ConvoxInputError, match="field names"):
        Fields().add("", "x")


def test_fields_items_is_a_copy() -> None:
    fields = Fields().add("a", "1")
    fields.items().append(("b", "2"))
    assert fields.items() == [("a", "1")]


def test_fields_header_items_are_utf8_bytes() -> None:
    fields = Fields().add("Command", "echo héllo").add("Tty", False).add("Height", 40)
    assert fields.header_items() == [
        (b"Command", "echo héllo".encode()),
        (b"Tty", b"false"),
        (b"Height", b"40"),
    ]
    request = httpx.Request("GET", "https://rack/x", headers=fields.header_items())
    assert request.headers.raw[-3:] == fields.header_items()


@pytest.mark.parametrize("value", [f"{SECRET}\nX: y", f"{SECRET}\r", f"{SECRET}\x00"])
def test_fields_header_items_reject_line_breaks_without_revealing_the_value(value: str) -> None:
    with pytest.raises(ConvoxInputError, match="invalid header Command") as info:
        Fields().add("Command", value).header_items()
    assert SECRET not in str(info.value)


def test_fields_header_items_reject_non_token_names() -> None:
    with pytest.raises(ConvoxInputError, match="invalid header name"):
        Fields().add("Bad Name", "x").header_items()


def test_fields_repr_shows_names_only() -> None:
    fields = Fields().add_map("Environment", {"TOKEN": SECRET}).add("Command", SECRET)
    assert repr(fields) == "Fields(['Environment', 'Command'])"


def _generated() -> Iterator[str]:
    yield "a"
    yield "b"


def test_fields_add_list_accepts_any_iterable() -> None:
    assert Fields().add_list("x", _generated()).items() == [("x", "a,b")]
