"""The one clock every rack model shares: time, the queue of due transitions and the lock.

Time-driven transitions (build finished, rollout settled, pod started/ended/reaped) are queued
with their due time and applied lazily, in due order, before every read or write. So with zero
timings the next request already sees the new state, and every timestamp is the moment the
transition was due, not the moment somebody looked. One re-entrant lock guards the queue and
every model's state, so all model methods are thread-safe and see one consistent rack.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["Clock"]

log = logging.getLogger("convox_provider.testing")


class Clock:
    """The rack's time, its queue of due transitions and the lock over the whole state."""

    def __init__(self, clock: Callable[[], int]) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._queue: list[tuple[int, int, Callable[[int], None]]] = []
        self._seq = itertools.count()
        self._last_stamp = 0

    def now(self) -> int:
        """The rack's clock in epoch nanoseconds."""
        return self._clock()

    @contextmanager
    def locked(self) -> Iterator[int]:
        """Hold the state lock with all due transitions applied; yields the current time."""
        with self._lock:
            now = self._clock()
            while self._queue and self._queue[0][0] <= now:
                due, _, action = heapq.heappop(self._queue)
                try:
                    action(due)
                except Exception:
                    log.exception("scheduled rack transition failed")
            yield now

    def next_due(self) -> int | None:
        """When the next queued transition is due, if any."""
        with self._lock:
            return self._queue[0][0] if self._queue else None

    def at(self, due: int, action: Callable[[int], None]) -> None:
        """Queue ``action(due)`` for when ``due`` has come (call with the lock held)."""
        heapq.heappush(self._queue, (due, next(self._seq), action))

    def stamp(self, at: int) -> int:
        """A record timestamp: ``at``, but strictly after the previous stamp (orders records)."""
        self._last_stamp = max(at, self._last_stamp + 1)
        return self._last_stamp
