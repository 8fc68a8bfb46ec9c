"""The one clock every rack model shares, and the base those models stand on.

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
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from ..errors import RackError
from ..scripts import Scripts
from ..timing import Timing

if TYPE_CHECKING:
    from .rack import RackState

__all__ = ["AppRecords", "AppStore", "Clock", "Model"]

T = TypeVar("T")

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


class Model:
    """One concern of the rack: its own records, the shared clock and its sibling models."""

    def __init__(self, rack: RackState) -> None:
        self.rack = rack
        self.clock = rack.clock

    @property
    def timing(self) -> Timing:
        """How long things take on this rack."""
        return self.rack.timing

    @property
    def scripts(self) -> Scripts:
        """What commands, builds and rollouts do on this rack."""
        return self.rack.scripts

    def locked(self) -> AbstractContextManager[int]:
        """The shared clock's lock (see ``Clock.locked``)."""
        return self.clock.locked()

    def _at(self, due: int, action: Callable[[int], None]) -> None:
        self.clock.at(due, action)

    def _stamp(self, at: int) -> int:
        return self.clock.stamp(at)


class AppStore(Protocol):
    """A model holding records per app: made room for on create, emptied on delete."""

    def open_app(self, app: str) -> None:
        """Make room for a new app's records."""

    def drop_app(self, app: str) -> None:
        """Forget a deleted app's records."""


class AppRecords(Model, Generic[T]):
    """A model holding records by app and id: room made on app create, emptied on delete."""

    def __init__(self, rack: RackState) -> None:
        super().__init__(rack)
        self._records: dict[str, dict[str, T]] = {}

    def open_app(self, app: str) -> None:
        """Make room for a new app's records."""
        self._records[app] = {}

    def drop_app(self, app: str) -> None:
        """Forget a deleted app's records."""
        self._records.pop(app, None)

    def _record(self, app: str, record_id: str, resource: str) -> T:
        """A record by case-insensitive id; 500 ``<resource> "<id>" not found`` like k8s."""
        record = self._records.get(app, {}).get(record_id.upper())
        if record is None:
            raise RackError(500, f'{resource} "{record_id.lower()}" not found')
        return record
