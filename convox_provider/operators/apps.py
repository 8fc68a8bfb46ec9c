"""App lifecycle operators: ``ConvoxCreateAppOperator`` (``convox apps create``),
``ConvoxDeleteAppOperator`` (``convox apps delete``) and ``ConvoxRestartOperator``
(``convox restart`` / ``convox services restart``).

Each is one client workflow (:mod:`convox_provider.client.workflows.apps`); these classes only
translate Airflow: arguments, the task state store, XCom, the task log and the deferral.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow.sdk import Context

from convox_provider.client.waiting import ROLLOUT_TIMEOUT
from convox_provider.operators._base import ConvoxBaseOperator, OnEvent, check_argument

if TYPE_CHECKING:
    from convox_provider.client.workflows.apps import Restart
    from convox_provider.client.workflows.events import ServicesRestarted, WorkflowEvent
    from convox_provider.triggers.apps import ConvoxAppRunningTrigger

__all__ = ["ConvoxCreateAppOperator", "ConvoxDeleteAppOperator", "ConvoxRestartOperator"]

_CREATING = "app_create"
_DELETING = "app_delete"
_RESTART = "restart"


class _AppOperator(ConvoxBaseOperator):
    """What the three share: ``app`` is templated, the wait's deadline is absolute."""

    default_timeout = ROLLOUT_TIMEOUT

    def _trigger(
        self, cls: type[ConvoxAppRunningTrigger], end_time: float, **kwargs: Any
    ) -> ConvoxAppRunningTrigger:
        return cls(
            convox_conn_id=self.convox_conn_id,
            app=self.app,
            end_time=end_time,
            poll_interval=self.poll_interval,
            initial_delay=self.poll_interval,
            **kwargs,
        )

    def _kept(self, context: Context, step: str, key: str) -> OnEvent:
        """The progress callback; an ``AppLifecycle`` ``step`` is also kept in the task state
        store under ``key``, for a later try."""
        progress = self._progress(context)

        def on_event(event: WorkflowEvent) -> None:
            progress(event)
            if getattr(event, "step", None) == step and getattr(event, "app", None) == self.app:
                self._remember(context, key, self.app)

        return on_event


class ConvoxCreateAppOperator(_AppOperator):
    """Create a Convox app and wait until it is ``running`` (``convox apps create``).

    An app of that name that exists already fails the task before anything is sent
    (``ConvoxConflictError``), unless ``exists_ok=True``; an app being deleted always does.
    Durable: a retried task never fails with "exists" over the app its previous try created,
    and never creates it twice. The app carries a marker of the task instance in its config
    ``airflow-created-by`` (written right after the create), and on Airflow 3.3+ the task state
    store also says that a try sent the create (which covers a try killed between the two).
    On Airflow 3.1/3.2 a try killed in that instant leaves an unmarked app that the retry
    reports as existing.

    ``parameters`` (``BuildCpu``, ``BuildMem``, ``BuildLabels``; any other key is refused, as the
    rack would silently drop it) and ``lock`` (deletion protection) are set once the app runs
    (``PUT /apps/{name}``, which re-applies the app's release: it is waited for again). Both
    need ``wait_for_completion``. Deferred, the task waits on the triggerer for the app to run,
    resumes to apply the settings, and defers again if they changed something.

    XCom: the return value is the app name.

    :param app: the app to create (templated): a lowercase letter, then lowercase letters,
        digits and ``-``, not ending with ``-``; ``rack`` and ``system`` are reserved.
    :param exists_ok: use an existing app of that name instead of failing.
    :param parameters: app parameters to set (templated).
    :param lock: lock (``True``) or unlock (``False``) the app against deletion.
    :param rollout_timeout: the rack's deadline for the app's first, empty deploy (seconds;
        rack default 300).
    :param wait_for_completion: wait for the app to be ``running``.
    :param poll_interval: seconds between app status polls (also the delay before the first).
    :param timeout: seconds to wait at most.
    :param deferrable: wait on the triggerer.
    :param durable: re-attach to the app a previous try created.
    :param convox_conn_id: the Airflow connection of the rack.
    """

    template_fields = ("convox_conn_id", "app", "parameters")
    ui_color = "#d9f0d3"
    exists_ok: bool
    parameters: Mapping[str, str] | None
    lock: bool | None
    rollout_timeout: int | None

    def __init__(
        self,
        *,
        exists_ok: bool = False,
        parameters: Mapping[str, str] | None = None,
        lock: bool | None = None,
        rollout_timeout: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (parameters or lock is not None) and not self.wait_for_completion:
            raise ValueError(
                f"{type(self).__name__} {self.task_id!r}: parameters and lock are set once the "
                "app runs, so they need wait_for_completion=True"
            )
        for name, value, kind in (
            ("exists_ok", exists_ok, bool),
            ("parameters", parameters, Mapping),
            ("lock", lock, bool),
            ("rollout_timeout", rollout_timeout, int),
        ):
            check_argument(self, name, value, kind, optional=name != "exists_ok")
            setattr(self, name, value)

    def execute(self, context: Context) -> str:
        """Create the app (or find the one a previous try created) and wait; return its name."""
        self._preflight(context)
        return self._create(context, end_time=time.time() + self.timeout)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Resume after the app runs: apply the settings (deferring again if they changed
        something); the app name."""
        self._check_event(event, "app")
        # A new budget for the settings, as a deploy's promote has after its build.
        return self._create(context, end_time=time.time() + self.timeout)

    def _create(self, context: Context, *, end_time: float) -> str:
        from convox_provider.triggers.apps import ConvoxAppRunningTrigger  # noqa: PLC0415

        defer = self.wait_for_completion and self.deferrable
        waiting = dataclasses.replace(
            self._waiting(context, max(0.0, end_time - time.time())),
            on_event=self._kept(context, "creating", _CREATING),
        )
        with self._client() as client, self._outcomes():
            done = client.apps.create_and_wait(
                self.app,
                exists_ok=self.exists_ok,
                parameters=self.parameters,
                lock=self.lock,
                rollout_timeout=self.rollout_timeout,
                marker=self._retry_marker(context),
                attempted=self._recall(context, _CREATING) == self.app,
                wait=self.wait_for_completion and not defer,
                waiting=waiting,
            )
        if defer and done.pending:
            self._defer(self._trigger(ConvoxAppRunningTrigger, end_time), "execute_complete")
        return self.app


class ConvoxDeleteAppOperator(_AppOperator):
    """Delete a Convox app and wait until it is gone (``convox apps delete``).

    Refused before the DELETE is sent: a locked app (``ConvoxConflictError`` saying to unlock it
    first) and a missing app (``ConvoxNotFoundError``) unless ``missing_ok=True``. Deletion is
    asynchronous on the rack: the app reads ``deleting``, then is gone (not found twice in a
    row, as the CLI waits).

    Safe as a teardown task (``.as_teardown()``, typically with ``missing_ok=True``) and on
    retry: an app already ``deleting`` is only waited for, the DELETE is retried like a GET
    (a repeat changes nothing), and on Airflow 3.3+ a retry whose previous try's DELETE took
    and saw the app gone succeeds even without ``missing_ok``.

    XCom: the return value is True when the app existed, False when it was already gone.

    :param app: the app to delete (templated).
    :param missing_ok: succeed when there is no such app.
    :param wait_for_completion: wait until the app is gone.
    :param poll_interval: seconds between polls (also the delay before the first).
    :param timeout: seconds to wait at most.
    :param deferrable: wait on the triggerer.
    :param convox_conn_id: the Airflow connection of the rack.
    """

    template_fields = ("convox_conn_id", "app")
    ui_color = "#f4d6d2"

    def __init__(self, *, missing_ok: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_argument(self, "missing_ok", missing_ok, bool)
        self.missing_ok = missing_ok

    def execute(self, context: Context) -> bool:
        """Delete and wait; whether the app existed."""
        from convox_provider.triggers.apps import ConvoxAppDeletedTrigger  # noqa: PLC0415

        self._preflight(context)
        end_time = time.time() + self.timeout
        defer = self.wait_for_completion and self.deferrable
        waiting = self._waiting(context, self.timeout)
        deleted_before = self._recall(context, _DELETING) == self.app
        with self._client() as client, self._outcomes():
            existed = client.apps.delete_and_wait(
                self.app,
                missing_ok=self.missing_ok or deleted_before,
                wait=self.wait_for_completion and not defer,
                waiting=dataclasses.replace(
                    waiting, on_event=self._kept(context, "deleting", _DELETING)
                ),
            )
        if not existed:
            self.log.info("App %s does not exist: nothing to delete", self.app)
        elif defer:
            self._defer(self._trigger(ConvoxAppDeletedTrigger, end_time), "execute_complete")
        return existed or deleted_before

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> bool:
        """Resume once the app is gone: True, or raise for any other outcome."""
        self._check_event(event, "app")
        return True


class ConvoxRestartOperator(_AppOperator):
    """Restart every service of an app (``convox restart``) or one ``service`` (``convox
    services restart``), and wait for the rolling restart.

    Refused before any restart is sent: a missing app, an app being deleted, an unknown service
    (the message lists the app's services). The wait is the rollout wait of a promote (the app
    ``running`` twice in a row, still on its release; a rollback fails the task) followed by the
    pods: every pod that ran before is gone and each service has its count of new pods
    ``running``. A new pod that crash-loops fails the task (the rack keeps the old ones serving).

    Durable: a retried task does not restart again what its previous try restarted; it waits
    for that restart (the task state store, Airflow 3.3+; on older Airflow a retry restarts
    again, which only replaces the pods once more).

    XCom: the return value is the list of services restarted.

    :param app: the app (templated).
    :param service: the one service to restart (templated); all of them when not given.
    :param wait_for_completion: wait for the rolling restart to finish.
    :param poll_interval: seconds between polls (also the delay before the first).
    :param timeout: seconds to wait at most.
    :param deferrable: wait on the triggerer.
    :param durable: wait for the previous try's restart instead of restarting again.
    :param convox_conn_id: the Airflow connection of the rack.
    """

    template_fields = ("convox_conn_id", "app", "service")
    ui_color = "#d7e9f5"

    def __init__(self, *, service: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_argument(self, "service", service, str, optional=True)
        self.service = service

    def execute(self, context: Context) -> list[str]:
        """Restart and wait; the services restarted."""
        from convox_provider.client.workflows.apps import Restart  # noqa: PLC0415 - module doc
        from convox_provider.client.workflows.events import (  # noqa: PLC0415
            ServicesRestarted,
        )
        from convox_provider.triggers.apps import ConvoxRestartTrigger  # noqa: PLC0415

        self._preflight(context)
        end_time = time.time() + self.timeout
        defer = self.wait_for_completion and self.deferrable
        waiting = self._waiting(context, self.timeout)
        progress = waiting.on_event

        def on_event(event: WorkflowEvent) -> None:
            if progress is not None:
                progress(event)
            if isinstance(event, ServicesRestarted):
                self._remember(context, _RESTART, self._restart_record(event))

        previous = self._previous_restart(context)
        wait = self.wait_for_completion and not defer
        with self._client() as client, self._outcomes():
            if previous is not None:
                self.log.info(
                    "Waiting for the restart of %s that a previous try sent",
                    ", ".join(previous.services),
                )
                restart: Restart = previous
                if wait:
                    client.apps.wait_for_restart(restart, waiting=waiting)
            else:
                restart = client.apps.restart(
                    self.app,
                    service=self.service,
                    wait=wait,
                    waiting=dataclasses.replace(waiting, on_event=on_event),
                )
        assert isinstance(restart, Restart)
        if defer:
            trigger = self._trigger(
                ConvoxRestartTrigger,
                end_time,
                release_id=restart.release_id,
                services=list(restart.services),
                replaced=list(restart.replaced),
            )
            self._defer(trigger, "execute_complete")
        return list(restart.services)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> list[str]:
        """Resume once the restart is done: the services, or raise for any other outcome."""
        done = self._check_event(event, "services")
        return [str(name) for name in done["services"]]

    def _restart_record(self, event: ServicesRestarted) -> str:
        """The restart as kept for a later try (JSON)."""
        return json.dumps(
            {
                "app": self.app,
                "service": self.service,
                "services": list(event.services),
                "replaced": list(event.replaced),
                "release_id": event.release_id,
            }
        )

    def _previous_restart(self, context: Context) -> Restart | None:
        """The restart a previous try of this task instance sent, for the same app and
        service; None when there is none (or no task state store)."""
        from convox_provider.client.workflows.apps import Restart  # noqa: PLC0415 - module doc

        kept = self._recall(context, _RESTART)
        if kept is None:
            return None
        try:
            record = json.loads(kept)
        except ValueError:
            return None
        if record.get("app") != self.app or record.get("service") != self.service:
            return None
        return Restart(
            self.app,
            str(record.get("release_id", "")),
            tuple(record["services"]),
            tuple(record["replaced"]),
        )
