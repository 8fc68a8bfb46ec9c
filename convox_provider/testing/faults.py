"""Scripted misbehaviour of the emulated rack, and the log of every request it received.

Paths match as globs (``*`` within one segment, ``**`` across segments) or as compiled regular
expressions (full match). A method of ``None`` or ``"*"`` matches any method.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

__all__ = ["Fault", "FaultPlan", "RequestLog", "RequestRecord"]

PathPattern = str | re.Pattern[str]


def _compile(pattern: PathPattern) -> re.Pattern[str]:
    if isinstance(pattern, re.Pattern):
        return pattern
    out = []
    index = 0
    while index < len(pattern):
        if pattern.startswith("**", index):
            out.append(".*")
            index += 2
        elif pattern[index] == "*":
            out.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            out.append("[^/]")
            index += 1
        else:
            out.append(re.escape(pattern[index]))
            index += 1
    return re.compile("".join(out))


def _method_matches(expected: str | None, method: str) -> bool:
    return expected in (None, "*") or expected.upper() == method.upper()


@dataclass
class Fault:
    """One scripted fault; ``fired`` counts how often it has been applied.

    ``kind`` is ``status``, ``delay``, ``drop``, ``stall`` or ``truncate``.
    """

    kind: str
    method: str | None
    path: PathPattern
    times: int | None = 1
    status: int = 500
    message: str = ""
    retry_after: str | None = None
    after_handler: bool = False
    seconds: float = 0.0
    stage: str = "headers"
    after_bytes: int = 0
    fired: int = 0
    _regex: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._regex = _compile(self.path)

    def matches(self, method: str, path: str) -> bool:
        """Whether this fault applies to ``method path`` and has firings left."""
        if self.times is not None and self.fired >= self.times:
            return False
        return _method_matches(self.method, method) and self._regex.fullmatch(path) is not None

    @property
    def exhausted(self) -> bool:
        """True once the fault has fired ``times`` times."""
        return self.times is not None and self.fired >= self.times


_REASONS = {
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class FaultPlan:
    """Faults to inject, per method and path, for the next N matching requests; thread-safe.

    The first registered fault that matches a request fires (one fault per request).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def _add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def respond(
        self,
        method: str | None,
        path: PathPattern,
        status: int,
        *,
        times: int | None = 1,
        retry_after: float | str | None = None,
        message: str | None = None,
        after_handler: bool = False,
    ) -> Fault:
        """Answer ``status`` instead of the real response (429 carries ``Retry-After``).

        With ``after_handler=True`` the request is processed first (its side effects happen) and
        only the answer is replaced: a gateway that timed out after the rack accepted the call.
        WebSocket requests skip such a fault (see :meth:`take`); use ``drop(stage="handler")``
        or :meth:`truncate` for streams. The body is the plain-text gateway message, not a rack
        error.
        """
        if retry_after is None and status == 429:
            retry_after = 1
        return self._add(
            Fault(
                kind="status",
                method=method,
                path=path,
                times=times,
                status=status,
                message=message if message is not None else _REASONS.get(status, "error"),
                retry_after=None if retry_after is None else _retry_after_text(retry_after),
                after_handler=after_handler,
            )
        )

    def delay(
        self, method: str | None, path: PathPattern, seconds: float, *, times: int | None = 1
    ) -> Fault:
        """Wait ``seconds`` before handling the request normally."""
        return self._add(
            Fault(kind="delay", method=method, path=path, times=times, seconds=seconds)
        )

    def drop(
        self,
        method: str | None,
        path: PathPattern,
        *,
        times: int | None = 1,
        stage: str = "headers",
    ) -> Fault:
        """Close the TCP connection without any response.

        ``stage`` is when: ``headers`` (request head read, body not read, nothing processed),
        ``body`` (body read, nothing processed) or ``handler`` (processed, then dropped: the
        client cannot know whether the call took effect). On a WebSocket route, ``handler``
        upgrades and runs the socket's handler (its output is sent), then closes the connection
        without the empty binary end frame: an exec whose command ran but whose exit code was
        lost.
        """
        if stage not in ("headers", "body", "handler"):
            raise ValueError(f"unknown drop stage: {stage}")
        return self._add(Fault(kind="drop", method=method, path=path, times=times, stage=stage))

    def stall(
        self,
        method: str | None,
        path: PathPattern,
        *,
        seconds: float = 3600.0,
        times: int | None = 1,
    ) -> Fault:
        """Read the request, then send nothing for ``seconds`` (longer than any client timeout)."""
        return self._add(
            Fault(kind="stall", method=method, path=path, times=times, seconds=seconds)
        )

    def truncate(
        self, method: str | None, path: PathPattern, after_bytes: int, *, times: int | None = 1
    ) -> Fault:
        """Cut a stream after ``after_bytes`` payload bytes and close the connection.

        On WebSocket routes no empty binary frame is sent; on streamed HTTP bodies (object fetch,
        build export) the chunked body is left unterminated.
        """
        return self._add(
            Fault(kind="truncate", method=method, path=path, times=times, after_bytes=after_bytes)
        )

    def clear(self) -> None:
        """Remove every fault."""
        with self._lock:
            self._faults.clear()

    @property
    def faults(self) -> list[Fault]:
        """The registered faults (including exhausted ones, to inspect ``fired``)."""
        with self._lock:
            return list(self._faults)

    def take(
        self, method: str, path: str, *, kinds: tuple[str, ...], websocket: bool = False
    ) -> Fault | None:
        """Consume one firing of the first matching fault among ``kinds``.

        A WebSocket request never takes a ``respond(after_handler=True)`` fault: its handshake is
        its only answer and comes before the handler, so there is nothing to replace; the fault
        stays armed (``fired`` unchanged) for the next plain HTTP request it matches.
        """
        with self._lock:
            for fault in self._faults:
                if websocket and fault.kind == "status" and fault.after_handler:
                    continue
                if fault.kind in kinds and fault.matches(method, path):
                    fault.fired += 1
                    return fault
        return None


def _retry_after_text(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass(frozen=True)
class RequestRecord:
    """One request the rack received.

    ``status`` is None when no response was sent (dropped or stalled connection); ``fault`` names
    the fault kind that fired, if any; WebSocket upgrades have ``websocket=True`` and status 101.
    """

    method: str
    path: str
    query: str
    status: int | None
    fault: str | None
    websocket: bool
    request_id: str | None
    time: float
    headers: tuple[tuple[str, str], ...] = ()

    def header(self, name: str) -> str | None:
        """First value of a request header (case-insensitive)."""
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)


class RequestLog:
    """Every request received, in arrival order; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []
        self._listeners: list[Callable[[RequestRecord], None]] = []

    def add(self, record: RequestRecord) -> None:
        """Append a record (done by the server before it answers) and tell the listeners."""
        with self._lock:
            self._records.append(record)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(record)

    def subscribe(self, listener: Callable[[RequestRecord], None]) -> None:
        """Call ``listener`` with every record from now on (``--request-log`` writes them)."""
        with self._lock:
            self._listeners.append(listener)

    def _select(
        self, method: str | None, path: PathPattern | None, status: int | None, fault: str | None
    ) -> list[RequestRecord]:
        regex = _compile(path) if path is not None else None
        with self._lock:
            records = list(self._records)
        return [
            r
            for r in records
            if _method_matches(method, r.method)
            and (regex is None or regex.fullmatch(r.path) is not None)
            and (status is None or r.status == status)
            and (fault is None or r.fault == fault)
        ]

    def count(
        self,
        method: str | None = None,
        path: PathPattern | None = None,
        *,
        status: int | None = None,
        fault: str | None = None,
    ) -> int:
        """How many requests matched, e.g. ``count("POST", "/apps/demo/builds") == 1``."""
        return len(self._select(method, path, status, fault))

    def find(
        self,
        method: str | None = None,
        path: PathPattern | None = None,
        *,
        status: int | None = None,
        fault: str | None = None,
    ) -> list[RequestRecord]:
        """The matching records, oldest first."""
        return self._select(method, path, status, fault)

    def last(self) -> RequestRecord | None:
        """The most recent record."""
        with self._lock:
            return self._records[-1] if self._records else None

    def clear(self) -> None:
        """Forget every record."""
        with self._lock:
            self._records.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def __iter__(self) -> Iterator[RequestRecord]:
        with self._lock:
            return iter(list(self._records))


def now() -> float:
    """Wall-clock time for request records."""
    return time.time()
