"""A connection set up wrongly fails naming the field to fix and what to put there."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from convox_provider.client.client import ConvoxClient
from convox_provider.client.errors import (
    ConvoxConnectionError,
    ConvoxNotFoundError,
    ConvoxStreamError,
)
from convox_provider.client.retry import RetryConfig
from convox_provider.client.websocket import ConvoxStreamNotFoundError
from convox_provider.hooks.convox import ConvoxConnectionConfigError, ConvoxHook
from convox_provider.testing import RackEmulator


@pytest.mark.parametrize(
    ("extra", "closest"),
    [
        ({"verify": False}, "verify_ssl"),
        ({"retries": 10}, "max_retries"),
        ({"rack_name": "acme/production"}, "rack"),
        ({"extra__convox__timout": 5}, "timeout"),
    ],
)
def test_an_unknown_extra_is_refused_naming_the_closest_valid_one(
    set_connection: Callable[..., str], extra: dict[str, object], closest: str
) -> None:
    set_connection({"host": "https://api.example.com", "password": "secret-key", "extra": extra})
    with pytest.raises(ConvoxConnectionConfigError) as refused:
        ConvoxHook().get_conn()
    (name,) = extra
    message = str(refused.value)
    assert refused.value.field == "extra"
    assert f"unknown extra {name!r}: did you mean {closest!r}?" in message
    assert "secret-key" not in message


def test_known_extras_in_both_spellings_are_accepted(set_connection: Callable[..., str]) -> None:
    set_connection(
        {
            "host": "https://api.example.com",
            "password": "secret-key",
            "extra": {"timeout": 5, "extra__convox__max_retries": 0},
        }
    )
    assert ConvoxHook().get_conn().config.timeout == 5


def test_a_connection_without_a_password_names_the_field_not_an_env_variable(
    set_connection: Callable[..., str],
) -> None:
    set_connection({"host": "https://api.example.com"})
    with pytest.raises(ConvoxConnectionConfigError) as refused:
        ConvoxHook().get_conn()
    message = str(refused.value)
    assert "CONVOX_PASSWORD" not in message
    assert "'Deploy key or rack password' (password)" in message
    assert "rack API password" in message


def test_a_host_without_scheme_on_a_plain_http_emulator_says_use_http(
    convox_rack: RackEmulator,
) -> None:
    address = convox_rack.url.removeprefix("http://")
    with (
        ConvoxClient(address, convox_rack.password, retry=RetryConfig(max_retries=0)) as client,
        pytest.raises(ConvoxConnectionError) as failed,
    ):
        client.apps.list()
    assert f"{address} speaks plain HTTP, not TLS; use http://{address}" in str(failed.value)


def test_the_logs_of_a_missing_build_are_not_found(convox_rack: RackEmulator) -> None:
    convox_rack.create_app("shop")
    with (
        ConvoxClient(convox_rack.url, convox_rack.password) as client,
        pytest.raises(ConvoxNotFoundError) as missing,
    ):
        list(client.builds.logs("shop", "BMISSING"))
    assert isinstance(missing.value, ConvoxStreamNotFoundError)
    assert isinstance(missing.value, ConvoxStreamError)  # what callers caught before
    assert missing.value.status_code == 404
    assert "not found" in str(missing.value)
    assert "/apps/shop/builds/BMISSING/logs" in str(missing.value)
