"""Authentication: Basic credentials and the console session challenge (docs/rack-api.md §1.5)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest

from convox_provider.client.errors import ConvoxAuthError, ConvoxForbiddenError

pytestmark = pytest.mark.usefixtures("secret_free_logs")

CONSOLE = "https://console.convox.com"
KEY = "rack-password-0123456789"  # the key make_rack uses
CHALLENGE = {"WWW-Authenticate": 'Session path="/session" token="false"'}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(("username", "user"), [(None, "convox"), ("jwt", "jwt")])
async def test_basic_credentials(
    make_rack: Callable[..., Any], username: str | None, user: str
) -> None:
    rack = make_rack(username=username)
    rack.reply(json=[])
    await rack(lambda c: c.api.get("/apps"))
    assert rack.request.headers["Authorization"] == basic(user, KEY)


async def test_wrong_key(make_rack: Callable[..., Any], raises: Callable[..., Any]) -> None:
    rack = make_rack()
    rack.reply(
        401, text="invalid authentication", headers={"WWW-Authenticate": 'Basic realm="convox"'}
    )
    with raises(ConvoxAuthError, match="invalid authentication") as info:
        await rack(lambda c: c.api.get("/apps"))
    assert info.value.status_code == 401
    assert len(rack.requests) == 1


async def test_session_challenge_is_answered_and_remembered(make_rack: Callable[..., Any]) -> None:
    rack = make_rack(CONSOLE, rack="acme/production")
    rack.reply(401, text="session required", headers=CHALLENGE)
    rack.reply(json={"id": "sess-1"})
    rack.reply(json=[{"name": "myapp"}])
    rack.reply(json={"name": "myapp"})

    assert await rack(lambda c: c.api.get("/apps")) == [{"name": "myapp"}]
    assert await rack(lambda c: c.api.get("/apps/myapp")) == {"name": "myapp"}

    first, opened, again, later = rack.requests
    assert (first.method, rack.path_of(first), "session" in first.headers) == (
        "GET",
        "/apps",
        False,
    )
    assert (opened.method, rack.path_of(opened), opened.content) == ("POST", "/session", b"")
    assert "session" not in opened.headers
    for request in (first, opened, again, later):
        assert request.headers["Authorization"] == basic("convox", KEY)
        assert request.headers["Rack"] == "acme/production"
        assert request.headers["User-Agent"] == "convox.go/dev"
    assert (rack.path_of(again), again.headers["Session"]) == ("/apps", "sess-1")
    assert (rack.path_of(later), later.headers["Session"]) == ("/apps/myapp", "sess-1")


async def test_a_challenged_post_is_sent_again_once(make_rack: Callable[..., Any]) -> None:
    rack = make_rack(CONSOLE, rack="acme/production")
    rack.reply(401, text="session required", headers=CHALLENGE)
    rack.reply(json={"id": "sess-2"})
    rack.ok()
    assert await rack(lambda c: c.api.post("/apps/myapp/releases/R1/promote")) == "ok"
    assert [(r.method, rack.path_of(r)) for r in rack.requests] == [
        ("POST", "/apps/myapp/releases/R1/promote"),
        ("POST", "/session"),
        ("POST", "/apps/myapp/releases/R1/promote"),
    ]


async def test_hardware_key_sessions_are_refused_without_sending_more(
    make_rack: Callable[..., Any], raises: Callable[..., Any]
) -> None:
    rack = make_rack(CONSOLE, rack="acme/production")
    rack.reply(401, headers={"WWW-Authenticate": 'Session path="/session/u2f" token="true"'})
    with raises(ConvoxAuthError, match="hardware-key .* Use a deploy key") as info:
        await rack(lambda c: c.api.get("/apps"))
    assert info.value.path == "/session/u2f"
    assert len(rack.requests) == 1


async def test_a_known_session_is_sent_from_the_start(make_rack: Callable[..., Any]) -> None:
    rack = make_rack(CONSOLE, rack="acme/production", session="from-cli-file")
    rack.reply(json=[])
    await rack(lambda c: c.api.get("/apps"))
    assert rack.request.headers["Session"] == "from-cli-file"


async def test_a_stale_session_is_replaced(make_rack: Callable[..., Any]) -> None:
    rack = make_rack(CONSOLE, rack="acme/production", session="expired")
    rack.reply(401, headers=CHALLENGE)
    rack.reply(json={"id": "fresh"})
    rack.reply(json=[])
    await rack(lambda c: c.api.get("/apps"))
    assert [r.headers.get("Session") for r in rack.requests] == ["expired", "expired", "fresh"]


async def test_session_refused(make_rack: Callable[..., Any], raises: Callable[..., Any]) -> None:
    rack = make_rack(CONSOLE, rack="acme/production")
    rack.reply(401, headers=CHALLENGE)
    rack.reply(403, json={"error": "cli token is expired"}, headers={"Request-Id": "r9"})
    with raises(ConvoxForbiddenError, match="cli token is expired") as info:
        await rack(lambda c: c.api.get("/apps"))
    assert (info.value.method, info.value.path, info.value.request_id) == ("POST", "/session", "r9")
    assert len(rack.requests) == 2


async def test_session_answer_without_id(
    make_rack: Callable[..., Any], raises: Callable[..., Any]
) -> None:
    rack = make_rack(CONSOLE, rack="acme/production")
    rack.reply(401, headers=CHALLENGE)
    rack.reply(json={"session": "nope"})
    with raises(ConvoxAuthError, match="had no id"):
        await rack(lambda c: c.api.get("/apps"))
    assert len(rack.requests) == 2


async def test_a_second_challenge_is_not_answered_again(
    make_rack: Callable[..., Any], raises: Callable[..., Any]
) -> None:
    rack = make_rack(CONSOLE, rack="acme/production")
    rack.reply(401, text="session required", headers=CHALLENGE)
    rack.reply(json={"id": "sess-3"})
    rack.reply(401, text="session required", headers=CHALLENGE)
    with raises(ConvoxAuthError, match="session required"):
        await rack(lambda c: c.api.get("/apps"))
    assert len(rack.requests) == 3
