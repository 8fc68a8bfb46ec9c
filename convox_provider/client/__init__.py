"""The Convox rack API client: ``ConvoxClient`` (sync) and ``AsyncConvoxClient`` (async).

Both clients run the same declaration of every route and workflow. This package never imports
Airflow. Everything not listed in ``__all__`` is private.
"""

from __future__ import annotations

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
from convox_provider.client.errors import (
    ConvoxAPIError,
    ConvoxAuthError,
    ConvoxBuildFailedError,
    ConvoxConfigError,
    ConvoxConflictError,
    ConvoxConnectionError,
    ConvoxError,
    ConvoxForbiddenError,
    ConvoxGatewayError,
    ConvoxInputError,
    ConvoxNotFoundError,
    ConvoxNotImplementedError,
    ConvoxRateLimitError,
    ConvoxResponseError,
    ConvoxRollbackError,
    ConvoxServerError,
    ConvoxStreamError,
    ConvoxSupersededError,
    ConvoxTimeoutError,
    ConvoxValidationError,
    ConvoxWaitTimeoutError,
    ConvoxWorkflowError,
)
from convox_provider.client.models import (
    App,
    AppConfig,
    Build,
    Capacity,
    Certificate,
    Instance,
    Object,
    Process,
    Registry,
    Release,
    Resource,
    ResourceType,
    Service,
    System,
)
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
    "ConvoxAPIError",
    "ConvoxAuthError",
    "ConvoxBuildFailedError",
    "ConvoxClient",
    "ConvoxConfigError",
    "ConvoxConflictError",
    "ConvoxConnectionError",
    "ConvoxError",
    "ConvoxForbiddenError",
    "ConvoxGatewayError",
    "ConvoxInputError",
    "ConvoxNotFoundError",
    "ConvoxNotImplementedError",
    "ConvoxRateLimitError",
    "ConvoxResponseError",
    "ConvoxRollbackError",
    "ConvoxSupersededError",
    "ConvoxServerError",
    "ConvoxStreamError",
    "ConvoxTimeoutError",
    "ConvoxValidationError",
    "ConvoxWaitTimeoutError",
    "ConvoxWorkflowError",
    "Finished",
    "Instance",
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
    "lines",
]
