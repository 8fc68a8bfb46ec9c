"""What commands, builds and rollouts do on the emulated rack, scripted by tests.

Commands (one-off ``run`` pods and ``exec``) are looked up in a registry by exact command string
or regular expression; anything unscripted goes to a tiny built-in shell that understands
``echo``, ``true``, ``false``, ``exit N``, ``sleep N``, ``env`` and ``sh -c '<a>; <b> && <c>'``.
Any other unscripted command prints one line, ``<name>: emulated command (no script registered)``,
and exits 0, so demos never fail on a command the emulator does not know.
"""

from __future__ import annotations

import re
import shlex
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["BuildScript", "CommandResult", "Invocation", "Scripts"]


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


CommandHandler = Callable[[Invocation], CommandResult]


@dataclass
class _CommandRule:
    pattern: str | re.Pattern[str]
    handler: CommandHandler
    times: int | None

    def matches(self, invocation: Invocation) -> bool:
        candidates = (invocation.command, " ".join(invocation.argv))
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


class Scripts:
    """Registry of scripted commands, builds and rollout failures; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._commands: list[_CommandRule] = []
        self._builds: list[tuple[str | None, BuildScript]] = []
        self._promote_failures: dict[str, list[str]] = {}

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

    def fail_next_promote(self, app: str, *, reason: str = "Deadline") -> None:
        """The next rollout of ``app`` fails: updating -> rollback -> running on the old release.

        ``reason`` is the rollout state logged before the rollback (``Deadline`` or ``Error``).
        """
        with self._lock:
            self._promote_failures.setdefault(app, []).append(reason)

    def clear(self) -> None:
        """Forget every scripted command, build and rollout failure."""
        with self._lock:
            self._commands.clear()
            self._builds.clear()
            self._promote_failures.clear()

    def take_build(self, app: str) -> BuildScript:
        """Consume the script for a build of ``app`` (default outcome when none is queued)."""
        with self._lock:
            for index, (target, script) in enumerate(self._builds):
                if target is None or target == app:
                    del self._builds[index]
                    return script
        return BuildScript()

    def take_promote_failure(self, app: str) -> str | None:
        """Consume a scripted rollout failure for ``app``; None when the rollout succeeds."""
        with self._lock:
            queue = self._promote_failures.get(app)
            if queue:
                return queue.pop(0)
        return None

    def resolve(self, invocation: Invocation) -> CommandResult:
        """What ``invocation`` does: the newest matching script, else the built-in shell."""
        with self._lock:
            rule = next((r for r in self._commands if r.matches(invocation)), None)
            if rule is not None and rule.times is not None:
                rule.times -= 1
                if rule.times <= 0:
                    self._commands.remove(rule)
        if rule is not None:
            return rule.handler(invocation)
        return run_builtin(list(invocation.argv), invocation.environment)


_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def run_builtin(argv: list[str], env: Mapping[str, str]) -> CommandResult:
    """The built-in shell subset used for unscripted commands (see the module docstring)."""
    clock = 0.0
    chunks: list[tuple[float, bytes]] = []
    slept = False

    def run_simple(words: list[str]) -> int:
        """Run one simple command and return its exit code."""
        nonlocal clock, slept
        if not words:
            return 0
        name, args = words[0], words[1:]
        if name in ("sh", "bash", "/bin/sh", "/bin/bash") and len(args) >= 2 and args[0] == "-c":
            return run_script(args[1])
        if name == "echo":
            newline = True
            if args[:1] == ["-n"]:
                newline, args = False, args[1:]
            chunks.append((clock, (" ".join(args) + ("\n" if newline else "")).encode()))
            return 0
        if name in ("true", ":"):
            return 0
        if name == "false":
            return 1
        if name == "sleep":
            try:
                clock += float(args[0]) if args else 0.0
            except ValueError:
                chunks.append((clock, f"sleep: invalid time interval '{args[0]}'\n".encode()))
                return 1
            slept = True
            return 0
        if name in ("env", "printenv"):
            text = "".join(f"{k}={v}\n" for k, v in sorted(env.items()))
            chunks.append((clock, text.encode()))
            return 0
        message = f"{name}: emulated command (no script registered)\n"
        chunks.append((clock, message.encode()))
        return 0

    def run_script(script: str) -> int:
        lexer = shlex.shlex(script, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        try:
            tokens = list(lexer)
        except ValueError:
            chunks.append((clock, b"sh: syntax error: unterminated quoted string\n"))
            return 2
        status = 0
        words: list[str] = []
        connector = ";"
        for token in [*tokens, ";"]:
            if token in (";", "&&", "||", "&", "|"):
                run = (
                    connector in (";", "&", "|")
                    or (connector == "&&" and status == 0)
                    or (connector == "||" and status != 0)
                )
                if run and words:
                    expanded = [
                        _VAR.sub(lambda m: env.get(m.group(1) or m.group(2), ""), w) for w in words
                    ]
                    if expanded[0] == "exit":
                        return _exit_code(expanded[1:], status)
                    status = run_simple(expanded)
                words, connector = [], token
            else:
                words.append(token)
        return status

    code = _exit_code(argv[1:], 0) if argv and argv[0] == "exit" else run_simple(argv)
    return CommandResult(
        exit_code=code,
        duration=clock if slept else None,
        chunks=tuple(chunks),
    )


def _exit_code(args: list[str], default: int) -> int:
    if not args:
        return default
    try:
        return int(args[0]) % 256
    except ValueError:
        return 2
