"""Multi-step workflows, written once as flows and run by both clients.

Each group is a mixin for the resource group it belongs to: :class:`AppWorkflows` (apps),
:class:`BuildWorkflows` (builds), :class:`ReleaseWorkflows` (releases),
:class:`EnvironmentWorkflows` (environment), :class:`ProcessWorkflows` (processes) and
:class:`ServiceWorkflows` (services). Progress is reported through ``on_event`` callbacks with
the dataclasses of :mod:`.events`.
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
