"""Release operators: ``ConvoxPromoteReleaseOperator`` and ``ConvoxRollbackOperator``."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Context

from convox_provider.client.waiting import ROLLOUT_TIMEOUT
from convox_provider.operators._assets import DeploysApp
from convox_provider.operators._base import check_argument

__all__ = ["ConvoxPromoteReleaseOperator", "ConvoxRollbackOperator"]


class _ReleaseOperator(DeploysApp):
    """A rollout of a release, waited for here, on the triggerer, or not at all."""

    template_fields: tuple[str, ...] = ("convox_conn_id", "app", "release_id")
    ui_color = "#d5ecd4"

    default_timeout = ROLLOUT_TIMEOUT

    def __init__(
        self, *, release_id: str | None = None, force: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        check_argument(self, "release_id", release_id, str, optional=True)
        check_argument(self, "force", force, bool)
        self.release_id = release_id
        self.force = force

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Resume after the rollout trigger: the release id, or raise for any other outcome."""
        return str(self._check_event(event, "release_id")["release_id"])


class ConvoxPromoteReleaseOperator(_ReleaseOperator):
    """Promote a release and wait for its rollout, as ``convox releases promote`` does.

    Unless ``force``, the promote waits for the app to be ``running`` first (the rack refuses a
    promote during another rollout); then the app must read ``running`` on this release,
    confirmed by its ready pods or a second reading (docs/rack-api.md §7.4, §5.11). A rollout
    that was rolled back raises ``AirflowFailException`` naming the app, the release promoted,
    the release the app is back on and what its pods showed. A rollout that a
    newer release replaced (someone promoted over it) skips the task (``AirflowSkipException``):
    nothing was rolled back, and what follows in the DAG is not about the app's release.

    XCom: ``release_id`` (before the rollout is waited for). Returns the release id.

    Durable: a retried task promotes the release its previous try promoted, and only waits for
    its rollout when the app already runs it.

    :param app: the Convox app.
    :param release_id: the release to promote (default: the newest release).
    :param force: promote even while another rollout is in progress.
    :param wait_for_completion: wait for the rollout to end; otherwise return once promoted.
    :param poll_interval: seconds between app status polls (at most; the first ones come sooner),
        also how long the app read on its old release is the status lag, not yet a rollback.
    :param timeout: seconds to wait at most, for a rollout in progress and this rollout.
    :param deferrable: wait on the triggerer (default ``[operators] default_deferrable``).
    :param convox_conn_id: the Airflow connection of the rack.
    """

    def execute(self, context: Context) -> str:
        """Promote; return the release id."""
        self._preflight(context)
        if self.release_id:
            self._push(context, "release_id", self.release_id)
        with self._client() as client:
            previous = self._recall(context, "release_id")
            if previous is not None:
                return self._promote_or_attach(
                    context, client, previous, force=self.force, timeout=self.timeout
                )
            return self._roll_out(
                context,
                lambda waiting, wait: client.releases.promote(
                    self.app, self.release_id or None, wait=wait, force=self.force, waiting=waiting
                ),
                timeout=self.timeout,
            )


class ConvoxRollbackOperator(_ReleaseOperator):
    """Roll back as ``convox releases rollback`` does: a NEW release from an older release's
    build and environment, promoted and waited for (the rack refuses to promote an older
    release itself, docs/rack-api.md §7.5).

    Unlike the CLI, and like :class:`ConvoxPromoteReleaseOperator`, the promote waits for a
    rollout in progress to end first (unless ``force``): a rollback task that runs right after a
    failed deploy finds the rack still rolling that deploy back, and the CLI's promote would get
    403 ``app is currently updating``.

    With ``undoing`` (the release a failed deploy made), nothing is rolled back when the app
    meanwhile runs a release newer than that one: someone else deployed since, and the task is
    skipped rather than undo their deploy.

    XCom: ``rolled_back_to`` (the older release, once chosen) and ``release_id`` (the new
    release, once created). Returns the new release id.

    Durable: a retried task promotes the release its previous try created (waiting only, when
    the app already runs it) instead of creating another.

    :param app: the Convox app.
    :param release_id: the release to go back to (default: the release listed just before the
        active one, newest first).
    :param undoing: the release this rollback undoes; when the app runs a newer one, skip.
    :param force: promote at once, even while another rollout is in progress.
    :param wait_for_completion: wait for the rollout to end; otherwise return once promoted.
    :param poll_interval: seconds between app status polls (see the promote operator).
    :param timeout: seconds to wait at most, for a rollout in progress and this rollout.
    :param deferrable: wait on the triggerer (default ``[operators] default_deferrable``).
    :param convox_conn_id: the Airflow connection of the rack.
    """

    template_fields = (*_ReleaseOperator.template_fields, "undoing")
    rollback_event = True

    def __init__(self, *, undoing: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_argument(self, "undoing", undoing, str, optional=True)
        self.undoing = undoing

    def execute(self, context: Context) -> str:
        """Roll back; return the new release's id."""
        self._preflight(context)
        with self._client() as client:
            previous = self._recall(context, "release_id")
            if previous is not None:
                self.log.info("Release %s was created by a previous try: promoting it", previous)
                target = self._recall(context, "rolled_back_to")
                if target is not None:
                    self._push(context, "rolled_back_to", target)
                return self._promote_or_attach(
                    context, client, previous, force=self.force, timeout=self.timeout
                )
            return self._roll_out(
                context,
                lambda waiting, wait: client.releases.rollback(
                    self.app,
                    self.release_id or None,
                    undoing=self.undoing or None,
                    wait_first=True,
                    wait=wait,
                    force=self.force,
                    waiting=waiting,
                ),
                timeout=self.timeout,
            )
