"""A fake driver for workflow tests: no sockets, a scripted rack, a fake clock.

``FakeRack`` answers each :class:`Call` a flow yields from a table keyed by ``(method, path)``
(query strings are not part of the key), advances its clock on :class:`Sleep`, and answers
:class:`Stream` effects with scripted chunks. Workflow mixins are bound to it like to a real
driver: ``ReleaseWorkflows(rack).promote("app", "R1")`` runs the flow to its end.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from convox_provider.client.errors import ConvoxWaitTimeoutError, error_for_status
from convox_provider.client.operation import Call, Now, Sleep, Stream, StreamResult, StreamSpec


@dataclass
class Sent:
    """One request a flow sent."""

    method: str
    path: str
    form: dict[str, str]
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.path


@dataclass
class StreamScript:
    """How one stream goes: chunks delivered, then a result or an error."""

    chunks: list[bytes] = field(default_factory=list)
    exit_code: int | None = None
    error: BaseException | None = None
    stays_open: bool = False
    """After its chunks the stream stays open and silent: it is handed back by the effect's
    pause (clock advanced by it), or else runs into the effect's timeout."""


def api_error(status: int, message: str) -> Exception:
    """The typed error the drivers raise for ``status`` with the rack's ``message``."""
    return error_for_status(status, message, request_id="0123456789ab")


Answer = Any  # a value, an exception instance, or a callable(Sent) -> value


class FakeRack:
    """Drives flows against scripted answers; records requests, sleeps and streams."""

    def __init__(self) -> None:
        # what archive uploads and console checks read from a driver
        self.http = None
        self.config = SimpleNamespace(console=False)
        self.session_id = None
        self.clock = 1000.0
        self.sleeps: list[float] = []
        self.sent: list[Sent] = []
        self.streams: list[StreamSpec] = []
        self.events: list[Any] = []
        self._answers: dict[tuple[str, str], list[Answer]] = {}
        self._streams: dict[str, list[StreamScript]] = {}
        self.interrupt: Callable[[Any], BaseException | None] | None = None

    # -- scripting ------------------------------------------------------------------------------

    def on(self, method: str, path: str, *answers: Answer) -> None:
        """Queue answers for ``method path`` (a glob); the last one repeats forever."""
        self._answers.setdefault((method, path), []).extend(answers)

    def instead(self, method: str, path: str, *answers: Answer) -> None:
        """Replace the answers queued for ``method path`` (a fixture's default) with these."""
        self._answers[method, path] = list(answers)

    def on_stream(self, path: str, *scripts: StreamScript) -> None:
        """Queue stream scripts for ``path``; the last one repeats."""
        self._streams.setdefault(path, []).extend(scripts)

    # -- what happened --------------------------------------------------------------------------

    def requests(self, method: str | None = None, path: str | None = None) -> list[Sent]:
        return [
            s
            for s in self.sent
            if (method is None or s.method == method) and (path is None or s.path == path)
        ]

    @property
    def keys(self) -> list[tuple[str, str]]:
        return [s.key for s in self.sent]

    def event(self, event: Any) -> None:
        """An ``on_event`` callback recording every event."""
        self.events.append(event)

    def events_of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    # -- the driver interface -------------------------------------------------------------------

    def execute(self, op: Call[Any] | Generator[Any, Any, Any]) -> Any:
        """Run a call or a flow to its end, as ``SyncDriver.execute`` does."""
        if isinstance(op, Call):
            return self._call(op)
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                effect = op.throw(error) if error is not None else op.send(value)
            except StopIteration as stop:
                return stop.value
            value, error = None, None
            try:
                if self.interrupt is not None:
                    injected = self.interrupt(effect)
                    if injected is not None:
                        raise injected
                value = self._perform(effect)
            except BaseException as exc:
                error = exc

    def _perform(self, effect: Any) -> Any:
        if isinstance(effect, Call):
            return self._call(effect)
        if isinstance(effect, Sleep):
            self.sleeps.append(effect.seconds)
            self.clock += effect.seconds
            return None
        if isinstance(effect, Now):
            return self.clock
        if isinstance(effect, Stream):
            return self._stream(effect)
        raise TypeError(f"unexpected effect {effect!r}")

    def _call(self, call: Call[Any]) -> Any:
        sent = Sent(
            call.method,
            call.path,
            dict(call.form),
            dict(call.query),
            dict(call.headers),
        )
        if isinstance(call.content, bytes):
            sent.body = call.content
        elif call.content is not None:
            sent.body = b"".join(call.content)  # type: ignore[arg-type]
        self.sent.append(sent)
        self.clock += 0.01  # a request takes a little time
        queue = self._answers.get(sent.key)
        if queue is None:
            queue = next(
                (
                    answers
                    for (method, pattern), answers in self._answers.items()
                    if method == sent.method and fnmatch.fnmatchcase(sent.path, pattern)
                ),
                None,
            )
        if not queue:
            raise AssertionError(f"unscripted request {sent.method} {sent.path}")
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if callable(answer) and not isinstance(answer, type):
            answer = answer(sent)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def _stream(self, effect: Stream) -> StreamResult:
        path = effect.spec.path
        self.streams.append(effect.spec)
        queue = self._streams.get(path)
        if not queue:
            raise AssertionError(f"unscripted stream {path}")
        script = queue.pop(0) if len(queue) > 1 else queue[0]
        total = 0
        for chunk in script.chunks:
            effect.on_data(chunk)
            total += len(chunk)
        if script.error is not None:
            raise script.error
        if script.stays_open:
            pauses = [p for p in (effect.pause_idle, effect.pause_after) if p is not None]
            if pauses:
                self.clock += min(pauses)
                return StreamResult(None, total, ended=False)
            self.clock += effect.timeout if effect.timeout is not None else 10**9
            raise ConvoxWaitTimeoutError(f"the stream {path} was still open; closed it")
        return StreamResult(script.exit_code, total)
