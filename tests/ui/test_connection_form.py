"""The Convox connection in Airflow's own UI, as a person uses it, against a local rack.

Signed in through the login form (``signed_in`` in conftest), go to Admin > Connections > Add
Connection, choose "Convox", fill the form in, save, and press the Test button in the connection's
row: the api-server runs ``ConvoxHook.test_connection()``, which calls ``GET /system`` on the rack
emulator.

``make screenshot`` (``CONVOX_UI_SCREENSHOT=<path>``) writes the form the README shows.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from airflow_compat import AIRFLOW_RELEASE
from playwright.sync_api import Locator, Page, expect

from convox_provider import get_provider_info
from convox_provider.testing import RackEmulator

pytestmark = [pytest.mark.ui, pytest.mark.timeout(300)]

(CONNECTION_TYPE,) = get_provider_info()["connection-types"]
CONN_FIELDS: dict[str, dict[str, Any]] = CONNECTION_TYPE["conn-fields"]
BEHAVIOUR: dict[str, Any] = CONNECTION_TYPE["ui-field-behaviour"]
#: Standard fields the form may hide; "description" and "extra" (the JSON box) always show.
STANDARD_FIELDS = ("host", "schema", "login", "password", "port")


class ConnectionsUI:
    """What a person does on Admin > Connections."""

    def __init__(self, page: Page) -> None:
        self.page = page

    def open_connections(self) -> None:
        """Admin > Connections from the navigation bar."""
        self.page.get_by_role("button", name="Admin").click()
        self.page.get_by_role("menuitem", name="Connections").click()
        self.page.wait_for_url("**/connections")

    def add_convox(self, conn_id: str) -> Locator:
        """Open Add Connection, name it and choose "Convox"; return the dialog."""
        self.page.get_by_role("button", name="Add Connection").click()
        dialog = self.page.get_by_role("dialog")
        dialog.get_by_label("Connection ID").fill(conn_id)
        dialog.get_by_role("combobox", name="Connection Type").click()
        self.page.get_by_role("option", name=CONNECTION_TYPE["hook-name"], exact=True).click()
        expect(dialog.locator("[name=host]")).to_be_visible()
        return dialog

    def save(self, dialog: Locator, conn_id: str) -> Locator:
        """Save the dialog; return the connection's row in the list."""
        dialog.get_by_role("button", name="Save").click()
        expect(dialog).to_be_hidden()
        row = self.row(conn_id)
        expect(row).to_be_visible()
        return row

    def row(self, conn_id: str) -> Locator:
        cell = self.page.get_by_role("cell", name=conn_id, exact=True)
        return self.page.get_by_role("row").filter(has=cell)

    def press_test(self, conn_id: str) -> TestOutcome:
        """Press the Test button in the row; return what the browser got and shows."""
        button = self.row(conn_id).get_by_role("button", name="Test Connection")
        with self.page.expect_response(_is_connection_test) as answer:
            button.click()
        body = answer.value.json()
        outcome = TestOutcome(
            http_status=answer.value.status, status=body.get("status"), message=body["message"]
        )
        if outcome.http_status == 200:
            expect(button.locator("svg")).to_have_attribute(
                "color", "green" if outcome.status else "red"
            )
            if AIRFLOW_RELEASE >= (3, 3):  # 3.1 only colours the icon
                toast = self.page.get_by_role("status").filter(has_text=outcome.message)
                expect(toast).to_be_visible()
        return outcome


@dataclass(frozen=True)
class TestOutcome:
    """The answer to ``POST /api/v2/connections/test`` that the page received."""

    __test__ = False  # not a pytest test class

    http_status: int
    status: bool | None
    message: str


def _is_connection_test(response: Any) -> bool:
    request = response.request
    return bool(request.method == "POST" and request.url.endswith("/api/v2/connections/test"))


def _field(dialog: Locator, name: str) -> Locator:
    """The form row (label, input, help text) holding the input named ``name``."""
    return dialog.get_by_role("group").filter(has=dialog.page.locator(f"[name='{name}']"))


@pytest.fixture
def connections(page: Page) -> ConnectionsUI:
    ui = ConnectionsUI(page)
    ui.open_connections()
    return ui


@pytest.fixture
def rack(convox_rack_factory: Callable[..., RackEmulator]) -> RackEmulator:
    return convox_rack_factory(password=secrets.token_hex(16), rack_name="ui-rack")


def test_the_form_shows_every_convox_field(connections: ConnectionsUI) -> None:
    dialog = connections.add_convox("convox_default")

    # Standard Fields (open first): relabelled host and password, the rest hidden or shown.
    relabels = BEHAVIOUR["relabeling"]
    placeholders = BEHAVIOUR["placeholders"]
    for name in STANDARD_FIELDS:
        if name in BEHAVIOUR["hidden-fields"]:
            expect(dialog.locator(f"[name='{name}']")).to_have_count(0)
            continue
        row = _field(dialog, name)
        if name in relabels:
            expect(row.locator("label")).to_have_text(relabels[name])
        else:  # Airflow's own label: "Port" (3.3) or "port" (3.1)
            expect(row.locator("label")).to_have_text(re.compile(f"^{name}$", re.IGNORECASE))
        expect(row.locator(f"[name='{name}']")).to_have_attribute(
            "placeholder", placeholders.get(name, "")
        )
    expect(dialog.locator("[name=password]")).to_have_attribute("type", "password")

    # Looks like a console connection for the screenshot; the next tests save and test one.
    dialog.locator("[name=host]").fill("console.convox.com")
    dialog.locator("[name=password]").fill("deploy-key-from-the-console")
    dialog.locator("[name=password]").blur()
    standard = _screenshot_of(dialog, end=_section(dialog, "host"))

    # Extra Fields: every conn-field with its label, help text and default.
    dialog.get_by_role("button", name="Extra Fields", exact=True).click()
    for name, spec in CONN_FIELDS.items():
        row = _field(dialog, f"element_{name}")
        expect(row).to_have_count(1)
        expect(row.locator("label").first).to_have_text(spec["label"])
        expect(row.locator("[data-part=helper-text]")).to_have_text(spec["description"])
        value = row.locator(f"[name='element_{name}']")
        kind = {t for t in spec["schema"]["type"] if t != "null"}
        default = spec["schema"].get("default")
        if kind == {"boolean"}:
            expect(value).to_have_attribute("type", "checkbox")
            expect(value).to_be_checked(checked=bool(default))
        elif kind & {"number", "integer"}:
            expect(value).to_have_value(str(default))
        else:
            expect(value).to_have_value("")
    _field(dialog, "element_rack").locator("input").fill("acme/production")
    _field(dialog, "element_rack").locator("input").blur()
    extra = _screenshot_of(dialog, start=_section(dialog, "element_rack"))

    png = _stack_png(connections.page, [standard, extra])
    target = os.environ.get("CONVOX_UI_SCREENSHOT")
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_bytes(png)
    width, height = _png_size(png)
    assert width >= 600
    assert height >= 900


def test_a_saved_connection_passes_the_test_button(
    connections: ConnectionsUI, rack: RackEmulator
) -> None:
    dialog = connections.add_convox("convox_rack")
    dialog.locator("[name=host]").fill(rack.url)
    dialog.locator("[name=password]").fill(rack.password or "")
    # Airflow 3.3.1-3.3.2's Test button needs a port (apache/airflow#73298); harmless elsewhere.
    dialog.locator("[name=port]").fill(str(rack.port))
    dialog.get_by_role("button", name="Extra Fields", exact=True).click()
    _field(dialog, "element_timeout").locator("input").fill("5")
    row = connections.save(dialog, "convox_rack")
    expect(row.get_by_role("cell", name=rack.url, exact=True)).to_be_visible()

    outcome = connections.press_test("convox_rack")

    assert outcome == TestOutcome(200, True, "Connected to rack ui-rack (version 3.24.9)")
    (call,) = rack.requests.find("GET", "/system")
    assert call.status == 200


def test_the_test_button_reports_a_wrong_key(
    connections: ConnectionsUI, rack: RackEmulator
) -> None:
    wrong_key = "not-" + secrets.token_hex(8)
    dialog = connections.add_convox("convox_wrong_key")
    dialog.locator("[name=host]").fill(rack.url)
    dialog.locator("[name=password]").fill(wrong_key)
    dialog.locator("[name=port]").fill(str(rack.port))
    connections.save(dialog, "convox_wrong_key")

    outcome = connections.press_test("convox_wrong_key")

    assert (outcome.http_status, outcome.status) == (200, False)
    assert re.match(r"Authentication failed \(.*401.*\); check the deploy key", outcome.message)
    assert wrong_key not in outcome.message
    assert rack.requests.count("GET", "/system", status=401) == 1


def _screenshot_of(
    dialog: Locator, *, start: Locator | None = None, end: Locator | None = None
) -> bytes:
    """PNG of the dialog's full width, from the top of ``start`` (else of the dialog) to the
    bottom of ``end`` (else of the dialog)."""
    box = _box(dialog)
    top = _box(start)["y"] if start is not None else box["y"]
    end_box = _box(end) if end is not None else box
    bottom = end_box["y"] + end_box["height"]
    return dialog.page.screenshot(
        clip={"x": box["x"], "y": top, "width": box["width"], "height": bottom - top}
    )


def _box(locator: Locator) -> dict[str, float]:
    box = locator.bounding_box()
    assert box is not None, f"{locator} is not shown"
    return dict(box)


def _section(dialog: Locator, holding: str) -> Locator:
    """The accordion section (Standard Fields, Extra Fields) holding the input ``holding``."""
    return dialog.locator("[data-part=item]").filter(has=dialog.page.locator(f"[name='{holding}']"))


def _stack_png(page: Page, parts: list[bytes]) -> bytes:
    """One PNG of ``parts`` one under the other, drawn by the browser (no imaging library)."""
    width = max(_png_size(part)[0] for part in parts)
    images = "".join(
        f'<img style="display:block" src="data:image/png;base64,{base64.b64encode(p).decode()}">'
        for p in parts
    )
    canvas = page.context.new_page()
    try:
        canvas.set_viewport_size({"width": width, "height": 200})
        canvas.set_content(f'<body style="margin:0;background:#fff">{images}</body>')
        return canvas.screenshot(full_page=True)
    finally:
        canvas.close()


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    return int(width), int(height)
