"""App lifecycle: create and wait, delete and wait, restart and wait (docs/rack-api.md §4.1.1,
§4.5.1, §7.7, §7.9).

The CLI's algorithms: ``convox apps create`` is ``POST /apps`` then WaitForAppRunning,
``convox apps delete`` is ``DELETE /apps/{name}`` then WaitForAppDeleted, ``convox restart`` is
``POST …/services/{name}/restart`` for each service in name order (no wait). On top of them:

* every refusal (a bad name, an app that exists or is missing, a locked app, an unknown
  service) comes before the first write;
* ``POST /apps`` is sent once (a repeat would get 409): a create whose answer was lost fails,
  and a later attempt (an Airflow retry) re-attaches to the app it made: the app carries the
  caller's ``marker`` in its config :data:`MARKER_CONFIG`, or the caller says it ``attempted``;
* ``DELETE /apps/{name}`` is retried like a GET: deleting an app that is ``deleting`` changes
  nothing, and a not-found answer means it is gone;
* a restart waits for its rolling restart: a restart moves no rollout record, so the app stays
  ``running`` (§4.5.1: only pods change), and the wait is the rollout wait (still ``running``,
  still on the same release) followed by the pods: every pod that was there before the
  restart gone, and the service's count of new pods ``running``.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from convox_provider.client.encoding import segment, validate_app_name
from convox_provider.client.errors import (
    ConvoxConflictError,
    ConvoxInputError,
    ConvoxNotFoundError,
    ConvoxWorkflowError,
)
from convox_provider.client.models import App, Process, Service
from convox_provider.client.operation import D, Flow, Resource, call, operation
from convox_provider.client.resources import apps as app_routes
from convox_provider.client.resources import processes as process_routes
from convox_provider.client.resources import services as service_routes
from convox_provider.client.status import AppStatus, ProcessStatus
from convox_provider.client.waiting import ROLLOUT_WAIT, WaitOptions, wait_options
from convox_provider.client.workflows.events import (
    AppLifecycle,
    ServicesRestarted,
)
from convox_provider.client.workflows.waits import (
    Deadline,
    Poller,
    app_running,
    emit,
)

__all__ = [
    "APP_PARAMETERS",
    "MARKER_CONFIG",
    "AppCreation",
    "AppLifecycleWorkflows",
    "AppRestartWorkflows",
    "Restart",
    "check_app_name",
]

Waiting = WaitOptions | None
"""A workflow's ``waiting`` argument: its waits' options, ``None`` for ``ROLLOUT_WAIT``."""

MARKER_CONFIG = "airflow-created-by"
"""The app config (§4.1) holding the ``marker`` of the caller that created the app."""

APP_PARAMETERS = ("BuildCpu", "BuildLabels", "BuildMem")
"""The app parameters the rack keeps; it drops any other key without an error (§4.1)."""


def check_app_name(name: str) -> None:
    """Refuse a name the rack cannot have as an app (``^[a-z][a-z0-9-]*$``, not reserved, no
    trailing ``-``: the app's namespace ``<rack>-<app>`` must end with a letter or digit, §2.5);
    :class:`ConvoxInputError` naming the problem."""
    segment(name, kind="app name")
    validate_app_name(name)
    if name.endswith("-"):
        raise ConvoxInputError(
            f"invalid app name {name!r}: app names cannot end with '-' (the app's Kubernetes"
            " namespace must end with a letter or digit); drop the trailing '-'"
        )


def _check_parameters(parameters: Mapping[str, str] | None) -> dict[str, str] | None:
    if parameters is None:
        return None
    if not isinstance(parameters, Mapping):
        raise ConvoxInputError(
            f"parameters must be a mapping of app parameters, not {type(parameters).__name__}"
        )
    unknown = sorted(str(key) for key in parameters if key not in APP_PARAMETERS)
    if unknown:
        raise ConvoxInputError(
            f"unknown app parameter(s) {', '.join(unknown)}: the rack keeps only"
            f" {', '.join(APP_PARAMETERS)} and would silently drop the others"
        )
    bad = sorted(key for key, value in parameters.items() if not isinstance(value, str))
    if bad:
        raise ConvoxInputError(f"app parameter(s) {', '.join(bad)} must be strings")
    return dict(parameters)


def _with_hint(exc: ConvoxNotFoundError, hint: str) -> ConvoxNotFoundError:
    """The rack's not-found answer, with what to do added (status, Request-Id kept)."""
    kept = {name: getattr(exc, name) for name in ("status_code", "request_id", "method", "path")}
    return ConvoxNotFoundError(exc.message, hint=hint, **kept)


def _get_existing(app: str, hint: str) -> Flow[App]:
    """Flow: the app; its absence raised with ``hint``."""
    try:
        return (yield from call(app_routes.get(app)))
    except ConvoxNotFoundError as exc:
        raise _with_hint(exc, hint) from None


def _find(app: str) -> Flow[App | None]:
    """Flow: the app, or None when the rack says it does not exist."""
    try:
        return (yield from call(app_routes.get(app)))
    except ConvoxNotFoundError:
        return None


def _marker_of(app: str) -> Flow[str | None]:
    """Flow: the marker stored on the app, None without one."""
    try:
        config = yield from call(app_routes.config_get(app, MARKER_CONFIG))
    except ConvoxNotFoundError:
        return None
    return config.value or None


@dataclass(frozen=True)
class AppCreation:
    """What :meth:`AppLifecycleWorkflows.create_and_wait` did.

    ``created`` is True when this call, or an earlier attempt with the same ``marker``, created
    the app (False: it existed, ``exists_ok``). ``pending`` is True when a rollout (the app's
    first, or the one a settings change starts) is under way and was not waited for
    (``wait=False``): a caller that waits elsewhere still has to, then call again to apply the
    settings. ``app`` is the last reading.
    """

    app: App
    created: bool
    pending: bool


def _settings_differ(
    found: App, parameters: Mapping[str, str] | None, lock: bool | None
) -> dict[str, Any]:
    """The ``PUT /apps/{name}`` fields that would change something (a PUT re-applies the
    release, §4.1, so one that changes nothing is not sent)."""
    changes: dict[str, Any] = {}
    if lock is not None and found.locked != lock:
        changes["lock"] = lock
    if parameters:
        current = found.parameters or {}
        if any(current.get(key, "") != value for key, value in parameters.items()):
            changes["parameters"] = dict(parameters)
    return changes


def _create(
    resource: Resource[Any],
    name: str,
    options: WaitOptions,
    *,
    exists_ok: bool,
    marker: str | None,
    attempted: bool,
    parameters: dict[str, str] | None,
    lock: bool | None,
    rollout_timeout: int | None,
    wait: bool,
) -> Flow[AppCreation]:
    deadline = yield from Deadline.start(options.timeout)
    found = yield from _find(name)
    created = unmarked = found is None
    if found is None:
        emit(options.on_event, AppLifecycle(name, "creating"))
        # Not retried (a repeat would get 409 exists): an answer lost on the way back fails
        # here, and a later attempt finds the app (``attempted``, ``marker``).
        found = yield from call(app_routes.create(name, timeout=rollout_timeout))
    else:
        created, unmarked = yield from _claimed(name, found, marker=marker, attempted=attempted)
        if not created and not exists_ok:
            raise ConvoxConflictError(
                f"app already exists: {name}",
                status_code=409,
                hint="nothing was changed. Choose another name, delete the app first, or pass"
                " exists_ok=True to use the existing app",
            )
    if created and unmarked and marker is not None:
        yield from call(app_routes.config_set(name, MARKER_CONFIG, value=marker))
    emit(options.on_event, AppLifecycle(name, "created" if created else "existing"))
    while True:
        if found.app_status is not AppStatus.RUNNING:
            if not wait:
                return AppCreation(found, created, pending=True)
            found = yield from app_running(resource, name, deadline, options)
        changes = _settings_differ(found, parameters, lock)
        if not changes:
            return AppCreation(found, created, pending=False)
        yield from call(app_routes.update(name, **changes))
        # The PUT re-applies the release (§4.1): the status lags it as it lags a promote.
        found = found.model_copy(update={"status": AppStatus.UPDATING.value})


def _claimed(
    name: str, found: App, *, marker: str | None, attempted: bool
) -> Flow[tuple[bool, bool]]:
    """Flow: whether an existing app is the work of an earlier attempt of this create, and
    whether it still lacks the marker."""
    if found.app_status is AppStatus.DELETING:
        raise ConvoxConflictError(
            f"app {name} is being deleted",
            status_code=409,
            hint="nothing was changed. Wait until it is gone (apps.wait_for_app_deleted) and"
            " create it again, or choose another name",
        )
    if marker is None and not attempted:
        return False, False
    stored = yield from _marker_of(name)
    if stored is not None:
        return stored == marker, False
    # No marker: an earlier attempt that was stopped between the create and the marker.
    return attempted, True


def _delete(
    resource: Resource[Any], name: str, options: WaitOptions, *, missing_ok: bool, wait: bool
) -> Flow[bool]:
    deadline = yield from Deadline.start(options.timeout)
    try:
        found = yield from _get_existing(
            name, "nothing was deleted. Check the name, or pass missing_ok=True"
        )
    except ConvoxNotFoundError:
        if missing_ok:
            return False
        raise
    if found.locked:
        raise ConvoxConflictError(
            f"app is locked: {name}",
            status_code=409,
            hint="the rack refuses to delete a locked app; nothing was deleted. Unlock it"
            " first (apps.update(name, lock=False), or `convox apps unlock`) if it should go",
        )
    if found.app_status is not AppStatus.DELETING:
        # Not found: gone between the read and the delete (or at a retried DELETE).
        with contextlib.suppress(ConvoxNotFoundError):
            yield from call(app_routes.submit_delete(name))
        emit(options.on_event, AppLifecycle(name, "deleting"))
    if wait:
        yield from app_deleted(name, deadline, options)
    return True


def app_deleted(name: str, deadline: Deadline, options: WaitOptions) -> Flow[None]:
    """Flow: the CLI's WaitForAppDeleted (§7.9): ``GET /apps/{name}`` answers not found on two
    consecutive polls; any status but ``deleting`` means it is not being deleted (raised)."""
    poller = Poller(f"app {name} to be deleted", deadline, options)
    yield from poller.pause(options.initial_delay)
    gone = 0
    while True:
        yield from poller.check()
        try:
            found = yield from poller.fetch(lambda: call(app_routes.get(name)))
        except ConvoxNotFoundError:
            gone += 1
            poller.state = "not found"
            if gone >= 2:
                return
        else:
            if found is not None:
                gone = 0
                poller.state = f"status {found.status!r}"
                if found.app_status is not AppStatus.DELETING:
                    raise ConvoxWorkflowError(
                        f"app {name} is {found.status}, not being deleted: it was created again"
                        " or the delete did not take"
                    )
        yield from poller.pause()


@dataclass(frozen=True)
class Restart:
    """A rolling restart sent by :meth:`AppLifecycleWorkflows.restart`: the ``services``
    restarted (name order), the ``release_id`` the app ran, and the ids of the pods that were
    running them (``replaced``): the restart is done once they are gone and new ones run.
    JSON-native fields, so a trigger can carry it."""

    app: str
    release_id: str
    services: tuple[str, ...]
    replaced: tuple[str, ...]


def _restart(
    resource: Resource[Any],
    app: str,
    service: str | None,
    options: WaitOptions,
    *,
    wait: bool,
) -> Flow[Restart]:
    deadline = yield from Deadline.start(options.timeout)
    found = yield from _get_existing(app, "nothing was restarted. Check the app name")
    if found.app_status is AppStatus.DELETING:
        raise ConvoxWorkflowError(f"app {app} is being deleted; nothing was restarted")
    services = sorted(s.name for s in (yield from call(service_routes.list(app))))
    if service is not None and service not in services:
        listed = ", ".join(services) or "none: no release was promoted yet"
        raise ConvoxInputError(
            f"app {app} has no service {service!r} (its services: {listed}); nothing was"
            " restarted. Check the service name in convox.yml"
        )
    if not services:
        raise ConvoxWorkflowError(
            f"app {app} has no services to restart: no release was promoted yet; nothing was"
            " restarted"
        )
    chosen = [service] if service is not None else services
    pods = yield from call(process_routes.list(app))
    replaced = tuple(sorted(p.id for p in pods if p.name in chosen and _is_service_pod(p)))
    for name in chosen:
        yield from call(service_routes.restart(app, name))
    restart = Restart(app, found.release, tuple(chosen), replaced)
    emit(
        options.on_event, ServicesRestarted(app, found.release, restart.services, restart.replaced)
    )
    if wait:
        yield from restarted(resource, restart, deadline, options)
    return restart


def _is_service_pod(process: Process) -> bool:
    """A pod of a service's deployment (``<service>-<template>-<suffix>``, §5.5), not a
    one-off process of that service (``<service>-<suffix>``)."""
    prefix = f"{process.name}-"
    return process.id.startswith(prefix) and process.id[len(prefix) :].count("-") == 1


def restarted(
    resource: Resource[Any],
    restart: Restart,
    deadline: Deadline,
    options: WaitOptions,
    *,
    watch_processes: bool = True,
) -> Flow[App]:
    """Flow: wait for a rolling restart; the last app reading.

    The rollout wait first (:func:`~.waits.app_running` on the release the app ran: a rollback
    or a newer release raises as after a promote), then the pods: the restarted services'
    pods that ran before are gone and each service has its count of other pods ``running``.
    A new pod that reads ``crashed`` (CrashLoopBackOff) raises: the rack keeps the old pods
    serving and retries the new ones forever, so the restart would not finish.
    """
    app = restart.app
    release = restart.release_id or None
    found = yield from app_running(
        resource, app, deadline, options, release_id=release, watch_processes=watch_processes
    )
    poller = Poller(f"the restart of {', '.join(restart.services)} of app {app}", deadline, options)
    old = set(restart.replaced)
    while True:
        yield from poller.check()
        listing = yield from poller.fetch(lambda: _listing(app))
        if listing is not None:
            services, pods = listing
            waiting = _not_restarted(app, restart.services, services, pods, old)
            if not waiting:
                return found
            poller.state = "; ".join(waiting)
        yield from poller.pause()


def _listing(app: str) -> Flow[tuple[builtins.list[Service], builtins.list[Process]]]:
    services = yield from call(service_routes.list(app))
    pods = yield from call(process_routes.list(app))
    return services, pods


def _not_restarted(
    app: str,
    names: tuple[str, ...],
    services: builtins.list[Service],
    pods: builtins.list[Process],
    old: set[str],
) -> builtins.list[str]:
    """What the restart still waits for, per service (empty: done)."""
    counts = {s.name: s.count for s in services}
    waiting = []
    for name in names:
        mine = [p for p in pods if p.name == name and _is_service_pod(p)]
        left = [p.id for p in mine if p.id in old]
        new = [p for p in mine if p.id not in old]
        crashed = [p.id for p in new if p.process_status is ProcessStatus.CRASHED]
        if crashed:
            raise ConvoxWorkflowError(
                f"the restart of service {name} of app {app} cannot finish: new process(es)"
                f" {', '.join(crashed)} crashed (CrashLoopBackOff). The old processes keep"
                " serving; the app's logs (system/k8s lines) tell why"
            )
        running = sum(1 for p in new if p.process_status is ProcessStatus.RUNNING)
        wanted = counts.get(name, 0)
        if left or running < wanted:
            waiting.append(
                f"service {name}: {len(left)} old process(es) left, {running} of {wanted} new"
                " running"
            )
    return waiting


class AppLifecycleWorkflows(Resource[D]):
    """Workflows of ``client.apps`` that create, delete and restart apps.

    Their waits are configured by one ``waiting`` (:class:`~..waiting.WaitOptions`, default
    ``ROLLOUT_WAIT``: the CLI's 5 s polls, 35 min, transient errors tolerated up to
    ``MAX_ERRORS`` in a row), whose ``on_event`` receives their progress events.
    """

    @operation
    def create_and_wait(
        self,
        name: str,
        *,
        exists_ok: bool = False,
        parameters: Mapping[str, str] | None = None,
        lock: bool | None = None,
        rollout_timeout: int | None = None,
        marker: str | None = None,
        attempted: bool = False,
        wait: bool = True,
        waiting: WaitOptions | None = None,
    ) -> Flow[AppCreation]:
        """Create an app and wait until it is ``running``, as ``convox apps create`` does.

        An existing app raises :class:`ConvoxConflictError` before anything is sent, unless
        ``exists_ok`` (then it is used as it is) or it is this caller's own: it carries
        ``marker`` in its config :data:`MARKER_CONFIG` (written right after the create), or it
        has no marker and ``attempted`` says an earlier attempt of this call may have sent the
        create. An app being deleted is refused either way. ``parameters`` (only ``BuildCpu``,
        ``BuildMem``, ``BuildLabels``; others are refused, the rack would drop them) and
        ``lock`` (deletion protection) are applied with ``PUT /apps/{name}`` once the app
        runs, and only if they change something: the PUT re-applies the release, so the app
        is waited for again. ``POST /apps`` is sent at most once; ``AppLifecycle`` step
        ``creating`` is reported just before it, so a caller can note that a create may exist.
        ``rollout_timeout`` is the rack's deadline for the first (empty) deploy, in seconds
        (default 300). ``generation`` is not offered: v3 racks ignore it.

        ``wait=False`` returns as soon as a rollout is under way (``pending``); call again
        once the app runs to apply the settings.
        """
        options = wait_options(locals(), ROLLOUT_WAIT)
        check_app_name(name)
        settings = _check_parameters(parameters)
        if lock is not None and not isinstance(lock, bool):
            raise ConvoxInputError(f"lock must be True, False or None, not {lock!r}")
        if marker is not None:
            segment(marker, kind="marker")
        return _create(
            self,
            name,
            options,
            exists_ok=exists_ok,
            marker=marker,
            attempted=attempted,
            parameters=settings,
            lock=lock,
            rollout_timeout=rollout_timeout,
            wait=wait,
        )

    @operation
    def delete_and_wait(
        self,
        name: str,
        *,
        missing_ok: bool = False,
        wait: bool = True,
        waiting: WaitOptions | None = None,
    ) -> Flow[bool]:
        """Delete an app and wait until it is gone, as ``convox apps delete`` does; whether
        it existed.

        Refused before the DELETE: a locked app (:class:`ConvoxConflictError`, the rack's own
        409 ``app is locked``) and a missing one (:class:`ConvoxNotFoundError`) unless
        ``missing_ok``. An app already ``deleting`` is only waited for, so a repeated call
        (a retry) neither fails nor deletes twice. Deletion is asynchronous (§4.1): the wait
        ends on two consecutive not-found readings (WaitForAppDeleted, §7.9).
        """
        options = wait_options(locals(), ROLLOUT_WAIT)
        check_app_name(name)
        return _delete(self, name, options, missing_ok=missing_ok, wait=wait)

    @operation
    def wait_for_app_deleted(self, name: str, *, waiting: WaitOptions | None = None) -> Flow[None]:
        """Wait until the app is gone: not found twice in a row (WaitForAppDeleted, §7.9).

        An app that reads anything but ``deleting`` raises :class:`ConvoxWorkflowError`.
        """
        options = wait_options(locals(), ROLLOUT_WAIT)
        check_app_name(name)
        return _wait_deleted(name, options)


class AppRestartWorkflows(Resource[D]):
    """Workflows of ``client.apps`` that restart an app's services and wait for the rolling
    restart (§4.5.1); configured by ``waiting`` as :class:`AppLifecycleWorkflows`."""

    @operation
    def restart(
        self, app: str, *, service: str | None = None, wait: bool = True, waiting: Waiting = None
    ) -> Flow[Restart]:
        """Restart every service of the app (``convox restart``) or one ``service``
        (``convox services restart``), then wait for the rolling restart.

        Refused before any restart: a missing app (:class:`ConvoxNotFoundError`), an app being
        deleted, an unknown service (:class:`ConvoxInputError` listing the app's services), an
        app without services. The wait is :func:`restarted`; each ``POST …/restart`` is sent
        once (not retried: a repeat would restart again). The app's pods' status changes are
        reported as events while it waits.
        """
        check_app_name(app)
        if service is not None:
            segment(service, kind="service name")
        return _restart(self, app, service, wait_options(locals(), ROLLOUT_WAIT), wait=wait)

    @operation
    def wait_for_restart(
        self, restart: Restart, *, waiting: WaitOptions | None = None
    ) -> Flow[App]:
        """Wait for a restart sent by :meth:`restart` with ``wait=False`` (see
        :func:`restarted`); the last app reading."""
        options = wait_options(locals(), ROLLOUT_WAIT)
        if not isinstance(restart, Restart):
            raise ConvoxInputError(f"restart must be a Restart, not {type(restart).__name__}")
        return _wait_restarted(self, restart, options)


def _wait_deleted(name: str, options: WaitOptions) -> Flow[None]:
    deadline = yield from Deadline.start(options.timeout)
    yield from app_deleted(name, deadline, options)


def _wait_restarted(resource: Resource[Any], restart: Restart, options: WaitOptions) -> Flow[App]:
    deadline = yield from Deadline.start(options.timeout)
    return (yield from restarted(resource, restart, deadline, options))
