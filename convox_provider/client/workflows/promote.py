"""Promote a release and wait for its rollout; roll back to an older one.

The CLI's algorithms: docs/rack-api.md §7.4-7.5.

Promote follows the CLI: newest release when no id is given; wait for the app to be ``running``
unless ``force``; ``POST …/promote`` with ``force`` always sent; then wait for the rollout's end,
failing on ``rollback`` and on the app back on another release (Reverted and Failure rollouts
both read ``running``, §5.1). The end is ``running`` on the promoted id confirmed by its ready
pods or by a second reading, polled sooner than the CLI does but as safe (§5.11).

Rollback is not a promote of the old release (the rack refuses releases older than the active
one): it creates a NEW release from the old release's build and environment and promotes that.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from convox_provider.client.encoding import segment
from convox_provider.client.errors import (
    ConvoxForbiddenError,
    ConvoxInputError,
    ConvoxSupersededError,
    ConvoxWorkflowError,
)
from convox_provider.client.operation import D, Flow, Resource, call, operation
from convox_provider.client.resources import apps as app_routes
from convox_provider.client.resources import releases as release_routes
from convox_provider.client.status import AppStatus
from convox_provider.client.waiting import ROLLOUT_WAIT, WaitOptions, wait_options
from convox_provider.client.workflows.events import (
    EventCallback,
    PromoteNotNeeded,
    PromoteSubmitted,
    ReleaseCreated,
    RollbackTargetChosen,
)
from convox_provider.client.workflows.waits import (
    Deadline,
    RolloutReading,
    app_running,
    emit,
    is_newer_release,
    rollout_reading,
)

__all__ = [
    "ROLLBACK_SEARCH",
    "PromoteOptions",
    "ReleaseWorkflows",
    "Rollout",
    "promote_release",
    "release_before_active",
]

_SUBMIT_ATTEMPTS = 3


@dataclass(frozen=True)
class PromoteOptions:
    """How to promote and wait (shared by promote, rollback and env set); the wait's own
    options are one :class:`~convox_provider.client.waiting.WaitOptions`."""

    waiting: WaitOptions = field(default=ROLLOUT_WAIT)
    wait: bool = True
    force: bool = False
    rollout_timeout: int | None = None
    min_count: int | None = None
    max_count: int | None = None
    watch_processes: bool = True
    idle: bool | None = None


def promote_release(
    resource: Resource[Any],
    app: str,
    release_id: str | None,
    options: PromoteOptions,
    *,
    wait_first: bool = True,
) -> Flow[str]:
    """Flow: §7.4 steps 1-5 (``wait_first=False``: §7.5 step 3, no wait before the promote).

    One deadline covers the wait before the promote and the rollout after it.
    """
    waiting = options.waiting
    deadline = yield from Deadline.start(waiting.timeout)
    if release_id is None:
        newest = yield from call(release_routes.list(app, limit=1))
        if not newest:
            raise ConvoxWorkflowError(f"app {app} has no release to promote")
        release_id = newest[0].id
    for attempt in range(1, _SUBMIT_ATTEMPTS + 1):
        if wait_first and not options.force:
            current = yield from call(app_routes.get(app))
            if current.app_status is not AppStatus.RUNNING:
                # Someone else's rollout: wait it out, even through its rollback.
                yield from app_running(
                    resource,
                    app,
                    deadline,
                    dataclasses.replace(waiting, initial_delay=waiting.poll_interval),
                    fail_on_rollback=False,
                )
        try:
            yield from call(
                release_routes.submit_promote(
                    app,
                    release_id,
                    force=options.force,
                    timeout=options.rollout_timeout,
                    min_count=options.min_count,
                    max_count=options.max_count,
                    idle=options.idle,
                )
            )
        except ConvoxForbiddenError as exc:
            # 403 "app is currently updating": a rollout started since the check; the rack
            # refused this promote outright, so waiting and sending it again is safe.
            retry = wait_first and not options.force and "updating" in exc.message
            if not retry or attempt == _SUBMIT_ATTEMPTS:
                raise
            continue
        break
    emit(waiting.on_event, PromoteSubmitted(app, release_id, options.force))
    if options.wait:
        yield from app_running(
            resource,
            app,
            deadline,
            waiting,
            release_id=release_id,
            watch_processes=options.watch_processes,
        )
    return release_id


@dataclass(frozen=True)
class Rollout:
    """What :meth:`ReleaseWorkflows.promote_or_attach` did with ``release_id``: ``pending`` when
    its rollout is under way and was not waited for (``wait=False``), so a caller that waits
    elsewhere (an Airflow trigger) still has to; False once the app runs it."""

    release_id: str
    pending: bool


def promote_or_attach(
    resource: Resource[Any], app: str, release_id: str, options: PromoteOptions
) -> Flow[Rollout]:
    """Flow: :meth:`ReleaseWorkflows.promote_or_attach`."""
    waiting = options.waiting
    current = yield from call(app_routes.get(app))
    if current.release == release_id and current.app_status is AppStatus.RUNNING:
        emit(waiting.on_event, PromoteNotNeeded(app, release_id, "running"))
        return Rollout(release_id, pending=False)
    if current.release != release_id or current.app_status is not AppStatus.UPDATING:
        yield from promote_release(resource, app, release_id, options)
        return Rollout(release_id, pending=not options.wait)
    emit(waiting.on_event, PromoteNotNeeded(app, release_id, "rolling out"))
    if not options.wait:
        return Rollout(release_id, pending=True)
    deadline = yield from Deadline.start(waiting.timeout)
    # The rollout started a while ago: its status is current, so the first poll comes at once.
    settled = dataclasses.replace(waiting, initial_delay=0.0)
    yield from app_running(resource, app, deadline, settled, release_id=release_id)
    return Rollout(release_id, pending=False)


ROLLBACK_SEARCH = 100
"""Releases listed (newest first) to find the one before the active release."""


def release_before_active(resource: Resource[Any], app: str) -> Flow[str]:
    """Flow: the release listed just before the app's active one (newest first, §5.10): what a
    rollback goes back to when it is not told."""
    current = yield from call(app_routes.get(app))
    active = current.release
    newest = yield from call(release_routes.list(app, limit=ROLLBACK_SEARCH))
    listed = [release.id for release in newest]
    if active not in listed:
        raise ConvoxWorkflowError(
            f"app {app} runs release {active or '(none)'}, which is not among its"
            f" {len(listed)} newest releases; say which release to roll back to"
        )
    position = listed.index(active)
    if position + 1 == len(listed):
        raise ConvoxWorkflowError(
            f"app {app} has no release older than its active release {active} to roll back to"
        )
    return listed[position + 1]


def _refuse_over_newer(resource: Resource[Any], app: str, undoing: str) -> Flow[None]:
    """Flow: raise :class:`ConvoxSupersededError` when the app runs a release newer than
    ``undoing``, the release a rollback was asked to undo (someone deployed since)."""
    current = yield from call(app_routes.get(app))
    active = current.release
    if active and (yield from is_newer_release(resource, app, active, than=undoing)):
        raise ConvoxSupersededError(
            f"app {app} runs release {active}, created after release {undoing} that this"
            " rollback was to undo: someone deployed since, and rolling back would undo their"
            " deploy. Nothing was changed",
            app=app,
            release_id=undoing,
            active_release=active,
        )


def _rollback(
    resource: Resource[Any],
    app: str,
    to_release: str | None,
    options: PromoteOptions,
    *,
    wait_first: bool,
    undoing: str | None,
) -> Flow[str]:
    if undoing is not None:
        yield from _refuse_over_newer(resource, app, undoing)
    if not options.force and not wait_first:
        # The CLI creates the release and then gets 403 from the promote, leaving it behind.
        current = yield from call(app_routes.get(app))
        if current.app_status.is_rolling_out:
            raise ConvoxWorkflowError(
                f"app {app} is {current.status} (a rollout is in progress), so the rack would "
                "refuse the rollback's promote with 403 'app is currently updating'; nothing was "
                "created. Pass wait_first=True to wait for the rollout to end first, or "
                "force=True to promote at once"
            )
    if to_release is None:
        to_release = yield from release_before_active(resource, app)
    emit(options.waiting.on_event, RollbackTargetChosen(app, to_release))
    old = yield from call(release_routes.get(app, to_release))
    if not old.build:
        raise ConvoxWorkflowError(
            f"release {to_release} of app {app} has no build; there is nothing to roll back to"
        )
    # The env is copied as the raw string, byte for byte; never the old id promoted (§8 item 2).
    new = yield from call(release_routes.create(app, build=old.build, env=old.env))
    emit(options.waiting.on_event, ReleaseCreated(app, new.id, new.build, new.description))
    try:
        return (yield from promote_release(resource, app, new.id, options, wait_first=wait_first))
    except ConvoxForbiddenError as exc:
        if "updating" not in exc.message:
            raise
        raise ConvoxForbiddenError(
            exc.message,
            status_code=exc.status_code,
            request_id=exc.request_id,
            method=exc.method,
            path=exc.path,
            hint=(
                f"a rollout started meanwhile. Release {new.id} (the rollback) was created but "
                f"not promoted: promote it once the app is running (releases.promote), or roll "
                "back with wait_first=True or force=True"
            ),
        ) from None


class ReleaseWorkflows(Resource[D]):
    """Workflows of ``client.releases``."""

    @operation
    def is_newer(self, app: str, release_id: str, *, than: str) -> Flow[bool]:
        """Whether release ``release_id`` was created after release ``than`` (two GETs; False
        for the same release). An app on a newer release than the one a wait is about was
        promoted over it (superseded); on an older one, it was rolled back."""
        segment(app, kind="app name")
        segment(release_id, kind="release id")
        segment(than, kind="release id")
        return is_newer_release(self, app, release_id, than)

    @operation
    def rollout_state(
        self, app: str, release_id: str, *, seen: bool = False
    ) -> Flow[RolloutReading]:
        """One look at the rollout of ``release_id``, for a caller that polls by itself (an
        Airflow sensor's poke); see :class:`~.waits.RolloutReading` for what it may read.

        The rollout ended on another release raises as the rollout waits do: a ``rollback``
        status, or (with ``seen``: this release's rollout was already seen to start) a
        ``running`` app on an older release is :class:`ConvoxRollbackError`; an app on a newer
        release than this one, once seen or while rolling back, :class:`ConvoxSupersededError`
        (nothing was rolled back). Before the rollout was seen, ``running`` on an older release
        is only :attr:`~.waits.RolloutReading.PENDING` (status and ``release`` lag a promote,
        §5.1), and ``running`` on a newer one is :attr:`~.waits.RolloutReading.OLDER`.
        """
        segment(app, kind="app name")
        segment(release_id, kind="release id")
        return rollout_reading(self, app, release_id, seen=seen)

    @operation
    def promote_or_attach(
        self,
        app: str,
        release_id: str,
        *,
        wait: bool = True,
        force: bool = False,
        waiting: WaitOptions = ROLLOUT_WAIT,
    ) -> Flow[Rollout]:
        """Promote ``release_id`` as :meth:`promote` does, unless the app already has it: what a
        retried task does, so that it re-attaches to the rollout its previous try started.

        The app running ``release_id`` already is done; the app ``updating`` on it has that
        rollout waited for (with ``wait``; first poll at once), never promoted again; a
        :class:`~.events.PromoteNotNeeded` event says which. Otherwise it is promoted and,
        with ``wait``, waited for. The wait's options (one
        :class:`~convox_provider.client.waiting.WaitOptions`) and errors are those of
        :meth:`promote`.
        """
        options = PromoteOptions(
            wait_options({"waiting": waiting}, ROLLOUT_WAIT), wait=wait, force=force
        )
        segment(app, kind="app name")
        segment(release_id, kind="release id")
        return promote_or_attach(self, app, release_id, options)

    @operation
    def promote(
        self,
        app: str,
        release_id: str | None = None,
        *,
        wait: bool = True,
        force: bool = False,
        timeout: float = ROLLOUT_WAIT.timeout,
        poll_interval: float = ROLLOUT_WAIT.poll_interval,
        initial_delay: float = ROLLOUT_WAIT.initial_delay,
        max_errors: int = ROLLOUT_WAIT.max_errors,
        rollout_timeout: int | None = None,
        min_count: int | None = None,
        max_count: int | None = None,
        idle: bool | None = None,
        development: bool | None = None,
        watch_processes: bool = True,
        on_event: EventCallback | None = None,
        waiting: WaitOptions | None = None,
    ) -> Flow[str]:
        """Promote a release (default: the newest) and wait for its rollout; return its id.

        The official SDK's arguments are taken: ``idle`` is sent to the rack; ``development``
        is accepted and not sent, since the rack ignores it (§8 item 10). Its ``timeout`` was
        the rack's rollout deadline; here ``timeout`` bounds the whole wait, and the rack's
        deadline is ``rollout_timeout``.

        As the CLI does (docs/rack-api.md §7.4): unless ``force``, wait for the app to be
        ``running`` first (the rack answers 403 ``app is currently updating`` otherwise; a 403
        caused by a rollout that started in between is waited out and the promote sent again);
        promote with ``force`` always sent; then, with ``wait``, poll the app after
        ``first_interval`` (0.25 s), each pause 1.5 times longer up to ``poll_interval``, until
        it reads ``running`` on this release confirmed by the release's ready pods or by the
        next reading (docs/rack-api.md §5.11). The status lags the promote by a moment: for
        ``initial_delay`` seconds the app still on its old release is not yet a rollback (keep
        it at a few seconds on a real rack).
        A ``rollback`` reading, or ``app.release`` older than this release, raises
        :class:`ConvoxRollbackError`; a final ``app.release`` newer than it (someone promoted
        over this rollout) raises :class:`ConvoxSupersededError`. ``timeout`` (seconds,
        absolute from the start) covers the wait before and after the promote:
        :class:`ConvoxWaitTimeoutError`. Transient errors
        are tolerated up to ``max_errors`` consecutive failed polls. ``rollout_timeout`` is the
        rack's own rollout deadline in seconds (rack default 3000), ``min_count``/``max_count``
        override the rolling-update percentages. ``watch_processes`` reports pod status changes
        as events. The promote request itself is never repeated after an ambiguous failure.
        ``waiting`` gives the five wait options as one
        :class:`~convox_provider.client.waiting.WaitOptions` instead of their keywords.
        """
        options = PromoteOptions(
            wait_options(locals(), ROLLOUT_WAIT),
            wait=wait,
            force=force,
            rollout_timeout=rollout_timeout,
            min_count=min_count,
            max_count=max_count,
            watch_processes=watch_processes,
            idle=idle,
        )
        del development  # accepted for the official SDK's callers; the rack ignores it
        segment(app, kind="app name")
        if release_id is not None:
            segment(release_id, kind="release id")
        return promote_release(self, app, release_id, options)

    @operation
    def rollback(
        self,
        app: str,
        to_release: str | None = None,
        *,
        release_id: str | None = None,
        undoing: str | None = None,
        wait: bool = True,
        force: bool = False,
        wait_first: bool = False,
        timeout: float = ROLLOUT_WAIT.timeout,
        poll_interval: float = ROLLOUT_WAIT.poll_interval,
        initial_delay: float = ROLLOUT_WAIT.initial_delay,
        max_errors: int = ROLLOUT_WAIT.max_errors,
        rollout_timeout: int | None = None,
        watch_processes: bool = True,
        on_event: EventCallback | None = None,
        waiting: WaitOptions | None = None,
    ) -> Flow[str]:
        """Roll back to ``to_release``: create a new release from its build and environment and
        promote that; return the NEW release id.

        Without ``to_release``, the release listed just before the active one (newest first)
        is the target. With ``undoing`` (the release this rollback is meant to undo), nothing
        is done when the app meanwhile runs a newer release than that one: someone deployed
        since, and :class:`ConvoxSupersededError` says so instead of undoing their deploy.

        The official SDK promotes the old id, which the rack refuses (400 ``can not promote an
        older release, try rollback``, §8 item 2); this does what ``convox releases rollback``
        does (§7.5). Like the CLI, by default the promote is sent without first waiting for the
        app to be ``running``: during a rollout it fails with 403 unless ``force``. With
        ``wait_first`` (and no ``force``) it waits for a rollout in progress to end first, as
        :meth:`promote` does: what a rollback right after a failed deploy needs, since the rack
        is then still rolling that deploy back. The wait and its options are those of
        :meth:`promote` (``waiting`` included); ``timeout`` covers both waits. ``release_id``
        is the official SDK's name of ``to_release`` (give one of them).
        """
        if release_id is not None:
            if to_release is not None and to_release != release_id:
                raise ConvoxInputError("give to_release or release_id, not both")
            to_release = release_id
        options = PromoteOptions(
            wait_options(locals(), ROLLOUT_WAIT),
            wait=wait,
            force=force,
            rollout_timeout=rollout_timeout,
            watch_processes=watch_processes,
        )
        segment(app, kind="app name")
        for given in (to_release, undoing):
            if given is not None:
                segment(given, kind="release id")
        return _rollback(self, app, to_release, options, wait_first=wait_first, undoing=undoing)
