"""``ConvoxApprovalOperator``: Airflow's approval task, showing what a promote would change.

The change is read by the client (``client.releases.change``, :mod:`convox_provider.client.
workflows.changes`); this module only renders it as the approval's Markdown body and hands the
rest to the standard provider's :class:`~airflow.providers.standard.operators.hitl.
ApprovalOperator`: on Airflow 3.3 the task then waits in the ``awaiting_input`` state (no
triggerer), on 3.1 and 3.2 it defers to the ``HITLTrigger`` (a triggerer must run). The
approver answers in the UI's Required Actions page or through the HITL REST API.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Context

from convox_provider.operators._base import (
    AirflowFailException,
    AirflowSkipException,
    ConvoxTask,
    check_argument,
)

if TYPE_CHECKING:
    from convox_provider.client.workflows.changes import ReleaseChange, ReleaseSide

__all__ = ["ConvoxApprovalOperator", "change_markdown"]

_FENCE = "```"


def _age(span: timedelta | None) -> str:
    if span is None:
        return "unknown"
    seconds = max(0, int(span.total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _cell(text: str) -> str:
    """``text`` safe in one Markdown table cell (the build description is free text)."""
    flat = " ".join(text.split()).replace("|", "\\|")
    return flat or "—"


def _column(change: ReleaseChange, side: ReleaseSide | None) -> list[str]:
    if side is None:
        return ["(none)"] * 7
    return [
        f"`{side.release_id}`",
        f"`{side.build_id}`",
        _cell(side.build_description),
        f"`{side.git_sha}`" if side.git_sha else "—",
        _age(change.age(side)),
        f"{side.app} on {_cell(side.rack)}",
        side.built.isoformat(timespec="seconds") if side.built else "—",
    ]


def change_markdown(change: ReleaseChange, intro: str | None = None) -> str:
    """The approval body: ``intro``, then the change as Markdown (keys, never values)."""
    lines = [intro.strip(), ""] if intro and intro.strip() else []
    if change.unchanged:
        lines += [f"**Nothing would change:** {change.unchanged}.", ""]
    rows = ["Release", "Build", "Build description", "Git sha", "Release age", "App", "Built"]
    candidate = _column(change, change.candidate)
    active = _column(change, change.active)
    lines += ["| | Candidate | Active |", "| --- | --- | --- |"]
    lines += [
        f"| {row} | {new} | {old} |" for row, new, old in zip(rows, candidate, active, strict=True)
    ]
    lines += ["", "**Environment** (keys only; values are never shown)", ""]
    if change.cross_rack:
        lines += [
            f"The candidate is on another rack: a copy would run with the environment of"
            f" release `{change.env_release or '(none)'}` of app {change.app} on"
            f" {_cell(change.rack)} (the app's newest release, which a build import forks).",
            "",
        ]
    groups = (
        ("Added", change.env_added),
        ("Removed", change.env_removed),
        ("Changed", change.env_changed),
    )
    listed = [
        f"- {name}: " + ", ".join(f"`{key}`" for key in keys) for name, keys in groups if keys
    ]
    lines += listed or ["- no change"]
    lines += ["", "**Manifest**", ""]
    if change.manifest_diff:
        lines += [f"{_FENCE}diff", change.manifest_diff.rstrip("\n"), _FENCE]
    else:
        lines += ["- no change"]
    return "\n".join(lines) + "\n"


class ConvoxApprovalOperator(ConvoxTask, ApprovalOperator):
    """Ask a person to approve promoting a release, with what the promote would change in view.

    Before anyone is asked, the candidate release and the app's active release are read
    (``client.releases.change``): the approval's body shows both releases' build ids,
    descriptions, git shas and ages, the environment keys added, removed and changed (never a
    value) and a diff of the manifests. With ``source_conn_id`` the candidate is a release on
    another rack (a staging release a later task copies with ``ConvoxCopyBuildOperator``); the
    environment shown is then the one a copy would run with: the target app's newest
    release's (docs/rack-api.md §4.4.1).

    Refused before anyone is asked (``ConvoxInputError``): an app that does not exist, a
    candidate release that does not exist or has no build, a candidate older than the active
    release on the same rack. A candidate that changes nothing (it is the active release, or
    the active release runs a copy of its build with the same environment) skips the task
    and, by their default trigger rule, the tasks after it, unless ``skip_when_unchanged`` is
    False: then the approval is asked, its body saying so.

    "Reject" skips the downstream tasks, or fails the task with ``fail_on_reject=True``
    (Airflow's ``ApprovalOperator`` options, as are ``response_timeout``, ``defaults``,
    ``assigned_users`` and ``notifiers``). On Airflow 3.3 the task waits in the
    ``awaiting_input`` state; on 3.1 and 3.2 it defers, so a triggerer must be running.

    "Approve" is checked against the change read again when the answer comes: when the change
    is no longer the one shown (someone promoted, or the environment a copy would run changed),
    the task fails (``AirflowFailException``), so that nobody's approval covers a change they
    did not see.

    XCom: ``release_id`` (the candidate) and ``active_release`` (``""`` when none) once the
    change is read, and ``change`` (the
    :attr:`~convox_provider.client.workflows.changes.ReleaseChange.fingerprint` of the change
    shown: ids and keys hashed) when the approval is asked; the return value is Airflow's
    approval payload (chosen option, who, when).

    :param app: the Convox app the release would be promoted on.
    :param release_id: the candidate release (templated; e.g. a deploy task's ``release_id``).
    :param convox_conn_id: the Airflow connection of the rack of ``app``.
    :param source_conn_id: the connection of the rack the candidate is on (default
        ``convox_conn_id``).
    :param source_app: the candidate's app on that rack (default ``app``).
    :param subject: the approval's headline (default: ``Promote release <id> of <app>?``, plus
        ``on <rack>`` for a candidate on another rack).
    :param body: Markdown shown above the change.
    :param skip_when_unchanged: skip instead of asking when the promote would change nothing.
    """

    template_fields = (
        "subject",
        "body",
        "convox_conn_id",
        "app",
        "release_id",
        "source_conn_id",
        "source_app",
    )
    ui_color = "#fdf1c9"

    def __init__(
        self,
        *,
        app: str,
        release_id: str,
        convox_conn_id: str = "convox_default",
        source_conn_id: str | None = None,
        source_app: str | None = None,
        subject: str | None = None,
        skip_when_unchanged: bool = True,
        **kwargs: Any,
    ) -> None:
        task_id = kwargs.get("task_id")
        for name, value in (("app", app), ("release_id", release_id)):
            check_argument(self, name, value, str, task_id=task_id)
        check_argument(self, "convox_conn_id", convox_conn_id, str, task_id=task_id)
        for name, given in (("source_conn_id", source_conn_id), ("source_app", source_app)):
            check_argument(self, name, given, str, optional=True, task_id=task_id)
        check_argument(self, "subject", subject, str, optional=True, task_id=task_id)
        check_argument(self, "skip_when_unchanged", skip_when_unchanged, bool, task_id=task_id)
        super().__init__(subject=subject or "Promote a Convox release?", **kwargs)
        self._default_subject = subject is None
        self.app, self.release_id, self.convox_conn_id = app, release_id, convox_conn_id
        self.source_conn_id, self.source_app = source_conn_id, source_app
        self.skip_when_unchanged = skip_when_unchanged

    def _read_change(self) -> ReleaseChange:
        """``client.releases.change`` of the candidate, through one or two connections."""
        from convox_provider.hooks.convox import ConvoxHook  # noqa: PLC0415 - see _base

        source_conn = self.source_conn_id or self.convox_conn_id
        with self._client() as client, contextlib.ExitStack() as stack:
            source = None
            if source_conn != self.convox_conn_id:
                source = stack.enter_context(ConvoxHook(convox_conn_id=source_conn)).get_conn()
            return client.releases.change(
                self.app, self.release_id, source=source, source_app=self.source_app or None
            )

    def execute(self, context: Context) -> Any:
        """Read the change, refuse bad input, then ask for the approval (Airflow's execute)."""
        self._preflight(context)
        change = self._read_change()
        active = change.active.release_id if change.active is not None else ""
        self._push(context, "release_id", change.candidate.release_id)
        self._push(context, "active_release", active)
        self.log.info(
            "Release %s would replace %s on app %s: environment keys %d added, %d removed,"
            " %d changed; manifest %s",
            change.candidate.release_id,
            active or "no release",
            self.app,
            len(change.env_added),
            len(change.env_removed),
            len(change.env_changed),
            "changed" if change.manifest_diff else "unchanged",
        )
        if change.unchanged and self.skip_when_unchanged:
            raise AirflowSkipException(
                f"Nothing to approve: {change.unchanged}, so promoting it would change nothing"
                " (pass skip_when_unchanged=False to ask anyway)"
            )
        self._push(context, "change", change.fingerprint)
        if self._default_subject:
            where = f" on {change.rack}" if change.cross_rack else ""
            self.subject = f"Promote release {change.candidate.release_id} of {self.app}{where}?"
        self.body = change_markdown(change, self.body)
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Resume with the answer (Airflow's ``ApprovalOperator``); an approval is then checked
        against the change read again, and refused when the change is no longer the one shown."""
        answer = super().execute_complete(context=context, event=event)
        if answer.get("chosen_options") != [self.APPROVE]:
            return answer
        from convox_provider.client.errors import ConvoxInputError  # noqa: PLC0415 - see _base

        shown = context["ti"].xcom_pull(task_ids=self.task_id, key="change")
        try:
            now = self._read_change()
        except ConvoxInputError as exc:  # e.g. a newer release was promoted meanwhile
            moved = str(exc)
        else:
            moved = (
                now.differs_from(shown)
                if isinstance(shown, str)
                else "what was shown was not recorded (no XCom 'change' of this task)"
            )
        if moved:
            raise AirflowFailException(
                f"Approved, but the change is no longer the one shown: {moved}. The tasks after"
                " this one do not run; run the DAG again to approve the change as it is now"
            )
        return answer
