"""The Convox connection form for Airflow before 3.2, built from ``get_provider_info()``.

Airflow 3.2 reads ``conn-fields`` and ``ui-field-behaviour`` from provider info (and deprecates
the hook methods). Airflow 3.1 reads only the hook's legacy ``get_connection_form_widgets()`` and
``get_ui_field_behaviour()``; its UI imports them with WTForms and Flask-AppBuilder mocked, so
they work without either installed (apache/airflow#60410 moved the form to provider info).
This module turns the one declaration in :func:`convox_provider.get_provider_info` into that
legacy shape, so both Airflow lines show the same form.
"""

from __future__ import annotations

from typing import Any

from convox_provider import get_provider_info

__all__ = ["NEEDS_LEGACY_FORM", "connection_form_widgets", "ui_field_behaviour"]


def _airflow_before_3_2() -> bool:
    from airflow import __version__  # noqa: PLC0415 - the installed core's version

    major, minor = (int(part) for part in __version__.split(".")[:2])
    return (major, minor) < (3, 2)


NEEDS_LEGACY_FORM = _airflow_before_3_2()
"""Whether this Airflow builds connection forms from the hook methods only (3.1)."""


def _connection_type() -> dict[str, Any]:
    (conn_type,) = get_provider_info()["connection-types"]
    return dict(conn_type)


def connection_form_widgets() -> dict[str, Any]:
    """WTForms fields of the extras, as ``get_connection_form_widgets()`` returns them.

    Airflow 3.1 accepts only String, Integer, Password and Boolean fields: a ``number`` (the
    timeout) is a string field, converted and checked by the hook like a URI extra.
    """
    # Neither is a dependency: Airflow 3.1's UI mocks both while it reads the form.
    from flask_appbuilder.fieldwidgets import BS3TextFieldWidget  # noqa: PLC0415
    from wtforms import BooleanField, IntegerField, StringField  # noqa: PLC0415
    from wtforms.validators import Optional  # noqa: PLC0415

    fields: dict[str, Any] = {}
    for name, spec in _connection_type()["conn-fields"].items():
        kind = next(t for t in spec["schema"]["type"] if t != "null")
        options: dict[str, Any] = {"description": spec.get("description", "")}
        if "default" in spec["schema"]:
            options["default"] = spec["schema"]["default"]
        if kind == "boolean":
            fields[name] = BooleanField(spec["label"], **options)
            continue
        field = IntegerField if kind == "integer" else StringField
        if field is StringField and "default" in options:
            options["default"] = str(options["default"])
        fields[name] = field(
            spec["label"], validators=[Optional()], widget=BS3TextFieldWidget(), **options
        )
    return fields


def ui_field_behaviour() -> dict[str, Any]:
    """``ui-field-behaviour`` with the legacy method's key names (``hidden_fields``, ...)."""
    behaviour = _connection_type()["ui-field-behaviour"]
    return {key.replace("-", "_"): value for key, value in behaviour.items()}
