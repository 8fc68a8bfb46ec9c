"""Apache Airflow provider for Convox.

Importing this package is cheap: it never imports Airflow or the client, so that
``get_provider_info()`` (called by Airflow in every process) costs nothing.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "get_provider_info"]

_INTEGRATION = "Convox"

_MODULES: dict[str, tuple[str, ...]] = {
    "hooks": ("convox_provider.hooks.convox",),
    "operators": (
        "convox_provider.operators.approval",
        "convox_provider.operators.apps",
        "convox_provider.operators.builds",
        "convox_provider.operators.environment",
        "convox_provider.operators.processes",
        "convox_provider.operators.releases",
        "convox_provider.operators.services",
    ),
    "sensors": (
        "convox_provider.sensors.apps",
        "convox_provider.sensors.builds",
        "convox_provider.sensors.processes",
        "convox_provider.sensors.releases",
    ),
    "triggers": (
        "convox_provider.triggers.apps",
        "convox_provider.triggers.builds",
        "convox_provider.triggers.processes",
        "convox_provider.triggers.releases",
        "convox_provider.triggers.watch",
    ),
}


_LINKS = ("ConvoxAppLink", "ConvoxBuildLink", "ConvoxReleaseLink", "ConvoxServiceLink")


def _nullable(kind: str, **schema: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **schema}


def _connection_type() -> dict[str, Any]:
    return {
        "connection-type": "convox",
        "hook-class-name": "convox_provider.hooks.convox.ConvoxHook",
        "hook-name": "Convox",
        "conn-fields": {
            "rack": {
                "label": "Rack",
                "description": (
                    "Console connections: the rack as <org>/<rack>. Leave empty when the host is a "
                    "direct rack API URL (https://api.<rack-domain>)."
                ),
                "schema": _nullable("string"),
            },
            "verify_ssl": {
                "label": "Verify TLS certificate",
                "description": (
                    "Turn off only for a rack API that serves its self-signed certificate; "
                    "prefer a CA bundle."
                ),
                "schema": _nullable("boolean", default=True),
            },
            "ca_bundle": {
                "label": "CA bundle path",
                "description": (
                    "PEM file of certificate authorities to trust instead of the system store; "
                    "the path must exist on every worker and triggerer."
                ),
                "schema": _nullable("string"),
            },
            "timeout": {
                "label": "Timeout (seconds)",
                "description": "Network timeout of each request (connect, read, write).",
                "schema": _nullable("number", default=30, minimum=1),
            },
            "max_retries": {
                "label": "Max retries",
                "description": (
                    "Retries of a read after 429, 502, 503 or 504, and of any request whose "
                    "connection could not be opened. Writes that may have reached the rack are "
                    "never retried."
                ),
                "schema": _nullable("integer", default=3, minimum=0),
            },
            "retry_on_500": {
                "label": "Retry reads on HTTP 500",
                "description": "Also retry reads answered 500 (never a 500 '... not found').",
                "schema": _nullable("boolean", default=False),
            },
            "actor": {
                "label": "Audit actor",
                "description": (
                    "The name the rack records for this connection's requests (Convox-Actor). "
                    "Empty: each task's airflow:<dag_id>/<run_id>/<task_id>; 'off': none; "
                    "any other text: that name."
                ),
                "schema": _nullable("string"),
            },
        },
        "ui-field-behaviour": {
            # Port stays visible: Airflow 3.3.1-3.3.2's Test button refuses a connection without
            # one (apache/airflow#73298); the hook adds it to the host.
            "hidden-fields": ["schema", "login", "extra"],
            "relabeling": {
                "host": "Console or rack API host",
                "password": "Deploy key or rack password",
            },
            "placeholders": {
                "host": "console.convox.com or https://api.<rack-domain>",
                "port": "optional, e.g. 443",
                "rack": "acme/production",
            },
        },
    }


def get_provider_info() -> dict[str, Any]:
    """The provider-info dict Airflow reads through the ``apache_airflow_provider`` entry point."""
    return {
        "package-name": "airflow-provider-convox",
        "name": "Convox",
        "description": (
            "Build, deploy, promote, roll back and run one-off processes on Convox racks."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://docs.convox.com/",
                "tags": ["service"],
            }
        ],
        **{
            role: [{"integration-name": _INTEGRATION, "python-modules": list(modules)}]
            for role, modules in _MODULES.items()
            if modules
        },
        "connection-types": [_connection_type()],
        "asset-uris": [{"schemes": ["convox"], "handler": "convox_provider.assets.sanitize_uri"}],
        "extra-links": [f"convox_provider.links.{name}" for name in _LINKS],
        "config": {
            "convox": {
                "description": "The Convox provider's settings.",
                "options": {
                    "resume_hold": {
                        "description": (
                            "Seconds after a task deferred before its trigger hands over an event"
                            " that came sooner (Airflow 3.1-3.3 may fail a task resumed before"
                            " the scheduler handled its worker's exit, apache/airflow#71580)."
                            " 0 turns the hold off."
                        ),
                        "version_added": None,
                        "type": "float",
                        "example": "0",
                        "default": "30",
                    }
                },
            }
        },
    }
