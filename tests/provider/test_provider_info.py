"""The provider-info dict: a broken one breaks ``import airflow`` in every process."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import airflow
import jsonschema
import pytest
from airflow_compat import AIRFLOW_RELEASE
from packaging.utils import canonicalize_name

import convox_provider
from convox_provider import get_provider_info
from convox_provider.hooks.convox import ConvoxHook

AIRFLOW_DIR = Path(airflow.__file__).parent
PACKAGE_DIR = Path(convox_provider.__file__).parent
ROLES = ("hooks", "operators", "sensors", "triggers")
CONN_FIELDS = {
    "rack",
    "verify_ssl",
    "ca_bundle",
    "timeout",
    "max_retries",
    "retry_on_500",
    "actor",
}


def _schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((AIRFLOW_DIR / name).read_text())
    return schema


@pytest.fixture(scope="module")
def info() -> dict[str, Any]:
    return get_provider_info()


@pytest.fixture(scope="module")
def connection_type(info: dict[str, Any]) -> dict[str, Any]:
    (item,) = info["connection-types"]
    return item


def test_valid_against_airflow_runtime_schema(info: dict[str, Any]) -> None:
    jsonschema.validate(info, _schema("provider_info.schema.json"))


def test_connection_type_valid_against_provider_yaml_schema(
    connection_type: dict[str, Any],
) -> None:
    item_schema = _schema("provider.yaml.schema.json")["properties"]["connection-types"]["items"]
    jsonschema.validate(connection_type, item_schema)


def test_field_behaviour_valid_against_ui_schema(connection_type: dict[str, Any]) -> None:
    behaviour = connection_type["ui-field-behaviour"]
    as_read = {
        "hidden_fields": behaviour["hidden-fields"],
        "relabeling": behaviour["relabeling"],
        "placeholders": behaviour["placeholders"],
    }
    jsonschema.validate(as_read, _schema("customized_form_field_behaviours.schema.json"))


def test_conn_field_schemas_are_valid_json_schema(connection_type: dict[str, Any]) -> None:
    for name, field in connection_type["conn-fields"].items():
        jsonschema.Draft7Validator.check_schema(field["schema"])
        assert "null" in field["schema"]["type"], name
        default = field["schema"].get("default")
        if default is not None:
            jsonschema.validate(default, field["schema"])


def test_package_name_is_the_canonical_distribution_name(info: dict[str, Any]) -> None:
    dist = metadata.distribution("airflow-provider-convox")
    assert info["package-name"] == canonicalize_name(dist.metadata["Name"])
    (entry,) = [ep for ep in dist.entry_points if ep.group == "apache_airflow_provider"]
    assert entry.load() is get_provider_info


def test_each_call_returns_a_fresh_dict() -> None:
    first = get_provider_info()
    first["connection-types"][0]["ui-field-behaviour"]["placeholders"]["host"] = "changed"
    assert (
        get_provider_info()["connection-types"][0]["ui-field-behaviour"]["placeholders"]["host"]
        != "changed"
    )


def test_connection_form(connection_type: dict[str, Any]) -> None:
    assert connection_type["connection-type"] == ConvoxHook.conn_type == "convox"
    assert connection_type["hook-name"] == ConvoxHook.hook_name == "Convox"
    module, _, name = connection_type["hook-class-name"].rpartition(".")
    assert getattr(importlib.import_module(module), name) is ConvoxHook
    assert set(connection_type["conn-fields"]) == CONN_FIELDS
    behaviour = connection_type["ui-field-behaviour"]
    assert set(behaviour["hidden-fields"]) == {"schema", "login", "extra"}
    assert behaviour["relabeling"] == {
        "host": "Console or rack API host",
        "password": "Deploy key or rack password",
    }
    assert behaviour["placeholders"]["rack"] == "acme/production"
    assert "console.convox.com" in behaviour["placeholders"]["host"]
    assert "https://api.<rack-domain>" in behaviour["placeholders"]["host"]
    assert "empty" in connection_type["conn-fields"]["rack"]["description"]


def _role_modules_on_disk(role: str) -> set[str]:
    folder = PACKAGE_DIR / role
    return {
        f"convox_provider.{role}.{path.stem}"
        for path in folder.glob("*.py")
        if not path.name.startswith("_")
    }


@pytest.mark.parametrize("role", ROLES)
def test_role_lists_name_exactly_the_modules_that_exist(info: dict[str, Any], role: str) -> None:
    listed = {module for entry in info.get(role, []) for module in entry["python-modules"]}
    assert listed == _role_modules_on_disk(role)
    for entry in info.get(role, []):
        assert entry["integration-name"] == "Convox"
    for module in listed:
        importlib.import_module(module)


def test_triggers_integration_is_declared(info: dict[str, Any]) -> None:
    names = {item["integration-name"] for item in info["integrations"]}
    for role in ROLES:
        for entry in info.get(role, []):
            assert entry["integration-name"] in names


def test_importing_the_package_stays_cheap() -> None:
    code = (
        "import sys, convox_provider; convox_provider.get_provider_info(); "
        "print(sorted(m for m in ('airflow', 'httpx', 'pydantic', 'convox_provider.client') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_runtime_providers_manager_resolves_the_hook() -> None:
    try:
        from airflow.sdk.providers_manager_runtime import (
            ProvidersManagerTaskRuntime as Manager,
        )
    except ImportError:  # Airflow 3.1: only core's manager resolves hooks
        from airflow.providers_manager import ProvidersManager as Manager

    hook_info = Manager().hooks["convox"]
    assert hook_info is not None
    assert hook_info.hook_class_name == "convox_provider.hooks.convox.ConvoxHook"
    assert hook_info.hook_name == "Convox"
    assert hook_info.connection_id_attribute_name == "convox_conn_id"
    assert hook_info.package_name == "airflow-provider-convox"
    assert hook_info.connection_testable is True


def test_asset_uris_and_extra_links_are_registered(info: dict[str, Any]) -> None:
    """Airflow resolves the ``convox`` scheme's handler and every link class; the links are
    those the operators carry."""
    from airflow.providers_manager import ProvidersManager

    from convox_provider.assets import sanitize_uri
    from convox_provider.operators.builds import ConvoxDeployOperator

    assert info["asset-uris"] == [
        {"schemes": ["convox"], "handler": "convox_provider.assets.sanitize_uri"}
    ]
    manager = ProvidersManager()
    assert manager.asset_uri_handlers["convox"] is sanitize_uri
    assert set(manager.extra_links_class_names) >= set(info["extra-links"])
    carried = {
        f"{type(link).__module__}.{type(link).__qualname__}"
        for link in ConvoxDeployOperator.operator_extra_links
    }
    assert carried == set(info["extra-links"])


_HOOK_META = """
import json
from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
(meta,) = [m for m in HookMetaService.hook_meta_data() if m.connection_type == "convox"]
print(json.dumps(meta.model_dump(mode="json")))
"""


def test_the_ui_receives_the_form() -> None:
    """What the connection form is built from (the UI's hook metadata), on 3.1 and on 3.2+.

    In a new process, as in the API server: Airflow 3.1 reads the legacy form only while its
    providers manager is first filled (with WTForms mocked), which other tests here did already.
    """
    out = subprocess.run(
        [sys.executable, "-c", _HOOK_META], capture_output=True, text=True, check=True
    ).stdout
    meta = json.loads(out.splitlines()[-1])
    assert meta["hook_name"] == "Convox"
    assert meta["hook_class_name"] == "convox_provider.hooks.convox.ConvoxHook"
    standard = meta["standard_fields"]
    assert standard["host"]["title"] == "Console or rack API host"
    assert standard["host"]["placeholder"] == "console.convox.com or https://api.<rack-domain>"
    assert standard["password"]["title"] == "Deploy key or rack password"
    hidden = {name for name, field in standard.items() if field and field["hidden"]}
    assert hidden == {"login", "url_schema"}

    extras = meta["extra_fields"]
    (conn_type,) = get_provider_info()["connection-types"]
    titles = {name: extra["schema"]["title"] for name, extra in extras.items()}
    assert titles == {name: spec["label"] for name, spec in conn_type["conn-fields"].items()}
    assert set(extras) == CONN_FIELDS
    values = {name: extra["value"] for name, extra in extras.items()}
    assert (values["verify_ssl"], values["retry_on_500"], values["max_retries"]) == (True, False, 3)
    kinds = {name: extra["schema"]["type"][0] for name, extra in extras.items()}
    assert kinds["verify_ssl"] == kinds["retry_on_500"] == "boolean"
    assert kinds["max_retries"] == "integer"
    # Airflow 3.1's legacy form has no number field: the timeout is a string the hook converts.
    assert (kinds["timeout"], values["timeout"]) == (
        ("number", 30) if AIRFLOW_RELEASE >= (3, 2) else ("string", "30")
    )


def test_the_legacy_form_methods_exist_only_where_airflow_needs_them() -> None:
    """Airflow 3.2+ deprecates them (a warning per process) and reads provider info instead."""
    legacy = {"get_connection_form_widgets", "get_ui_field_behaviour"} & set(vars(ConvoxHook))
    assert bool(legacy) == (AIRFLOW_RELEASE < (3, 2))


def test_the_resume_hold_is_an_airflow_setting(
    info: dict[str, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``[convox] resume_hold``: declared with the triggers' default, read at each use."""
    from convox_provider.triggers._base import RESUME_HOLD, configured_resume_hold

    option = info["config"]["convox"]["options"]["resume_hold"]
    assert (option["type"], float(option["default"])) == ("float", RESUME_HOLD)
    assert configured_resume_hold() == RESUME_HOLD
    monkeypatch.setenv("AIRFLOW__CONVOX__RESUME_HOLD", "2.5")
    assert configured_resume_hold() == 2.5
    monkeypatch.setenv("AIRFLOW__CONVOX__RESUME_HOLD", "-1")
    assert configured_resume_hold() == 0.0
    monkeypatch.setenv("AIRFLOW__CONVOX__RESUME_HOLD", "soon")
    assert configured_resume_hold() == RESUME_HOLD
    assert "[convox] resume_hold is not a number of seconds" in caplog.text
