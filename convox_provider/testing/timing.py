"""How long the emulated rack takes to do things."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Timing"]


@dataclass(frozen=True)
class Timing:
    """Durations in seconds of every asynchronous thing the rack does.

    ``Timing()`` is instant (every transition is visible on the next request) except ``reap``,
    which keeps finished pods observable for the rack's real ~5 s (docs/rack-api.md §4.6).
    ``Timing.demo()`` is slow enough to watch a deploy happen.

    :param build: how long a build pod runs before the build is ``complete``/``failed``.
    :param rollout: how long an app stays ``updating`` after promote, scale, create or update;
        a scripted or cancelled rollout then spends as long again in ``rollback``.
    :param process_start: how long a new pod stays ``pending``.
    :param process_run: how long an unscripted one-off command runs (``sleep N`` runs N).
    :param reap: how long a ``complete``/``failed`` pod stays listed before it is deleted.
    :param app_delete: how long an app stays ``deleting`` before it is gone.
    """

    build: float = 0.0
    rollout: float = 0.0
    process_start: float = 0.0
    process_run: float = 0.0
    reap: float = 5.0
    app_delete: float = 0.0

    @classmethod
    def demo(cls) -> Timing:
        """Durations that make a deploy visible to a person watching the demo."""
        return cls(build=3.0, rollout=3.0, process_start=1.0, process_run=1.0, app_delete=2.0)


def seconds_to_ns(seconds: float) -> int:
    """Seconds (float) to integer nanoseconds."""
    return round(seconds * 1_000_000_000)
