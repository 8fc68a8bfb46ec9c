"""Error answers become typed errors with the rack's message, status and Request-Id (§3)."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from convox_provider.client.errors import (
    ConvoxAPIError,
    ConvoxAuthError,
    ConvoxBuildFailedError,
    ConvoxConfigError,
    ConvoxConfigNotFoundError,
    ConvoxConflictError,
    ConvoxError,
    ConvoxForbiddenError,
    ConvoxGatewayError,
    ConvoxNotFoundError,
    ConvoxNotImplementedError,
    ConvoxRateLimitError,
    ConvoxResponseError,
    ConvoxRollbackError,
    ConvoxServerError,
    ConvoxServerValidationError,
    ConvoxValidationError,
    error_for_status,
)
from convox_provider.client.models import App
from convox_provider.client.operation import Call, parse_bytes, parse_list, parse_model

pytestmark = pytest.mark.usefixtures("secret_free_logs")

# Every status named in the errors module docstring, plus what falls through.
STATUSES = [
    (400, "app name is reserved", ConvoxValidationError),
    (401, "invalid authentication", ConvoxAuthError),
    (403, "app is currently updating", ConvoxForbiddenError),
    (404, "app not found: myapp", ConvoxNotFoundError),
    (409, "app already exists: myapp", ConvoxConflictError),
    (422, "image param required", ConvoxValidationError),
    (429, "slow down", ConvoxRateLimitError),
    (500, 'releases.convox.com "rabcdefghij" not found', ConvoxNotFoundError),
    (500, 'pods "web-123" Not Found', ConvoxNotFoundError),
    (500, "required env: FOO", ConvoxServerValidationError),
    (500, "boom", ConvoxServerError),
    (501, "unimplemented", ConvoxNotImplementedError),
    (502, "bad gateway", ConvoxGatewayError),
    (503, "metrics: server busy, retry shortly", ConvoxGatewayError),
    (504, "gateway timeout", ConvoxGatewayError),
    (505, "http version not supported", ConvoxServerError),
    (418, "teapot", ConvoxAPIError),
]


@pytest.mark.parametrize("case", STATUSES, ids=[f"{s}-{m}" for s, m, _ in STATUSES])
@pytest.mark.parametrize("body", ["json", "text"])
async def test_each_status_maps_to_its_error(
    rack: Any, raises: Callable[..., Any], case: tuple[int, str, type], body: str
) -> None:
    status, message, cls = case
    headers = {"Request-Id": "0123456789ab"}
    if body == "json":
        rack.reply(status, json={"error": message}, headers=headers)
    else:
        rack.reply(status, text=message + "\n", headers=headers)
    with raises(cls) as info:
        await rack(lambda c: c.api.get("/apps/myapp"))
    error = info.value
    assert type(error) is cls
    assert (error.status_code, error.message, error.request_id) == (status, message, "0123456789ab")
    assert (error.method, error.path) == ("GET", "/apps/myapp")
    hint = "; the credential was refused: check the deploy key or rack password" * (status == 401)
    assert str(error) == f"{status}: {message} (GET /apps/myapp) [Request-Id 0123456789ab]{hint}"


async def test_empty_error_body(rack: Any, raises: Callable[..., Any]) -> None:
    rack.reply(404)
    with raises(ConvoxNotFoundError) as info:
        await rack(lambda c: c.api.delete("/apps/gone"))
    assert info.value.message == "response status 404"
    assert info.value.request_id is None  # the router's own 404 carries none (§3.4)


@pytest.mark.parametrize(
    "content",
    [b'{"message": "not the rack shape"}', b"{not json at all", b'{"error": 42}'],
)
async def test_json_that_is_not_the_rack_error_shape_is_shown_as_text(
    rack: Any, raises: Callable[..., Any], content: bytes
) -> None:
    rack.reply(400, content=content, headers={"content-type": "application/json"})
    with raises(ConvoxValidationError) as info:
        await rack(lambda c: c.api.get("/apps"))
    assert info.value.message == content.decode()


async def test_a_huge_text_body_is_cut(rack: Any, raises: Callable[..., Any]) -> None:
    rack.reply(502, text="x" * 50_000)
    with raises(ConvoxGatewayError) as info:
        await rack(lambda c: c.api.get("/apps"))
    assert len(info.value.message) < 2100


HTML = "<!DOCTYPE html><html><body>Sign in to Convox</body></html>"


async def test_console_without_rack_answering_html_says_to_set_the_rack(
    make_rack: Callable[..., Any], raises: Callable[..., Any]
) -> None:
    rack = make_rack("https://console.convox.com")
    rack.mock.add_response(200, html=HTML)
    with raises(ConvoxConfigError, match=r"set the rack \('<org>/<rack>'\)"):
        await rack(lambda c: c.api.get("/apps"))


async def test_console_with_rack_answering_html(
    make_rack: Callable[..., Any], raises: Callable[..., Any]
) -> None:
    rack = make_rack("https://console.convox.com", rack="acme/typo")
    rack.mock.add_response(404, html=HTML)
    with raises(ConvoxConfigError, match="rack 'acme/typo' exists"):
        await rack(lambda c: c.api.get("/apps"))


async def test_a_web_page_instead_of_a_rack(rack: Any, raises: Callable[..., Any]) -> None:
    rack.mock.add_response(200, html=HTML, headers={"content-type": "TEXT/HTML; charset=UTF-8"})
    with raises(ConvoxConfigError, match=r"use the rack API URL \(https://api\.<rack-domain>\)"):
        await rack(lambda c: c.api.get("/apps"))


async def test_an_html_object_is_a_download_not_an_error(rack: Any) -> None:
    rack.mock.add_response(200, html=HTML, headers={"Request-Id": "abc"})
    call = Call("GET", "/apps/site/objects/index.html", parse_bytes)
    assert await rack(lambda c: c._driver.execute(call)) == HTML.encode()


async def test_a_redirect_names_where_without_its_query(
    rack: Any, raises: Callable[..., Any]
) -> None:
    location = "https://login.example.org/sso/start?token=abcdef&next=/apps"
    rack.reply(302, headers={"Location": location})
    with raises(ConvoxConfigError) as info:
        await rack(lambda c: c.api.get("/apps"))
    assert "https://login.example.org/sso/start;" in str(info.value)
    assert "token" not in str(info.value)


SECRET_ENV = "DATABASE_URL=postgres://app:hunter2@db/app"


class Plain(BaseModel):
    """A model whose validation errors quote their input (pydantic's default)."""

    id: str
    env: str


@pytest.mark.parametrize(
    ("parse", "content", "expected"),
    [
        (parse_model(App), b"ok\n", "unexpected shape (body: Invalid JSON"),
        (
            parse_list(App),
            b'{"name": "x"}',
            "unexpected shape (body: Input should be a valid array",
        ),
        (
            parse_model(Plain),
            b'{"id": "R1", "env": ["' + SECRET_ENV.encode() + b'"]}',
            "unexpected shape (env: Input should be a valid string",
        ),
    ],
)
async def test_an_unreadable_answer_never_repeats_its_values(
    rack: Any, raises: Callable[..., Any], parse: Any, content: bytes, expected: str
) -> None:
    rack.reply(200, content=content, headers={"content-type": "application/json"})
    call = Call("GET", "/apps/x", parse)
    with raises(ConvoxResponseError, secrets=["hunter2"]) as info:
        await rack(lambda c: c._driver.execute(call))
    assert expected in str(info.value)
    assert info.value.status_code == 200
    assert info.value.__context__ is None  # pydantic's error holds the input values


# -- the errors module itself ------------------------------------------------------------------


@pytest.mark.parametrize(("status", "message", "cls"), STATUSES)
def test_error_for_status(status: int, message: str, cls: type) -> None:
    assert type(error_for_status(status, message)) is cls


def test_not_found_in_a_500_is_only_a_heuristic_for_500() -> None:
    assert type(error_for_status(400, "object not found")) is ConvoxValidationError
    assert type(error_for_status(503, "not found")) is ConvoxGatewayError


@pytest.mark.parametrize(
    "error",
    [
        error_for_status(404, "app not found: x", request_id="r1", method="GET", path="/apps/x"),
        ConvoxResponseError("bad", status_code=200, method="GET", path="/x"),
        ConvoxBuildFailedError("build failed", build_id="BABC", logs_tail="step 3 failed"),
        ConvoxRollbackError("rolled back", app="x", release_id="R2", active_release="R1"),
        ConvoxConfigError("no host"),
        ConvoxConfigNotFoundError("no auth file", setting="config_dir"),
    ],
)
def test_errors_survive_pickling(error: ConvoxError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)


def test_input_and_config_errors_are_value_errors() -> None:
    assert issubclass(ConvoxConfigError, ValueError)
    assert issubclass(ConvoxResponseError, ConvoxAPIError)
