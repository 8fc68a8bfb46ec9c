"""The environment of an app, read the way the CLI reads it (docs/rack-api.md §5.3, §7.3)."""

from __future__ import annotations

from convox_provider.client.models import Release
from convox_provider.client.operation import Call, D, Flow, Resource, call, operation
from convox_provider.client.resources import releases

__all__ = ["EnvironmentRoutes", "read_environment"]


def read_environment(
    app: str, release: str | None = None
) -> Flow[tuple[Release | None, dict[str, str]]]:
    """Flow: the release an environment edit must start from, and its parsed environment.

    Without ``release`` that is the NEWEST release (``releases?limit=1``, then a fresh GET of
    it), because the rack forks every new release from the newest one; ``(None, {})`` for an
    app without releases. Arguments are checked now, before the flow runs.
    """
    if release is None:
        return _read(app, releases.list(app, limit=1), None)
    return _read(app, None, releases.get(app, release))


def _read(
    app: str, newest: Call[list[Release]] | None, chosen: Call[Release] | None
) -> Flow[tuple[Release | None, dict[str, str]]]:
    if chosen is None:
        assert newest is not None
        found_releases = yield from call(newest)
        if not found_releases:
            return None, {}
        chosen = releases.get(app, found_releases[0].id)
    found = yield from call(chosen)
    return found, found.environment


def _env_only(flow: Flow[tuple[Release | None, dict[str, str]]]) -> Flow[dict[str, str]]:
    _, env = yield from flow
    return env


class EnvironmentRoutes(Resource[D]):
    """The reads of ``client.environment`` (its writes: :mod:`..workflows.environment`)."""

    @operation
    def get(self, app: str, release: str | None = None) -> Flow[dict[str, str]]:
        """The environment of the newest release, or of ``release``; ``{}`` with no releases.

        Parsed with the rack's own rules (split at the first ``=``, ``#`` not special, last
        duplicate wins). Two GETs (list, then the release itself, as the CLI does); retried.
        """
        return _env_only(read_environment(app, release))
