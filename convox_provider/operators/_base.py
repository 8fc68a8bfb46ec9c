"""The plumbing every Convox operator and sensor shares, written once.

Connection handling (a :class:`~convox_provider.hooks.convox.ConvoxHook` per task), XCom pushes,
workflow progress and build output to the task log, the deferral (absolute deadline carried to
the trigger, ``defer(timeout=...)`` slightly above it), trigger-event validation, the translation
of the client's failed/rollback/timeout errors into Airflow exceptions, ``on_kill``, and
durability (a retried task re-attaching to the remote work its previous try started).

Durability: on Airflow 3.3+ the ids of what a try starts (build, release, process) are kept in
the task state store, which outlives the try (XCom does not); the next try of the same task
instance reads them back (``durable=True``, the default). The build operators also tag the build
description with a marker derived from the DAG, task, run and map index (never the try number),
and a retry that has no build id looks for it among the newest builds: Airflow 3.1/3.2 has no
task state store, and even with one a try has no id when the answer to the build's create was
lost (a gateway timeout or a cut connection after the rack created the build). Clearing a task keeps
the store, as for Airflow's own ``ResumableJobMixin``: a cleared build task of the same run
reuses its complete build; a failed one builds again.

DAG files import the operator modules, so this module imports neither the client nor the
triggers at module level (``convox_provider.client.client`` alone costs ~90 ms), only the
client's light :mod:`~convox_provider.client.waiting`: the rest is imported when a task runs.
"""

from __future__ import annotations

import hashlib
import sys
import time
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.sdk import BaseOperator, BaseOperatorLink, Context

from convox_provider.client.errors import as_sentence
from convox_provider.client.waiting import MAX_ERRORS, ROLLOUT_TIMEOUT, WaitOptions
from convox_provider.links import APP_PAGE_KEY, ConvoxAppLink, ConvoxBuildLink, ConvoxReleaseLink
from convox_provider.triggers._events import (
    ERROR,
    FAILED,
    ROLLBACK,
    STATUSES,
    SUCCESS,
    SUPERSEDED,
    OutputLines,
    describe,
    event_for_error,
)

if TYPE_CHECKING:
    from airflow.sdk import conf
    from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

    from convox_provider.client.client import ConvoxClient
    from convox_provider.client.workflows.events import WorkflowEvent
    from convox_provider.client.workflows.promote import Rollout
    from convox_provider.hooks.convox import ConvoxHook
    from convox_provider.triggers._base import ConvoxTrigger
else:
    try:
        from airflow.sdk import conf
    except ImportError:  # Airflow 3.1: task-sdk 1.1 has no conf of its own
        from airflow.configuration import conf
    try:
        from airflow.sdk.exceptions import (
            AirflowException,
            AirflowFailException,
            AirflowSkipException,
        )
    except ImportError:  # Airflow 3.1: the exceptions live in core
        from airflow.exceptions import AirflowException, AirflowFailException, AirflowSkipException

__all__ = [
    "AirflowException",
    "AirflowFailException",
    "AirflowSkipException",
    "DEFAULT_DEFERRABLE",
    "DEFER_MARGIN",
    "ConvoxBaseOperator",
    "ConvoxTask",
    "OnEvent",
    "StartRollout",
    "check_argument",
]

DEFER_MARGIN = 60.0
"""Seconds the deferral's own timeout leaves the trigger beyond its deadline, so that the
trigger's ``timeout`` event, not Airflow's deferral timeout, normally ends the wait."""

DEFAULT_DEFERRABLE: bool = conf.getboolean("operators", "default_deferrable", fallback=False)
"""``[operators] default_deferrable``, read when the provider is imported."""

OnEvent = Callable[["WorkflowEvent"], None]
StartRollout = Callable[[WaitOptions, bool], "str | Rollout"]
"""``start(waiting, wait) -> release id``: a promote, rollback or promote-or-attach call given
its wait's options and whether to wait here."""

_SHOWN_EVENT = 200


def _warn_at_dag_line(message: str) -> None:
    """Warn naming the line of the DAG file that built the task (not Airflow's constructor
    wrappers, nor this package's ``__init__`` chain, which a ``stacklevel`` cannot skip
    reliably)."""
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith(
        ("convox_provider.", "airflow.")
    ):
        frame = frame.f_back
    warnings.warn_explicit(
        message,
        UserWarning,
        frame.f_code.co_filename,
        frame.f_lineno,
        module=frame.f_globals.get("__name__"),
        registry=frame.f_globals.setdefault("__warningregistry__", {}),
    )


_JINJA_MARKS = ("{{", "{%")
_UNSET = ("None",)


def _looks_templated(value: Any) -> bool:
    return isinstance(value, str) and any(mark in value for mark in _JINJA_MARKS)


def check_argument(
    task: BaseOperator,
    name: str,
    value: Any,
    expected: type | tuple[type, ...],
    *,
    optional: bool = False,
    task_id: str | None = None,
) -> None:
    """Refuse at DAG parse an argument of the wrong type, naming it; a Jinja string in an
    argument that is not templated is refused as such, with the templated fields listed.
    ``task_id`` names the task before ``BaseOperator.__init__`` has set it."""
    if value is None and optional:
        return
    if name in getattr(task, "template_fields", ()) and hasattr(value, "resolve"):
        return  # an XComArg (``task.output``), resolved when the task runs
    kinds = expected if isinstance(expected, tuple) else (expected,)
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if ok:
        return
    task_id = getattr(task, "task_id", None) or task_id
    owner = f"{type(task).__name__} {task_id!r}"
    wanted = " or ".join(kind.__name__ for kind in kinds) + (" or None" if optional else "")
    if _looks_templated(value):
        templated = ", ".join(getattr(task, "template_fields", ())) or "none"
        raise TypeError(
            f"{owner}: {name}={value!r} is a Jinja template, but {name} is not a templated "
            f"field, so it would never be rendered. Give {name} a {wanted} when the DAG is "
            f"written (templated fields of {type(task).__name__}: {templated})"
        )
    raise TypeError(f"{owner}: {name} must be a {wanted}, not {type(value).__name__} {value!r}")


class ConvoxTask(BaseOperator):
    """What Convox operators and sensors share; subclasses set ``convox_conn_id`` and ``app``."""

    convox_conn_id: str
    app: str
    _started_build: str | None = None
    _started_rollout: str | None = None
    _pushed: dict[str, str] | None = None
    durable: bool = True

    @cached_property
    def hook(self) -> ConvoxHook:
        """The hook of ``convox_conn_id`` (its client is created on first use)."""
        from convox_provider.hooks.convox import ConvoxHook  # noqa: PLC0415 - module doc

        return ConvoxHook(convox_conn_id=self.convox_conn_id)

    _templated: frozenset[str] = frozenset()
    """The template fields whose value was a Jinja template before the last render."""
    _pulled: frozenset[str] = frozenset()
    """Those of them whose template pulls an XCom."""

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        """Render the templates, remembering which fields held one (see :meth:`_preflight`)."""
        self._templated = frozenset(
            name for name in self.template_fields if _looks_templated(getattr(self, name, None))
        )
        self._pulled = frozenset(
            name for name in self._templated if "xcom_pull" in str(getattr(self, name))
        )
        super().render_template_fields(context, jinja_env)

    def _preflight(self, context: Context) -> None:
        """Refuse, before any request to the rack, a context that is not a running task's, a
        template that rendered to the text ``"None"`` (never a Convox id or name), and an
        ``xcom_pull`` template that rendered to ``None`` (a native render whose template means
        None on purpose, such as an empty param, is left alone)."""
        owner = f"{type(self).__name__} {self.task_id!r}"
        if not isinstance(context, Mapping) or context.get("ti") is None:
            raise AirflowException(
                f"{owner}: execute() was called without a task instance in its context, so "
                "nothing was sent to the rack. Run the task in a DAG run (in a test: "
                "dag.test(), with the convox_airflow fixture of convox_provider.testing)"
            )
        for name in sorted(self._templated):
            value = getattr(self, name, None)
            if (value is None and name in self._pulled) or (
                isinstance(value, str) and value.strip() in _UNSET
            ):
                raise AirflowException(
                    f"{owner}: the template of {name} rendered to {value!r}, so nothing was "
                    f"sent to the rack. A template that renders to None is usually an "
                    "xcom_pull of a task id or key that pushed nothing (a typo, or a task that "
                    f"did not run); check the Rendered Template of {name}"
                )
        self._step_context = context

    _step_context: Context | None = None
    """The context of the running step, once :meth:`_preflight` checked it."""

    @contextmanager
    def _client(self) -> Iterator[ConvoxClient]:
        """The hook's client for one task step, its connection pool closed afterwards; on a
        console connection the app's console page goes to XCom ``convox_app_page`` first (the
        links of :mod:`convox_provider.links`, written before any deferral)."""
        with self.hook as hook:
            client = hook.get_conn()
            page = client.config.console_app_page(self.app)
            if page is not None and self._step_context is not None:
                self._push(self._step_context, APP_PAGE_KEY, page)
            yield client

    def _push(self, context: Context, key: str, value: str) -> None:
        """Push ``value`` to XCom under ``key`` (again only when it changed)."""
        if self._pushed is None:
            self._pushed = {}
        if self._pushed.get(key) != value:
            context["ti"].xcom_push(key=key, value=value)
            self._pushed[key] = value

    def _progress(self, context: Context) -> OnEvent:
        """An ``on_event`` callback: each workflow event to the task log, ids to XCom."""

        def on_event(event: WorkflowEvent) -> None:
            level, message = describe(event)
            self.log.log(level, "%s", message)
            self._record(context, event)

        return on_event

    def _record(self, context: Context, event: WorkflowEvent) -> None:
        """Keep what an event tells about remote work in flight (ids to XCom, for ``on_kill``)."""
        from convox_provider.client.workflows import events  # noqa: PLC0415 - module doc

        if isinstance(event, events.BuildCreated):
            self._started_build = event.build_id
            self._push(context, "build_id", event.build_id)
            self._remember(context, "build_id", event.build_id)
        elif isinstance(event, events.RollbackTargetChosen):
            self._push(context, "rolled_back_to", event.release_id)
            self._remember(context, "rolled_back_to", event.release_id)
        elif isinstance(
            event, (events.PromoteSubmitted, events.PromoteNotNeeded, events.ReleaseCreated)
        ):
            self._started_rollout = event.release_id
            self._push(context, "release_id", event.release_id)
            self._remember(context, "release_id", event.release_id)

    def _task_state(self, context: Context) -> Any:
        """The task state store (kept across tries) when ``durable`` and Airflow has one."""
        return context.get("task_state_store") if self.durable else None

    def _remember(self, context: Context, key: str, value: str) -> None:
        """Keep ``value`` for a later try of this task instance (durable execution)."""
        store = self._task_state(context)
        if store is not None:
            store.set(key, value)

    def _recall(self, context: Context, key: str) -> str | None:
        """What a previous try of this task instance kept under ``key``, if anything."""
        store = self._task_state(context)
        value = store.get(key) if store is not None else None
        return value if isinstance(value, str) and value else None

    def _retry_marker(self, context: Context) -> str | None:
        """The build-description marker of this task instance when ``durable``, else None."""
        if not self.durable:
            return None
        ti = context["ti"]
        instance = "/".join(
            str(getattr(ti, name, "")) for name in ("dag_id", "task_id", "run_id", "map_index")
        )
        return "airflow-" + hashlib.sha256(instance.encode()).hexdigest()[:16]

    @contextmanager
    def _outcomes(self) -> Iterator[None]:
        """Raise a failed build or rollout as :class:`AirflowFailException` (retrying cannot help),
        a superseded rollout as :class:`AirflowSkipException` and a wait timeout as
        :class:`AirflowException`; other client errors pass unchanged, so that retry policies
        can tell auth, not-found and transient errors apart."""
        from convox_provider.client.errors import (  # noqa: PLC0415 - module doc
            ConvoxBuildFailedError,
            ConvoxRolloutEndedError,
            ConvoxWaitTimeoutError,
        )

        try:
            yield
        except (ConvoxBuildFailedError, ConvoxRolloutEndedError, ConvoxWaitTimeoutError) as exc:
            self._raise_for(event_for_error(exc))

    def _check_event(self, event: Any, id_key: str) -> dict[str, Any]:
        """Validate the event a trigger resumed this task with; return it when it is a success."""
        if event is None:
            raise AirflowException(
                f"{self.task_id} was resumed without a trigger event; the trigger's outcome is "
                "unknown, so the task cannot tell whether the wait succeeded"
            )
        if not isinstance(event, dict) or event.get("status") not in STATUSES:
            shown = repr(event)
            if len(shown) > _SHOWN_EVENT:
                shown = shown[: _SHOWN_EVENT - 3] + "..."
            raise AirflowException(
                f"{self.task_id} was resumed with an unknown trigger event {shown}; expected a "
                f"dict whose status is one of {sorted(STATUSES)}"
            )
        if event["status"] != SUCCESS:
            self._raise_for(event)
        if not event.get(id_key):
            raise AirflowException(f"{self.task_id}: the trigger's success event has no {id_key}")
        return event

    def _raise_for(self, event: dict[str, Any]) -> NoReturn:
        """Raise the Airflow exception for a non-success event.

        A superseded rollout skips the task: the app runs a newer release someone else promoted,
        so what follows in the DAG (a smoke test, a rollback on failure) is not about it.
        """
        status = event["status"]
        message = event.get("message") or "no message"
        if status == FAILED:
            tail = event.get("logs_tail") or ""
            details = f"\nLast lines of the build log:\n{tail}" if tail else ""
            raise AirflowFailException(f"{message}{details}")
        if status == ROLLBACK:
            raise AirflowFailException(as_sentence(message))
        if status == SUPERSEDED:
            raise AirflowSkipException(as_sentence(message))
        if status == ERROR:
            raise AirflowException(f"Waiting on Convox failed: {message}")
        raise AirflowException(message)

    def _defer(self, trigger: ConvoxTrigger, method_name: str) -> NoReturn:
        """Defer to ``trigger``; the deferral times out ``DEFER_MARGIN`` after its deadline.
        The trigger is told when (``deferred_at``: an event that comes sooner than
        ``[convox] resume_hold`` seconds after it is held until then)."""
        trigger.deferred_at = time.time()
        left = max(0.0, trigger.end_time - time.time())
        self.log.info(
            "Deferring: waiting on the triggerer for %s. A triggerer must be running "
            "(`airflow triggerer`); without one the task stays deferred until %s",
            trigger.subject,
            datetime.fromtimestamp(trigger.end_time + DEFER_MARGIN, timezone.utc).isoformat(
                timespec="seconds"
            ),
        )
        self.defer(
            trigger=trigger,
            method_name=method_name,
            timeout=timedelta(seconds=left + DEFER_MARGIN),
        )


class ConvoxBaseOperator(ConvoxTask):
    """Base of the Convox operators: submit work, then wait here, on the triggerer, or not at all.

    :param app: the Convox app.
    :param convox_conn_id: the Airflow connection of the rack.
    :param wait_for_completion: wait for the remote work to finish; otherwise return once it
        was submitted.
    :param poll_interval: seconds between status polls while waiting.
    :param timeout: seconds to wait at most (the wait's budget, not the task's
        ``execution_timeout``; default ``default_timeout``); carried to the trigger as an
        absolute deadline.
    :param deferrable: wait on the triggerer instead of the worker (default:
        ``[operators] default_deferrable``).
    :param durable: a retried task re-attaches to the build, release or process its previous
        try started instead of starting another (see the module docstring).
    """

    default_timeout: float = ROLLOUT_TIMEOUT
    """The wait budget when ``timeout`` is not given, in seconds."""

    operator_extra_links: Collection[BaseOperatorLink] = (
        ConvoxAppLink(),
        ConvoxBuildLink(),
        ConvoxReleaseLink(),
    )
    """Console pages of the app, its build and release (:mod:`convox_provider.links`)."""

    _waits_when_not_completing = False
    """Whether the operator waits on something (and may defer) even without
    ``wait_for_completion`` (a deploy waits for its build before it can promote)."""

    def __init__(
        self,
        *,
        app: str,
        convox_conn_id: str = "convox_default",
        wait_for_completion: bool = True,
        poll_interval: float = 5.0,
        timeout: float | None = None,
        deferrable: bool | None = None,
        durable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_argument(self, "convox_conn_id", convox_conn_id, str)
        check_argument(self, "app", app, str)
        check_argument(self, "wait_for_completion", wait_for_completion, bool)
        check_argument(self, "poll_interval", poll_interval, (int, float))
        check_argument(self, "timeout", timeout, (int, float), optional=True)
        check_argument(self, "deferrable", deferrable, bool, optional=True)
        check_argument(self, "durable", durable, bool)
        if timeout is None:
            timeout = self.default_timeout
        if not poll_interval > 0:
            raise ValueError(f"poll_interval must be a number of seconds above 0: {poll_interval}")
        if not timeout >= 0:
            raise ValueError(f"timeout must be a number of seconds, 0 or more: {timeout}")
        self.app = app
        self.convox_conn_id = convox_conn_id
        self.wait_for_completion = wait_for_completion
        self.poll_interval = float(poll_interval)
        self.timeout = float(timeout)
        # None: not given (nor in default_args), so ``[operators] default_deferrable`` applies
        # and a DAG that never asked to defer is not warned about it.
        self.deferrable = DEFAULT_DEFERRABLE if deferrable is None else deferrable
        self.durable = durable
        if deferrable and not wait_for_completion and not self._waits_when_not_completing:
            _warn_at_dag_line(
                f"{type(self).__name__} {self.task_id!r}: wait_for_completion is False, so "
                "nothing is waited for and deferrable=True has no effect"
            )

    @contextmanager
    def _output(self) -> Iterator[Callable[[bytes], None]]:
        """An ``on_output`` callback sending build output to the task log, line by line."""
        lines = OutputLines(self._log_line)
        try:
            yield lines.feed
        finally:
            lines.close()

    def _log_line(self, line: str) -> None:
        self.log.info("%s", line)

    def _waiting(self, context: Context, timeout: float) -> WaitOptions:
        """The options of this task's waits: its ``poll_interval`` (also the delay before a
        rollout's first poll: the app's status lags a promote, docs/rack-api.md §5.1), the
        shared :data:`~convox_provider.client.waiting.MAX_ERRORS`, progress to the task log."""
        return WaitOptions(
            timeout=timeout,
            poll_interval=self.poll_interval,
            initial_delay=self.poll_interval,
            max_errors=MAX_ERRORS,
            on_event=self._progress(context),
        )

    def _roll_out(self, context: Context, start: StartRollout, *, timeout: float) -> str:
        """Promote (or roll back) with ``start``; wait here, defer, or return once submitted.

        The deadline is fixed before the submit: ``timeout`` covers the wait for another rollout
        to end (promote without force) as well as this one.
        """
        from convox_provider.triggers.releases import ConvoxReleaseTrigger  # noqa: PLC0415

        end_time = time.time() + timeout
        defer = self.wait_for_completion and self.deferrable
        waiting = self._waiting(context, timeout)
        with self._outcomes():
            started = start(waiting, self.wait_for_completion and not defer)
        release_id, pending = (
            (started, True) if isinstance(started, str) else (started.release_id, started.pending)
        )
        self._push(context, "release_id", release_id)
        if defer and pending:
            trigger = ConvoxReleaseTrigger(
                convox_conn_id=self.convox_conn_id,
                app=self.app,
                release_id=release_id,
                end_time=end_time,
                poll_interval=waiting.poll_interval,
                initial_delay=waiting.initial_delay,
                max_errors=waiting.max_errors,
                actor=self.hook.task_actor(),
            )
            self._defer(trigger, "execute_complete")
        return release_id

    def _promote_or_attach(
        self,
        context: Context,
        client: ConvoxClient,
        release_id: str,
        *,
        force: bool,
        timeout: float,
    ) -> str:
        """Promote ``release_id`` and see its rollout through (:meth:`_roll_out`), unless the app
        already has it (``client.releases.promote_or_attach``): so a retried task re-attaches to
        the rollout its previous try started."""
        return self._roll_out(
            context,
            lambda waiting, wait: client.releases.promote_or_attach(
                self.app, release_id, wait=wait, force=force, waiting=waiting
            ),
            timeout=timeout,
        )

    def on_kill(self) -> None:
        """Stop the build or the rollout this task started, if it is still going (best effort)."""
        from convox_provider.hooks.convox import ConvoxHook  # noqa: PLC0415 - module doc

        build_id, release_id = self._started_build, self._started_rollout
        if build_id is None and release_id is None:
            return
        try:
            with ConvoxHook(convox_conn_id=self.convox_conn_id) as hook:
                client = hook.get_conn()
                if build_id is not None and client.builds.cancel(self.app, build_id):
                    self.log.info("Stopped build %s (its build pod is deleted)", build_id)
                if release_id is not None and client.apps.cancel_rollout(self.app, release_id):
                    self.log.info("Cancelled the rollout of release %s", release_id)
        except Exception as exc:
            self.log.warning("Could not cancel the work on app %s: %s", self.app, exc)
