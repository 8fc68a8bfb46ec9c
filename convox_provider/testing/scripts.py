"""What commands, builds and rollouts do on the emulated rack, scripted by tests.

Commands (one-off ``run`` pods and ``exec``) are looked up in a registry by exact command string
or regular expression; anything unscripted goes to the built-in shell (``shell``), which also
consults the registry for each command of a ``sh -c`` script. Any other unscripted command
prints one line, ``<name>: emulated command (no script registered)``, and exits 0, so demos never
fail on a command the emulator does not know.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field, replace

from .shell import Shell

__all__ = ["BuildScript", "CommandResult", "Invocation", "PromoteFailure", "Scripts"]


@dataclass(frozen=True)
class CommandResult:
    """What a command prints and how it exits.

    :param output: bytes written to stdout/stderr (merged, as on the rack).
    :param exit_code: the process exit status.
    :param duration: seconds the command runs; None means ``Timing.process_run``.
    :param chunks: optional ``(offset_seconds, bytes)`` pieces emitted over time instead of
        ``output`` all at once.
    """

    output: bytes = b""
    exit_code: int = 0
    duration: float | None = None
    chunks: tuple[tuple[float, bytes], ...] = ()

    def timeline(self) -> tuple[tuple[float, bytes], ...]:
        """The output as ``(offset_seconds, bytes)`` pieces."""
        if self.chunks:
            return self.chunks
        return ((0.0, self.output),) if self.output else ()


@dataclass(frozen=True)
class Invocation:
    """One command about to run: in a one-off pod (``mode="run"``) or through exec."""

    command: str
    argv: tuple[str, ...]
    app: str
    service: str
    process: str
    mode: str
    environment: Mapping[str, str] = field(default_factory=dict)
    stdin: bytes = b""
    files: MutableMapping[str, bytes] | None = field(default=None, compare=False, repr=False)


CommandHandler = Callable[[Invocation], CommandResult]


@dataclass
class _CommandRule:
    pattern: str | re.Pattern[str]
    handler: CommandHandler
    times: int | None

    def matches(self, candidates: tuple[str, ...]) -> bool:
        if isinstance(self.pattern, re.Pattern):
            return any(self.pattern.fullmatch(text) for text in candidates)
        return self.pattern in candidates


@dataclass(frozen=True)
class BuildScript:
    """The outcome of one scripted build.

    :param fail: failure reason; the build ends ``failed`` with a final ``ERROR: <fail>`` line.
    :param logs: log lines replacing the emulator's default build output.
    :param entrypoint: the entrypoint the builder records (used by exec ``Entrypoint: true``).
    :param duration: seconds the build runs; None means ``Timing.build``.
    """

    fail: str | None = None
    logs: tuple[str, ...] | None = None
    entrypoint: str = ""
    duration: float | None = None


@dataclass(frozen=True)
class PromoteFailure:
    """How one scripted rollout fails.

    :param reason: the rollout state logged before the rollback (``Deadline`` or ``Error``).
    :param crash: when given, the release's new pods crash-loop instead of becoming ready: each
        start writes these lines as container output, exits, reads ``crashed`` and is restarted
        with a growing back-off (a ``Back-off restarting failed container`` event each time);
        they stay listed while the app reads ``rollback`` and are gone once it is reverted.
    :param service: only that service's pods crash (None: every service of the release).
    """

    reason: str = "Deadline"
    crash: tuple[str, ...] | None = None
    service: str | None = None


class Scripts:
    """Registry of scripted commands, builds and rollout failures; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._commands: list[_CommandRule] = []
        self._builds: list[tuple[str | None, BuildScript]] = []
        self._promote_failures: dict[str, list[PromoteFailure]] = {}
        self._service_output: list[tuple[str | None, str, tuple[str, ...]]] = []

    def on_command(
        self,
        pattern: str | re.Pattern[str],
        result: CommandResult | CommandHandler | None = None,
        *,
        output: bytes | str = b"",
        exit_code: int = 0,
        duration: float | None = None,
        times: int | None = None,
    ) -> None:
        """Script a command by exact string (as sent, or its words joined by spaces) or regex.

        Pass a ``CommandResult``, a callable ``(Invocation) -> CommandResult``, or the keyword
        shorthand ``output=``, ``exit_code=``, ``duration=``. ``times`` limits how often the rule
        fires (None: always). The newest matching rule wins.
        """
        if result is None:
            data = output.encode() if isinstance(output, str) else output
            result = CommandResult(output=data, exit_code=exit_code, duration=duration)
        handler: CommandHandler
        if isinstance(result, CommandResult):
            fixed = result

            def handler(_: Invocation) -> CommandResult:
                return fixed

        else:
            handler = result
        with self._lock:
            self._commands.insert(0, _CommandRule(pattern, handler, times))

    def next_build(
        self,
        *,
        app: str | None = None,
        fail: str | None = None,
        logs: Sequence[str] | None = None,
        entrypoint: str = "",
        duration: float | None = None,
    ) -> None:
        """Script the next build (of ``app``, or of any app): its log lines and/or failure."""
        script = BuildScript(
            fail=fail,
            logs=tuple(logs) if logs is not None else None,
            entrypoint=entrypoint,
            duration=duration,
        )
        with self._lock:
            self._builds.append((app, script))

    def fail_next_build(self, reason: str = "build failed", *, app: str | None = None) -> None:
        """The next build ends ``failed`` with ``ERROR: <reason>`` as its last log line."""
        self.next_build(app=app, fail=reason)

    def fail_next_promote(
        self,
        app: str,
        *,
        reason: str = "Deadline",
        crash: Sequence[str] | None = None,
        service: str | None = None,
    ) -> None:
        """The next rollout of ``app`` fails: updating -> rollback -> running on the old release.

        ``reason`` is the rollout state logged before the rollback (``Deadline`` or ``Error``).
        With ``crash`` (log lines), the new release's pods (of ``service``, or all) crash-loop
        meanwhile, writing those lines at each start (see :class:`PromoteFailure`).
        """
        failure = PromoteFailure(reason, tuple(crash) if crash is not None else None, service)
        with self._lock:
            self._promote_failures.setdefault(app, []).append(failure)

    def on_service(self, service: str, lines: Sequence[str], *, app: str | None = None) -> None:
        """Every replica of ``service`` (of ``app``, or of any app) started from now on writes
        ``lines`` after its start line, as container output (``convox logs``)."""
        with self._lock:
            self._service_output.append((app, service, tuple(lines)))

    def service_output(self, app: str, service: str) -> list[str]:
        """The scripted container output of a new replica of ``service``."""
        with self._lock:
            return [
                line
                for target, name, lines in self._service_output
                if name == service and target in (None, app)
                for line in lines
            ]

    def clear(self) -> None:
        """Forget every scripted command, build, rollout failure and service output."""
        with self._lock:
            self._commands.clear()
            self._builds.clear()
            self._promote_failures.clear()
            self._service_output.clear()

    def take_build(self, app: str) -> BuildScript:
        """Consume the script for a build of ``app`` (default outcome when none is queued)."""
        with self._lock:
            for index, (target, script) in enumerate(self._builds):
                if target is None or target == app:
                    del self._builds[index]
                    return script
        return BuildScript()

    def take_promote_failure(self, app: str) -> PromoteFailure | None:
        """Consume a scripted rollout failure for ``app``; None when the rollout succeeds."""
        with self._lock:
            queue = self._promote_failures.get(app)
            if queue:
                return queue.pop(0)
        return None

    def _take(self, texts: tuple[str, ...]) -> _CommandRule | None:
        with self._lock:
            rule = next((r for r in self._commands if r.matches(texts)), None)
            if rule is not None and rule.times is not None:
                rule.times -= 1
                if rule.times <= 0:
                    self._commands.remove(rule)
        return rule

    def scripted(self, invocation: Invocation) -> bool:
        """Whether a script (not the built-in shell) answers ``invocation``; consumes nothing."""
        with self._lock:
            texts = (invocation.command, " ".join(invocation.argv))
            return any(r.matches(texts) for r in self._commands)

    def resolve(self, invocation: Invocation) -> CommandResult:
        """What ``invocation`` does: the newest matching script, else the built-in shell."""
        rule = self._take((invocation.command, " ".join(invocation.argv)))
        if rule is not None:
            return rule.handler(invocation)

        def lookup(words: list[str]) -> tuple[bytes, int, float] | None:
            inner = self._take((" ".join(words),))
            if inner is None:
                return None
            sub = replace(invocation, command=" ".join(words), argv=tuple(words), stdin=b"")
            result = inner.handler(sub)
            output = b"".join(data for _, data in result.timeline())
            return output, result.exit_code, result.duration or 0.0

        return run_builtin(
            list(invocation.argv),
            invocation.environment,
            stdin=invocation.stdin,
            files=invocation.files,
            lookup=lookup,
        )


_FILTERS = ("cat", "grep", "wc", "head", "tail")


def reads_stdin(argv: Sequence[str]) -> bool:
    """Whether the built-in shell reads stdin for ``argv``: ``sh`` without ``-c``, or a filter
    (``cat``, ``grep``, ``wc``, ``head``, ``tail``) given no file, first in the command or in
    its ``sh -c`` script. Exec then waits for the end of stdin before running it."""
    words = list(argv)
    if words[:1] and words[0] in ("sh", "bash", "/bin/sh", "/bin/bash"):
        if len(words) == 1:
            return True
        if len(words) < 3 or words[1] != "-c":
            return False
        words = re.split(r"[;&|\n]", words[2].strip(), maxsplit=1)[0].split()
    if not words or words[0] not in _FILTERS:
        return False
    operands = [w for w in words[1:] if not w.startswith("-")]
    return len(operands) <= (1 if words[0] == "grep" else 0)


def run_builtin(
    argv: list[str],
    env: Mapping[str, str],
    *,
    stdin: bytes = b"",
    files: MutableMapping[str, bytes] | None = None,
    lookup: Callable[[list[str]], tuple[bytes, int, float] | None] | None = None,
) -> CommandResult:
    """The built-in shell for unscripted commands (see ``shell``)."""
    result = Shell(env, files, lookup).run(argv, stdin)
    return CommandResult(
        exit_code=result.exit_code,
        duration=result.clock if result.slept else None,
        chunks=tuple(result.chunks),
    )
