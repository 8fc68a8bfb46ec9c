"""Set and unset environment variables safely (docs/rack-api.md §4.4, §5.3, §7.3, §8 items 5-6).

A change is a new release: read the NEWEST release (or the one asked for), apply the change,
create a release with the whole environment and ``parent-release`` pinned to the release read, so
the rack forks the build from it and not from whatever became newest in the meantime. The rack
has no compare-and-set, so after creating, the newest releases are listed: when another writer
created a release after the one read and the newest release lacks this change, the change is
applied again on top of the newest release (bounded by ``max_attempts``). Values never appear in
events, errors or logs.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from typing import Any

from convox_provider.client.encoding import segment, validate_env, validate_env_key
from convox_provider.client.errors import ConvoxInputError, ConvoxWorkflowError
from convox_provider.client.models import Release
from convox_provider.client.operation import D, Flow, Resource, call, operation
from convox_provider.client.resources import releases as release_routes
from convox_provider.client.resources.environment import read_environment
from convox_provider.client.waiting import ROLLOUT_WAIT, WaitOptions, wait_options
from convox_provider.client.workflows.events import (
    EnvironmentConflict,
    EnvironmentUnchanged,
    EventCallback,
    ReleaseCreated,
)
from convox_provider.client.workflows.promote import PromoteOptions, promote_release
from convox_provider.client.workflows.waits import emit

__all__ = ["EnvironmentChange", "EnvironmentWorkflows"]

_RECENT = 20


class EnvironmentChange:
    """Keys to set and keys to remove, validated when made; ``repr`` shows keys only."""

    def __init__(
        self, changes: Mapping[str, str] | None, unset: Iterable[str], *, replace: bool
    ) -> None:
        if changes is not None and not isinstance(changes, Mapping):
            raise ConvoxInputError(
                f"changes must be a mapping of KEY to value, got {type(changes).__name__}"
            )
        if isinstance(unset, (str, bytes)):
            raise ConvoxInputError("unset must be a collection of keys, not a single string")
        self.set: dict[str, str] = dict(changes or {})
        self.unset: tuple[str, ...] = tuple(dict.fromkeys(unset))
        self.replace = replace
        validate_env(self.set)
        for key in self.unset:
            validate_env_key(key)
        both = sorted(builtins.set(self.set) & builtins.set(self.unset))
        if both:
            raise ConvoxInputError(f"keys both set and unset: {', '.join(both)}")
        if replace and self.unset:
            raise ConvoxInputError("replace=True writes exactly the given changes; drop unset")
        if not replace and not self.set and not self.unset:
            raise ConvoxInputError("nothing to change: give variables to set or keys to unset")

    @property
    def keys(self) -> tuple[str, ...]:
        """Every key this change touches, sorted."""
        return tuple(sorted((*self.set, *self.unset)))

    def apply(self, env: Mapping[str, str]) -> dict[str, str]:
        """The environment after this change."""
        if self.replace:
            return dict(self.set)
        result = {key: value for key, value in env.items() if key not in self.unset}
        result.update(self.set)
        return result

    def applied_in(self, env: Mapping[str, str]) -> bool:
        """Whether ``env`` already has every set key with its value and none of the unset keys."""
        return all(env.get(key) == value for key, value in self.set.items()) and not any(
            key in env for key in self.unset
        )

    def __repr__(self) -> str:
        return f"EnvironmentChange(set={sorted(self.set)!r}, unset={list(self.unset)!r})"


def _read(resource: Resource[Any], app: str, release: str | None) -> Flow[Release | None]:
    found, _ = yield from read_environment(app, release)
    return found


def _newer_than(recent: list[Release], base: Release | None, own: set[str]) -> list[str]:
    """Ids of listed releases created after ``base`` (all when it is not listed), not ``own``."""
    ids = [release.id for release in recent]
    if base is not None and base.id in ids:
        ids = ids[: ids.index(base.id)]
    return [release_id for release_id in ids if release_id not in own]


def _check_overtaken(
    resource: Resource[Any],
    app: str,
    change: EnvironmentChange,
    base: Release | None,
    new: Release,
    *,
    own: set[str],
) -> Flow[tuple[Release, bool]]:
    """Flow: after creating ``new`` from ``base``, did another writer get in the way?

    Returns ``(release, True)`` when the newest release, ``release``, has the change, or
    ``(release, False)`` when the change must be applied again on top of ``release``: the newest
    release when another writer's came after ours without our change, or the newest of the
    releases created between ``base`` and ours, which ours (forked from ``base``) overwrote.
    ``own`` holds the ids of every release this write created.
    """
    recent = yield from call(release_routes.list(app, limit=_RECENT))
    others = _newer_than(recent, base, own)
    if not others:
        return new, True
    if recent[0].id not in own:
        newest = yield from call(release_routes.get(app, recent[0].id))
        if change.applied_in(newest.environment):
            return newest, True  # a later writer built on this change
        return newest, False
    between = yield from call(release_routes.get(app, others[0]))
    if between.build == new.build and change.apply(between.environment) == new.environment:
        return new, True  # ours already holds everything the other release had
    return between, False


def _unchanged(
    resource: Resource[Any], app: str, change: EnvironmentChange, release: str | None
) -> Flow[Release | None]:
    """Flow: the release to start from, or None when there is none or ``change`` writes the
    whole environment (then nothing is read)."""
    if change.replace:
        return None
    return (yield from _read(resource, app, release))


def _newest_with(resource: Resource[Any], app: str, env: Mapping[str, str]) -> Flow[Release | None]:
    """Flow: the newest release when its environment is exactly ``env``, else None."""
    newest = yield from call(release_routes.list(app, limit=1))
    if not newest:
        return None
    found = yield from call(release_routes.get(app, newest[0].id))
    return found if found.environment == env else None


def change_environment(
    resource: Resource[Any],
    app: str,
    change: EnvironmentChange,
    *,
    release: str | None,
    max_attempts: int,
    if_changed: bool,
    promote: PromoteOptions | None,
    on_event: EventCallback | None,
) -> Flow[Release]:
    """Flow: write ``change`` as a new release (see the module docstring); return it.

    When the release read already has the change (with ``replace``: when ``if_changed`` and the
    newest release has exactly this environment), nothing is created and that one is returned
    (:class:`~.events.EnvironmentUnchanged`). With an explicit ``release`` the base is that
    release and other writers are not merged.
    """
    base = yield from _unchanged(resource, app, change, release)
    has_it = base if base is not None and change.applied_in(base.environment) else None
    if change.replace and if_changed and release is None:
        has_it = yield from _newest_with(resource, app, change.set)
    if has_it is not None:
        emit(on_event, EnvironmentUnchanged(app, has_it.id, change.keys))
        return (yield from _maybe_promote(resource, app, has_it, promote))
    own: set[str] = set()
    for attempt in range(1, max_attempts + 1):
        env = change.apply({} if base is None else base.environment)
        new = yield from call(
            release_routes.create(app, env=env, parent_release=None if base is None else base.id)
        )
        emit(on_event, ReleaseCreated(app, new.id, new.build, new.description))
        own.add(new.id)
        if change.replace or release is not None:
            result = new
            break
        found, settled = yield from _check_overtaken(resource, app, change, base, new, own=own)
        if settled:
            result = found
            break
        emit(on_event, EnvironmentConflict(app, attempt, new.id, found.id, change.keys))
        base = found
    else:
        raise ConvoxWorkflowError(
            f"the environment of app {app} kept changing under this write: after"
            f" {max_attempts} attempts the newest release still lacks the change to"
            f" {', '.join(change.keys)}. Retry when other writers are done"
        )
    return (yield from _maybe_promote(resource, app, result, promote))


def _maybe_promote(
    resource: Resource[Any], app: str, release: Release, promote: PromoteOptions | None
) -> Flow[Release]:
    if promote is not None:
        yield from promote_release(resource, app, release.id, promote)
    return release


def _write(
    resource: Resource[Any],
    app: str,
    change: EnvironmentChange,
    arguments: Mapping[str, Any],
    *,
    if_changed: bool,
) -> Flow[Release]:
    """The write flow of ``set`` and ``unset``, from the arguments they were called with (their
    signatures are the one typed declaration of them); the arguments are checked first."""
    release, max_attempts = arguments["release"], arguments["max_attempts"]
    segment(app, kind="app name")
    if release is not None:
        segment(release, kind="release id")
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise ConvoxInputError(f"invalid max_attempts {max_attempts!r}: give an int >= 1")
    waiting = wait_options(arguments, ROLLOUT_WAIT)
    promote = PromoteOptions(waiting, wait=arguments["wait"], force=arguments["force"])
    return change_environment(
        resource,
        app,
        change,
        release=release,
        max_attempts=max_attempts,
        if_changed=if_changed,
        promote=promote if arguments["promote"] else None,
        on_event=waiting.on_event,
    )


class EnvironmentWorkflows(Resource[D]):
    """Workflows of ``client.environment``."""

    @operation
    def set(
        self,
        app: str,
        changes: Mapping[str, str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        unset: Iterable[str] = (),
        replace: bool = False,
        release: str | None = None,
        max_attempts: int = 5,
        if_changed: bool = False,
        promote: bool = True,
        wait: bool = True,
        force: bool = False,
        timeout: float = ROLLOUT_WAIT.timeout,
        poll_interval: float = ROLLOUT_WAIT.poll_interval,
        initial_delay: float = ROLLOUT_WAIT.initial_delay,
        max_errors: int = ROLLOUT_WAIT.max_errors,
        on_event: EventCallback | None = None,
        waiting: WaitOptions | None = None,
    ) -> Flow[Release]:
        """Set (and ``unset``) variables in a new release; return the :class:`Release` that
        carries the change, as the official SDK returns the release it created (nothing is
        created when the release read already has the change: that release is returned). Its
        ``env`` holds the values (masked in ``repr``): pass on ``.id``, not the model.

        Everything is validated before any request: keys must be non-empty, without ``=``,
        whitespace or control characters; values without line breaks or NUL; each line at most
        64 KiB (§5.3, §8 item 6). The change starts from the NEWEST release, not the active one
        (the official SDK's mistake, §8 item 5), or from ``release``, and the new release pins
        ``parent-release`` to it so its build is the one read. A concurrent writer is detected
        and the change re-applied on top of its release, up to ``max_attempts`` creates
        (``ConvoxWorkflowError`` after that); with an explicit ``release`` no merge is done.
        ``replace=True`` reads nothing and writes exactly ``changes`` as the whole environment,
        which is what deploy keys are allowed to do (§1.2); the build then comes from the
        newest release. With ``replace`` and ``if_changed`` (and no ``release``) the newest
        release is read first, and when its environment is exactly ``changes`` it is
        returned and nothing written (what a retried task needs; default deploy keys may not
        read releases). The result is promoted like ``releases.promote`` (with ``wait``,
        ``force`` and the wait options, or ``waiting``) unless ``promote=False``, as the official
        SDK's default; unlike its promote, this one waits for the rollout (§8 item 7). ``env``
        is the official SDK's name of ``changes`` (give one of them).
        """
        if env is not None:
            if changes is not None:
                raise ConvoxInputError("give changes or env, not both")
            changes = env
        change = EnvironmentChange(changes, unset, replace=replace)
        return _write(self, app, change, locals(), if_changed=if_changed)

    @operation
    def unset(
        self,
        app: str,
        *keys: str | Iterable[str],
        release: str | None = None,
        max_attempts: int = 5,
        promote: bool = True,
        wait: bool = True,
        force: bool = False,
        timeout: float = ROLLOUT_WAIT.timeout,
        poll_interval: float = ROLLOUT_WAIT.poll_interval,
        initial_delay: float = ROLLOUT_WAIT.initial_delay,
        max_errors: int = ROLLOUT_WAIT.max_errors,
        on_event: EventCallback | None = None,
        waiting: WaitOptions | None = None,
    ) -> Flow[Release]:
        """Remove variables in a new release; return it: ``set(app, unset=keys, …)``.

        Keys come as the official SDK's ``unset(app, "A", "B")``, or as collections
        (``unset(app, ["A", "B"])``); a ``str`` is always one key. Promoted unless
        ``promote=False``, as ``set``.
        """
        names = [k for arg in keys for k in ((arg,) if isinstance(arg, str) else arg)]
        change = EnvironmentChange(None, names, replace=False)
        return _write(self, app, change, locals(), if_changed=False)
