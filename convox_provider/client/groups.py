"""The resource groups of the client that have workflows as well as routes.

Each class composes the routes of its group (``resources/…``: module-level route builders,
offered as operations) with the workflows of that group (``workflows/…``, which build their
requests with the same route functions). Neither side imports the other; only this module
imports both. The groups without workflows (``client.objects``, ``client.system``…) are the
route classes of :mod:`.resources` themselves.
"""

from __future__ import annotations

from convox_provider.client.operation import D
from convox_provider.client.resources.apps import AppRoutes
from convox_provider.client.resources.builds import BuildRoutes
from convox_provider.client.resources.environment import EnvironmentRoutes
from convox_provider.client.resources.processes import ProcessRoutes
from convox_provider.client.resources.releases import ReleaseRoutes
from convox_provider.client.resources.services import ServiceRoutes
from convox_provider.client.workflows.apps import AppLifecycleWorkflows, AppRestartWorkflows
from convox_provider.client.workflows.builds import BuildWorkflows
from convox_provider.client.workflows.changes import ReleaseChangeWorkflows
from convox_provider.client.workflows.copy import BuildCopyWorkflows
from convox_provider.client.workflows.environment import EnvironmentWorkflows
from convox_provider.client.workflows.promote import ReleaseWorkflows
from convox_provider.client.workflows.run import ProcessWorkflows
from convox_provider.client.workflows.scale import ServiceWorkflows
from convox_provider.client.workflows.waits import AppWorkflows

__all__ = ["Apps", "Builds", "Environment", "Processes", "Releases", "Services"]


class Apps(AppRestartWorkflows[D], AppLifecycleWorkflows[D], AppWorkflows[D], AppRoutes[D]):
    """``client.apps``: :class:`~.resources.apps.AppRoutes` (with the app logs),
    :class:`~.workflows.waits.AppWorkflows`, :class:`~.workflows.apps.AppLifecycleWorkflows`
    (create and delete, waited for) and :class:`~.workflows.apps.AppRestartWorkflows`.

    Not offered: ``metrics`` (501 ``unimplemented`` on the generic Kubernetes provider,
    docs/rack-api.md §8 item 10) and the console-only budget/cost routes.
    """


class Builds(BuildCopyWorkflows[D], BuildWorkflows[D], BuildRoutes[D]):
    """``client.builds``: :class:`~.resources.builds.BuildRoutes` (with the build logs) and
    :class:`~.workflows.builds.BuildWorkflows` (with ``copy``, :mod:`~.workflows.copy`)."""


class Environment(EnvironmentWorkflows[D], EnvironmentRoutes[D]):
    """``client.environment``: reads (:class:`~.resources.environment.EnvironmentRoutes`) and
    writes (:class:`~.workflows.environment.EnvironmentWorkflows`).

    Reads start from the NEWEST release, as the CLI does, not from the active one as the
    official SDK does (§8 item 5): a newer unpromoted release (e.g. from a build) is what the
    rack forks the next release from, so an edit based on the active release would silently
    drop its changes or deploy its unpromoted build. Writes (set, unset, promote) are
    workflows on ``read_environment``, pinning ``parent-release`` to the release read.
    """


class Processes(ProcessWorkflows[D], ProcessRoutes[D]):
    """``client.processes``: :class:`~.resources.processes.ProcessRoutes` (with logs and
    exec) and :class:`~.workflows.run.ProcessWorkflows`."""


class Releases(ReleaseChangeWorkflows[D], ReleaseWorkflows[D], ReleaseRoutes[D]):
    """``client.releases``: :class:`~.resources.releases.ReleaseRoutes`,
    :class:`~.workflows.promote.ReleaseWorkflows` and ``change`` (what a promote would change,
    :mod:`~.workflows.changes`).

    There is no ``rollback`` route: the official SDK's promotes the old release, which the rack
    refuses (400 ``can not promote an older release, try rollback``, §8 item 2). A rollback
    creates a new release from the old build and env and promotes that (§7.5).
    """


class Services(ServiceWorkflows[D], ServiceRoutes[D]):
    """``client.services``: :class:`~.resources.services.ServiceRoutes` (with the service
    logs) and :class:`~.workflows.scale.ServiceWorkflows`."""
