"""The Convox rack API client: ``ConvoxClient`` (sync) and ``AsyncConvoxClient`` (async).

Both clients run the same declaration of every route and workflow. This package never imports
Airflow. Everything not listed in ``__all__`` is private.

The names are loaded on first use (PEP 562), so that importing a light submodule
(:mod:`.waiting`, :mod:`.errors`, which DAG files reach through the operators) does not import
the whole client (httpx, pydantic: ~90 ms).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from convox_provider import __version__  # the package's version, as ``convox.__version__``
from convox_provider.client import errors

if TYPE_CHECKING:
    from convox_provider.client.archive import (
        Archived,
        ArchiveEvent,
        Finished,
        Scanned,
        SourceArchive,
        Uploaded,
    )
    from convox_provider.client.client import AsyncConvoxClient, ConvoxClient
    from convox_provider.client.config import ClientConfig
    from convox_provider.client.errors import *  # noqa: F403 - its Convox* names, as below
    from convox_provider.client.models import *  # noqa: F403 - the models named below
    from convox_provider.client.retry import RetryConfig
    from convox_provider.client.status import AppStatus, BuildStatus, ProcessStatus
    from convox_provider.client.websocket import lines
    from convox_provider.client.workflows.events import WorkflowEvent

__all__ = [
    "App",
    "AppConfig",
    "AppStatus",
    "ArchiveEvent",
    "Archived",
    "AsyncConvoxClient",
    "Build",
    "BuildStatus",
    "Capacity",
    "Certificate",
    "ClientConfig",
    "ConvoxClient",
    "Finished",
    "Instance",
    "KeyPair",
    "LetsEncryptConfig",
    "Metric",
    "MetricValue",
    "Object",
    "Process",
    "ProcessStatus",
    "Registry",
    "Release",
    "Resource",
    "ResourceType",
    "RetryConfig",
    "Scanned",
    "Service",
    "SourceArchive",
    "System",
    "Uploaded",
    "WorkflowEvent",
    "__version__",
    "lines",
]
__all__ += [name for name in errors.__all__ if name.startswith("Convox")]


_SOURCES = (
    "errors",
    "status",
    "retry",
    "config",
    "models",
    "workflows.events",
    "archive",
    "websocket",
    "client",
)
"""The submodules the public names come from, lightest first (the first that has a name wins)."""


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    for source in _SOURCES:
        module = importlib.import_module(f"{__name__}.{source}")
        if hasattr(module, name):
            value = getattr(module, name)
            globals()[name] = value
            return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")  # pragma: no cover


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
