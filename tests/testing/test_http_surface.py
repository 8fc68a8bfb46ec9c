"""The HTTP surface of docs/rack-api.md §1-§3: auth, errors, headers, option encodings, console."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from convox_provider.testing import RackEmulator
from convox_provider.testing.plugin import RackFactory

from .conftest import basic


def test_wrong_password_is_401_with_basic_challenge(rack: RackEmulator) -> None:
    response = httpx.get(rack.url + "/apps", auth=("convox", "nope"))
    assert response.status_code == 401
    assert response.text == "invalid authentication\n"
    assert response.headers["www-authenticate"] == 'Basic realm="convox"'
    assert re.fullmatch(r"[0-9a-f]{12}", response.headers["request-id"])


def test_any_username_but_jwt_is_accepted(rack: RackEmulator) -> None:
    assert httpx.get(rack.url + "/auth", auth=("anyone", "password")).text == "ok\n"
    response = httpx.get(rack.url + "/auth", auth=("jwt", "password"))
    assert response.status_code == 401
    assert response.text.startswith("invalid authentication: ")
    assert "www-authenticate" not in response.headers


def test_rack_without_password_accepts_everything(convox_rack_factory: RackFactory) -> None:
    rack = convox_rack_factory(password=None)
    assert httpx.get(rack.url + "/apps").json() == []


def test_check_needs_no_auth_and_has_no_request_id(rack: RackEmulator) -> None:
    response = httpx.get(rack.url + "/check")
    assert (response.status_code, response.text) == (200, "ok")
    assert "request-id" not in response.headers


def test_json_errors_only_when_accept_lists_application_json(http: httpx.Client) -> None:
    plain = http.get("/apps/missing")
    assert plain.status_code == 404
    assert plain.text == "app not found: missing\n"
    assert plain.headers["content-type"] == "text/plain; charset=utf-8"
    negotiated = http.get("/apps/missing", headers={"Accept": "text/html, application/json;q=0.9"})
    assert negotiated.headers["content-type"] == "application/json"
    assert negotiated.content == b'{"error":"app not found: missing"}\n'
    loose = http.get("/apps/missing", headers={"Accept": "application/json+x, */*"})
    assert loose.text == "app not found: missing\n"


def test_routed_responses_carry_request_id_and_security_headers(http: httpx.Client) -> None:
    ids = set()
    for path in ("/apps", "/apps/missing", "/system"):
        response = http.get(path)
        assert re.fullmatch(r"[0-9a-f]{12}", response.headers["request-id"])
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        ids.add(response.headers["request-id"])
    assert len(ids) == 3


def test_unmatched_route_is_bare_404_and_wrong_method_bare_405(rack: RackEmulator) -> None:
    missing = httpx.get(rack.url + "/nothing/here")
    assert (missing.status_code, missing.content) == (404, b"")
    assert "request-id" not in missing.headers
    wrong = httpx.post(rack.url + "/apps/demo")
    assert (wrong.status_code, wrong.content) == (405, b"")


def test_json_bodies_are_pretty_printed_with_newline(
    http: httpx.Client, demo: dict[str, str]
) -> None:
    response = http.get("/apps/demo")
    assert response.headers["content-type"] == "application/json"
    assert response.text.startswith('{\n  "generation": "3",\n  "locked": false,\n')
    assert response.text.endswith("}\n")
    assert http.get("/apps/demo/builds", params={"limit": "0"}).text == "[]\n"


def test_action_routes_answer_ok_text(http: httpx.Client, demo: dict[str, str]) -> None:
    response = http.put("/apps/demo", data={"lock": "true"})
    assert response.text == "ok\n"
    assert http.get("/apps/demo").json()["locked"] is True


def test_body_wins_over_query_and_first_value_counts(http: httpx.Client) -> None:
    http.post("/apps?name=fromquery", data={"name": "frombody"})
    http.post("/apps?name=query-only")
    http.post(
        "/apps",
        content="name=first&name=second",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    names = [a["name"] for a in http.get("/apps").json()]
    assert names == ["first", "frombody", "query-only"]


def test_name_header_works_for_app_create(http: httpx.Client) -> None:
    assert http.post("/apps", headers={"Name": "viaheader"}).json()["name"] == "viaheader"


def test_multipart_form_body_is_parsed(http: httpx.Client) -> None:
    response = http.post("/apps", files={"unused": ("f.txt", b"x")}, data={"name": "multi"})
    assert response.json()["name"] == "multi"


def test_delete_bodies_are_not_parsed(
    http: httpx.Client, rack: RackEmulator, demo: dict[str, str]
) -> None:
    rack.put_object("demo", "keep", b"1")
    response = http.request(
        "DELETE",
        "/apps/demo/objects/other",
        content="key=keep",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 404
    assert response.text == "object not found: other\n"


def test_bool_is_true_only_for_lowercase_true(http: httpx.Client, demo: dict[str, str]) -> None:
    http.put("/apps/demo", data={"lock": "True"})
    assert http.get("/apps/demo").json()["locked"] is False
    http.put("/apps/demo", data={"lock": "1"})
    assert http.get("/apps/demo").json()["locked"] is False
    http.put("/apps/demo", data={"lock": "true"})
    assert http.get("/apps/demo").json()["locked"] is True


def test_int_parse_failure_is_500_with_strconv_message(
    http: httpx.Client, demo: dict[str, str]
) -> None:
    response = http.get("/apps/demo/releases", params={"limit": "ten"})
    assert response.status_code == 500
    assert response.text == 'strconv.Atoi: parsing "ten": invalid syntax\n'


def test_duration_needs_a_unit(
    http: httpx.Client, rack: RackEmulator, demo: dict[str, str]
) -> None:
    from .wsraw import RawWebSocket, text

    with RawWebSocket(
        rack.url, "/apps/demo/logs", {"Authorization": basic(), "Since": "5", "Follow": "false"}
    ) as ws:
        assert text(ws.frames_until_end()) == b'ERROR: time: missing unit in duration "5"\n'
    with RawWebSocket(
        rack.url, "/apps/demo/logs", {"Authorization": basic(), "Since": "0", "Follow": "false"}
    ) as ws:
        assert text(ws.frames_until_end()) == b""


def test_map_param_is_one_urlencoded_field_and_brackets_are_ignored(
    http: httpx.Client, demo: dict[str, str]
) -> None:
    http.put("/apps/demo", data={"parameters[BuildMem]": "4096"})
    assert http.get("/apps/demo").json()["parameters"] == {}
    http.put("/apps/demo", data={"parameters": "BuildMem=2048&Unknown=1&BuildCpu=512"})
    assert http.get("/apps/demo").json()["parameters"] == {"BuildCpu": "512", "BuildMem": "2048"}
    bad = http.put("/apps/demo", data={"parameters": "BuildMem=1;x=2"})
    assert (bad.status_code, bad.text) == (500, "invalid semicolon separator in query\n")


def test_unauthorized_role_for_jwt_read_token(http: httpx.Client, rack: RackEmulator) -> None:
    token = http.post("/system/jwt/token", data={"role": "read", "durationInHour": "1"}).json()[
        "token"
    ]
    assert httpx.get(rack.url + "/apps", auth=("jwt", token)).json() == []
    denied = httpx.post(rack.url + "/apps", data={"name": "x"}, auth=("jwt", token))
    assert (denied.status_code, denied.text) == (401, "you are unauthorized to access this\n")
    assert http.put("/system/jwt/rotate").text == "ok\n"
    assert httpx.get(rack.url + "/apps", auth=("jwt", token)).status_code == 401


def test_large_header_and_keep_alive_reuse(http: httpx.Client) -> None:
    for _ in range(5):
        assert http.get("/system", headers={"X-Big": "a" * 20000}).status_code == 200
    assert http.get("/auth").text == "ok\n"


def test_chunked_form_body(http: httpx.Client) -> None:
    def body() -> Iterator[bytes]:
        yield b"name="
        yield b"chunked"

    response = http.post(
        "/apps", content=body(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.json()["name"] == "chunked"


# --- console mode --------------------------------------------------------------------------


def test_console_without_rack_header_serves_html(convox_rack_factory: RackFactory) -> None:
    rack = convox_rack_factory(console="acme/production")
    page = httpx.get(rack.url + "/apps", auth=("convox", "password"))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.text.startswith("<!doctype html>")
    ok = httpx.get(
        rack.url + "/apps", auth=("convox", "password"), headers={"Rack": "acme/production"}
    )
    assert ok.json() == []
    racks = httpx.get(
        rack.url + "/racks", auth=("convox", "password"), headers={"Rack": "acme/production"}
    )
    assert racks.json()[0]["organization"] == {"name": "acme"}


def test_console_session_challenge(convox_rack_factory: RackFactory) -> None:
    rack = convox_rack_factory(console="acme/production", session="challenge")
    headers = {"Rack": "acme/production"}
    first = httpx.get(rack.url + "/apps", auth=("convox", "password"), headers=headers)
    assert first.status_code == 401
    assert first.headers["www-authenticate"] == 'Session path="/session" token="false"'
    session = httpx.post(
        rack.url + "/session", auth=("convox", "password"), headers=headers
    ).json()["id"]
    again = httpx.get(
        rack.url + "/apps", auth=("convox", "password"), headers={**headers, "Session": session}
    )
    assert again.json() == []
    bad_password = httpx.post(rack.url + "/session", auth=("convox", "x"), headers=headers)
    assert bad_password.status_code == 401


def test_console_token_mode_demands_hardware_key(convox_rack_factory: RackFactory) -> None:
    rack = convox_rack_factory(console="acme/production", session="token")
    headers = {"Rack": "acme/production"}
    first = httpx.get(rack.url + "/apps", auth=("convox", "password"), headers=headers)
    assert first.headers["www-authenticate"] == 'Session path="/session" token="true"'
    assert (
        httpx.post(rack.url + "/session", auth=("convox", "password"), headers=headers).status_code
        == 401
    )


def test_session_needs_console_mode() -> None:
    with pytest.raises(ValueError, match="console"):
        RackEmulator(session="challenge")
