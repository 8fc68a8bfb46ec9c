"""The environment of an app, read the way the CLI reads it (convox-api.md §5.3, §7.3)."""

from __future__ import annotations

from convox_provider.client.models import Release
from convox_provider.client.operation import Call, D, Flow, call, operation
from convox_provider.client.resources.releases import get_release, list_releases
from convox_provider.client.workflows.environment import EnvironmentWorkflows

__all__ = ["Environment", "read_environment"]


def read_environment(
    app: str, release: str | None = None
) -> Flow[tuple[Release | None, dict[str, str]]]:
    """Flow: the release an environment edit must start from, and its parsed environment.

    Without ``release`` that is the NEWEST release (``releases?limit=1``, then a fresh GET of
    it), because the rack forks every new release from the newest one; ``(None, {})`` for an
    app without releases. Arguments are checked now, before the flow runs.
    """
    if release is None:
        return _read(app, list_releases(app, limit=1), None)
    return _read(app, None, get_release(app, release))


def _read(
    app: str, newest: Call[list[Release]] | None, chosen: Call[Release] | None
) -> Flow[tuple[Release | None, dict[str, str]]]:
    if chosen is None:
        assert newest is not None
        releases = yield from call(newest)
        if not releases:
            return None, {}
        chosen = get_release(app, releases[0].id)
    found = yield from call(chosen)
    return found, found.environment


def _env_only(flow: Flow[tuple[Release | None, dict[str, str]]]) -> Flow[dict[str, str]]:
    _, env = yield from flow
    return env


class Environment(EnvironmentWorkflows[D]):
    """``client.environment``.

    Reads start from the NEWEST release, as the CLI does, not from the active one as the
    official SDK does (§8 item 5): a newer unpromoted release (e.g. from a build) is what the
    rack forks the next release from, so an edit based on the active release would silently
    drop its changes or deploy its unpromoted build. Writes (set, unset, promote) are
    workflows on :func:`read_environment`, pinning ``parent-release`` to the release read.
    """

    @operation
    def get(self, app: str, release: str | None = None) -> Flow[dict[str, str]]:
        """The environment of the newest release, or of ``release``; ``{}`` with no releases.

        Parsed with the rack's own rules (split at the first ``=``, ``#`` not special, last
        duplicate wins). Two GETs (list, then the release itself, as the CLI does); retried.
        """
        return _env_only(read_environment(app, release))
