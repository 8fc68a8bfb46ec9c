"""Multi-step workflows, written once as flows and run by both clients.

Each group holds the workflows of one resource group: :class:`AppWorkflows` (apps),
:class:`BuildWorkflows` (builds), :class:`ReleaseWorkflows` (releases),
:class:`EnvironmentWorkflows` (environment), :class:`ProcessWorkflows` (processes) and
:class:`ServiceWorkflows` (services). Workflows build their requests with the module-level
route functions of :mod:`convox_provider.client.resources` (``build_routes.get(app, id)``);
the client's classes in :mod:`convox_provider.client.groups` compose both. Progress is reported
through ``on_event`` callbacks with the dataclasses of :mod:`.events`.
"""

from __future__ import annotations

from convox_provider.client.workflows.builds import BuildWorkflows
from convox_provider.client.workflows.environment import EnvironmentWorkflows
from convox_provider.client.workflows.promote import ReleaseWorkflows
from convox_provider.client.workflows.run import ProcessWorkflows
from convox_provider.client.workflows.scale import ServiceWorkflows
from convox_provider.client.workflows.waits import AppWorkflows

__all__ = [
    "AppWorkflows",
    "BuildWorkflows",
    "EnvironmentWorkflows",
    "ProcessWorkflows",
    "ReleaseWorkflows",
    "ServiceWorkflows",
]
