"""How the rack's error answers reach callers of the routes (docs/rack-api.md §3.2, §3.3)."""

from __future__ import annotations

import pytest

from convox_provider.client.errors import (
    ConvoxAPIError,
    ConvoxAuthError,
    ConvoxConflictError,
    ConvoxForbiddenError,
    ConvoxNotFoundError,
    ConvoxNotImplementedError,
    ConvoxServerError,
    ConvoxValidationError,
)

JSON = "json"
TEXT = "text"


CASES = [
    (
        lambda c: c.releases.get("myapp", "rx"),
        500,
        'releases.convox.com "rx" not found',
        ConvoxNotFoundError,
        "GET",
        "/apps/myapp/releases/rx",
    ),
    (
        lambda c: c.builds.get("myapp", "BX"),
        500,
        'builds.convox.com "bx" not found',
        ConvoxNotFoundError,
        "GET",
        "/apps/myapp/builds/BX",
    ),
    (
        lambda c: c.processes.get("myapp", "web-1"),
        500,
        'pods "web-1" not found',
        ConvoxNotFoundError,
        "GET",
        "/apps/myapp/processes/web-1",
    ),
    (
        lambda c: c.releases.submit_promote("myapp", "R1"),
        403,
        "app is currently updating",
        ConvoxForbiddenError,
        "POST",
        "/apps/myapp/releases/R1/promote",
    ),
    (
        lambda c: c.apps.cancel("myapp"),
        403,
        "app is not updating",
        ConvoxForbiddenError,
        "POST",
        "/apps/myapp/cancel",
    ),
    (
        lambda c: c.apps.create("myapp"),
        409,
        "app already exists: myapp",
        ConvoxConflictError,
        "POST",
        "/apps",
    ),
    (
        lambda c: c.apps.delete("myapp"),
        409,
        "app is locked: myapp",
        ConvoxConflictError,
        "DELETE",
        "/apps/myapp",
    ),
    (
        lambda c: c.releases.submit_promote("myapp", "ROLD"),
        400,
        "can not promote an older release, try rollback",
        ConvoxValidationError,
        "POST",
        "/apps/myapp/releases/ROLD/promote",
    ),
    (
        lambda c: c.builds.import_image("myapp", "B1", "x"),
        422,
        "image param required",
        ConvoxValidationError,
        "POST",
        "/apps/myapp/builds/B1/image",
    ),
    (
        lambda c: c.objects.fetch("myapp", "k"),
        404,
        "object not found: k",
        ConvoxNotFoundError,
        "GET",
        "/apps/myapp/objects/k",
    ),
    (
        lambda c: c.objects.list("myapp"),
        501,
        "unimplemented",
        ConvoxNotImplementedError,
        "GET",
        "/apps/myapp/objects",
    ),
    (
        lambda c: c.releases.submit_promote("myapp", "R2"),
        500,
        "required env: DATABASE_URL",
        ConvoxServerError,
        "POST",
        "/apps/myapp/releases/R2/promote",
    ),
    (
        lambda c: c.system.jwt_rotate(),
        401,
        "you are unauthorized to access this",
        ConvoxAuthError,
        "PUT",
        "/system/jwt/rotate",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case[2] for case in CASES])
@pytest.mark.parametrize("body", [JSON, TEXT])
async def test_error_answers_become_typed_errors(rack, case, body) -> None:
    call, status, message, error, method, path = case
    headers = {"request-id": "a1b2c3d4e5f6"}
    if body == JSON:
        rack.reply(status, json={"error": message}, headers=headers)
    else:
        rack.reply(status, text=message + "\n", headers=headers)

    with pytest.raises(error) as caught:
        await rack(call)

    exc = caught.value
    assert isinstance(exc, ConvoxAPIError)
    assert (exc.status_code, exc.message, exc.request_id) == (status, message, "a1b2c3d4e5f6")
    assert (exc.method, exc.path) == (method, path)
    assert "a1b2c3d4e5f6" in str(exc)
    assert message in str(exc)


async def test_a_500_that_is_not_a_missing_thing_stays_a_server_error(rack) -> None:
    rack.reply(500, text="context deadline exceeded\n")

    with pytest.raises(ConvoxServerError) as caught:
        await rack(lambda c: c.builds.get("myapp", "B1"))
    assert not isinstance(caught.value, ConvoxNotFoundError)
    assert caught.value.request_id is None


async def test_an_empty_error_body_still_says_what_happened(rack) -> None:
    # An unrouted path (e.g. a plain GET to a WebSocket route) is a 404 with an empty body.
    rack.reply(404, content=b"")

    with pytest.raises(ConvoxNotFoundError, match="404"):
        await rack(lambda c: c.apps.get("myapp"))
