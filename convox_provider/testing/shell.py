"""The built-in shell that runs unscripted commands in emulated processes.

A command runs as the rack runs it: without a shell, so ``echo $B`` prints ``$B``. ``sh -c
'<script>'`` (or ``bash -c``, or ``sh`` reading its script from stdin) gets a small POSIX
shell, enough for migration scripts: ``;``, ``&&``, ``||``, pipes, ``$VAR``/``${VAR}``/``$?``
in bare words and double quotes, ``NAME=value`` assignments and ``export``, redirections
``>``, ``>>``, ``<``, ``2>``, ``2>&1``, ``>&2`` (files live in the process's file store,
``/dev/null`` discards) and exit codes. Built-ins: ``echo``, ``printf``, ``cat``, ``grep``,
``wc -l``, ``head``/``tail -n``, ``true``, ``false``, ``:``, ``exit``, ``sleep``, ``env``,
``printenv``, ``pwd``, ``cd``, ``sh``. A command a test scripted (``Scripts.on_command``) runs
its script, inside a shell too; any other command prints ``<name>: emulated command (no script
registered)`` and exits 0. Relative paths are relative to ``/``.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field

__all__ = ["Shell", "ShellResult"]

Lookup = Callable[[list[str]], "tuple[bytes, int, float] | None"]
Write = Callable[[bytes], None]

_OPERATORS = ("&&", "||", ";", "|", "&")
_VAR = re.compile(r"\$(?:\{(\w+|\?)\}|(\w+|\?))")
_ASSIGN = re.compile(r"^[A-Za-z_]\w*=")


@dataclass
class ShellResult:
    """Output pieces over time and the exit status."""

    chunks: list[tuple[float, bytes]] = field(default_factory=list)
    exit_code: int = 0
    clock: float = 0.0
    slept: bool = False


class _Exit(Exception):  # control flow: ``exit`` ends the script
    def __init__(self, code: int) -> None:
        self.code = code


@dataclass
class _Word:
    text: str
    quoted: bool = False  # any part quoted: never a redirection operator


def _tokens(script: str, env: Mapping[str, str]) -> list[_Word | str]:
    """Words (expanded) and operators; raises ValueError on an unterminated quote."""
    out: list[_Word | str] = []
    word: list[str] = []
    quoted = False
    started = False
    i = 0

    def expand(text: str) -> str:
        return _VAR.sub(lambda m: env.get(m.group(1) or m.group(2), ""), text)

    def flush() -> None:
        nonlocal word, quoted, started
        if started:
            out.append(_Word("".join(word), quoted))
        word, quoted, started = [], False, False

    while i < len(script):
        char = script[i]
        if char in " \t\n":
            flush()
            i += 1
        elif char == "#" and not started:
            end = script.find("\n", i)
            i = len(script) if end < 0 else end
        elif char == "'":
            end = script.find("'", i + 1)
            if end < 0:
                raise ValueError("unterminated quoted string")
            word.append(script[i + 1 : end])
            quoted = started = True
            i = end + 1
        elif char == '"':
            j, piece = i + 1, []
            while j < len(script) and script[j] != '"':
                if script[j] == "\\" and j + 1 < len(script) and script[j + 1] in '"\\$`':
                    piece.append(script[j + 1])
                    j += 2
                    continue
                piece.append(script[j])
                j += 1
            if j >= len(script):
                raise ValueError("unterminated quoted string")
            word.append(expand("".join(piece)))
            quoted = started = True
            i = j + 1
        elif char == "\\" and i + 1 < len(script):
            word.append(script[i + 1])
            quoted = started = True
            i += 2
        elif char in ";&|":
            flush()
            pair = script[i : i + 2]
            op = pair if pair in ("&&", "||") else char
            out.append(op)
            i += len(op)
        elif char in "<>":
            # ``2>``, ``>>``, ``>&2``, ``2>&1`` glue to the word before/after as one token
            digits = "".join(word) if started and not quoted and "".join(word).isdigit() else ""
            if started and not digits:
                flush()
            word, started = [], False
            op = (
                ">>"
                if script.startswith(">>", i)
                else (">&" if script.startswith(">&", i) else char)
            )
            out.append(f"{digits}{op}")
            i += len(op)
        elif char == "$":
            match = _VAR.match(script, i)
            if match is None:
                word.append(char)
                i += 1
            else:
                word.append(env.get(match.group(1) or match.group(2), ""))
                i = match.end()
            started = True
        else:
            word.append(char)
            started = True
            i += 1
    flush()
    return out


class Shell:
    """Runs commands against an environment, a file store and the scripts' lookup."""

    def __init__(
        self,
        env: Mapping[str, str],
        files: MutableMapping[str, bytes] | None = None,
        lookup: Lookup | None = None,
    ) -> None:
        self.env = dict(env)
        self.files: MutableMapping[str, bytes] = files if files is not None else {}
        self.lookup = lookup
        self.result = ShellResult()
        self.status = 0

    def terminal(self, data: bytes) -> None:
        if data:
            self.result.chunks.append((self.result.clock, data))

    # --- entry points ----------------------------------------------------------------------

    def run(self, argv: list[str], stdin: bytes = b"") -> ShellResult:
        """Run ``argv`` without a shell (as the rack's exec does)."""
        try:
            if argv and argv[0] == "exit":
                code = _exit_code(argv[1:], 0)
            else:
                code = self.simple(argv, stdin, self.terminal, self.terminal)
        except _Exit as done:
            code = done.code
        self.result.exit_code = code
        return self.result

    def script(self, text: str, stdin: bytes, out: Write, err: Write) -> int:
        """Run a shell script; ``exit`` ends it."""
        try:
            return self._script(text, stdin, out, err)
        except _Exit as done:
            return done.code

    # --- the shell -------------------------------------------------------------------------

    def _script(self, text: str, stdin: bytes, out: Write, err: Write) -> int:
        try:
            # variables are expanded when a command runs, so assignments take effect
            parts = _split_commands(text)
        except ValueError:
            err(b"sh: syntax error: unterminated quoted string\n")
            return 2
        status = 0
        for connector, pipeline in parts:
            if (connector == "&&" and status != 0) or (connector == "||" and status == 0):
                continue
            status = self.pipeline(pipeline, stdin, out, err)
            self.status = status
        return status

    def pipeline(self, source: str, stdin: bytes, out: Write, err: Write) -> int:
        stages = _split_pipes(source)
        data = stdin
        status = 0
        for index, stage in enumerate(stages):
            last = index == len(stages) - 1
            buffer = bytearray()
            target: Write = out if last else buffer.extend
            env = {**self.env, "?": str(self.status)}
            try:
                tokens = _tokens(stage, env)
            except ValueError:
                err(b"sh: syntax error: unterminated quoted string\n")
                return 2
            status = self.command(tokens, data, target, err)
            data = bytes(buffer)
        return status

    def command(self, tokens: list[_Word | str], stdin: bytes, out: Write, err: Write) -> int:
        words: list[str] = []
        redirects: list[tuple[str, str]] = []
        pending: str | None = None
        for token in tokens:
            if isinstance(token, str):
                if token not in _OPERATORS:
                    pending = token  # a redirection: its target is the next word
                continue
            if pending is not None:
                redirects.append((pending, token.text))
                pending = None
            else:
                words.append(token.text)
        if pending is not None:
            err(b"sh: syntax error: unexpected end of file\n")
            return 2
        streams: dict[int, Write] = {1: out, 2: err}
        for op, target in redirects:
            fd = int(op[0]) if op[0].isdigit() else (0 if op.endswith("<") else 1)
            kind = op.lstrip("0123456789")
            if kind == "<":
                path = self._path(target)
                if path not in self.files:
                    err(f"sh: can't open {target}: no such file\n".encode())
                    return 1
                stdin = self.files[path]
            elif kind == ">&":
                if target.isdigit() and int(target) in streams:
                    streams[fd] = streams[int(target)]
            else:
                streams[fd] = self._file_writer(target, append=kind == ">>")
        while words and _ASSIGN.match(words[0]):
            name, _, value = words.pop(0).partition("=")
            self.env[name] = value
        return self.simple(words, stdin, streams[1], streams[2])

    def _path(self, target: str) -> str:
        return posixpath.normpath(posixpath.join("/", target))

    def _file_writer(self, target: str, *, append: bool) -> Write:
        if target == "/dev/null":
            return lambda _: None
        path = self._path(target)
        if not append or path not in self.files:
            self.files[path] = b""

        def write(data: bytes) -> None:
            self.files[path] = self.files.get(path, b"") + data

        return write

    def simple(self, words: list[str], stdin: bytes, out: Write, err: Write) -> int:
        """One command with its arguments; built-ins, scripts, else the emulated default."""
        if not words:
            return 0
        name, args = words[0], words[1:]
        if name in ("sh", "bash", "/bin/sh", "/bin/bash"):
            if len(args) >= 2 and args[0] == "-c":
                return self.script(args[1], stdin, out, err)
            if not args:
                return self.script(stdin.decode(errors="replace"), b"", out, err)
        if self.lookup is not None:
            scripted = self.lookup(words)
            if scripted is not None:
                output, code, duration = scripted
                out(output)
                self.result.clock += duration
                self.result.slept = self.result.slept or duration > 0
                return code
        builtin = _BUILTINS.get(name)
        if builtin is not None:
            return builtin(self, args, stdin, out, err)
        out(f"{name}: emulated command (no script registered)\n".encode())
        return 0


def _split_commands(text: str) -> list[tuple[str, str]]:
    """``(connector, pipeline source)`` pairs, split at ``;``, ``&&``, ``||``, ``&``."""
    parts: list[tuple[str, str]] = []
    connector, start, i = ";", 0, 0
    quote: str | None = None
    while i < len(text):
        char = text[i]
        after, quote, plain = _quoting(text, i, quote)
        if not plain:
            i = after
            continue
        if char == "#" and (i == 0 or text[i - 1] in " \t\n;"):
            end = text.find("\n", i)  # the comment stays in the part; _tokens drops it
            i = len(text) if end < 0 else end
            continue
        if text.startswith(("&&", "||"), i) or char in ";\n&":
            op = text[i : i + 2] if text.startswith(("&&", "||"), i) else char
            if op == "&" and text[i - 1 : i] == ">":  # ``>&2`` is a redirection
                i += 1
                continue
            parts.append((connector, text[start:i]))
            connector = op if op in ("&&", "||") else ";"
            i += len(op)
            start = i
            continue
        i = after
    if quote:
        raise ValueError("unterminated quoted string")
    parts.append((connector, text[start:]))
    return [(c, p) for c, p in parts if p.strip()]


def _split_pipes(text: str) -> list[str]:
    stages: list[str] = []
    start, i = 0, 0
    quote: str | None = None
    while i < len(text):
        after, quote, plain = _quoting(text, i, quote)
        if plain and text[i] == "|":
            stages.append(text[start:i])
            start = i + 1
        i = after
    stages.append(text[start:])
    return stages


def _quoting(text: str, i: int, quote: str | None) -> tuple[int, str | None, bool]:
    """Read ``text[i]`` with ``quote`` open (``'``, ``"`` or ``None``): the index to read next,
    the quote open after it, and whether it is a plain character (outside quotes, not escaped).
    A backslash escapes the next character outside quotes and inside double quotes."""
    char = text[i]
    if quote:
        if char == "\\" and quote == '"':
            return i + 2, quote, False
        return i + 1, None if char == quote else quote, False
    if char in "'\"":
        return i + 1, char, False
    if char == "\\":
        return i + 2, None, False
    return i + 1, None, True


def _exit_code(args: list[str], default: int) -> int:
    if not args:
        return default
    try:
        return int(args[0]) % 256
    except ValueError:
        return 2


# --- built-ins -----------------------------------------------------------------------------

Builtin = Callable[[Shell, list[str], bytes, Write, Write], int]


def _echo(_: Shell, args: list[str], __: bytes, out: Write, ___: Write) -> int:
    newline = True
    if args[:1] == ["-n"]:
        newline, args = False, args[1:]
    out((" ".join(args) + ("\n" if newline else "")).encode())
    return 0


def _printf(_: Shell, args: list[str], __: bytes, out: Write, ___: Write) -> int:
    if not args:
        return 1
    fmt, values = args[0], list(args[1:])
    text = re.sub(r"%[sd]", lambda _m: values.pop(0) if values else "", fmt)
    out(text.replace("\\n", "\n").replace("\\t", "\t").encode())
    return 0


def _cat(shell: Shell, args: list[str], stdin: bytes, out: Write, err: Write) -> int:
    if not args or args == ["-"]:
        out(stdin)
        return 0
    status = 0
    for name in args:
        path = shell._path(name)
        if path in shell.files:
            out(shell.files[path])
        else:
            err(f"cat: can't open '{name}': No such file or directory\n".encode())
            status = 1
    return status


def _lines(shell: Shell, files: list[str], stdin: bytes) -> list[bytes]:
    data = b"".join(shell.files.get(shell._path(f), b"") for f in files) if files else stdin
    return data.splitlines(keepends=True)


def _grep(shell: Shell, args: list[str], stdin: bytes, out: Write, _: Write) -> int:
    flags = {a for a in args if a.startswith("-")}
    rest = [a for a in args if not a.startswith("-")]
    if not rest:
        return 2
    pattern = re.compile(rest[0].encode(), re.IGNORECASE if "-i" in flags else 0)
    hits = [line for line in _lines(shell, rest[1:], stdin) if pattern.search(line)]
    if "-v" in flags:
        hits = [line for line in _lines(shell, rest[1:], stdin) if not pattern.search(line)]
    if "-q" not in flags:
        out(b"".join(hits))
    return 0 if hits else 1


def _wc(shell: Shell, args: list[str], stdin: bytes, out: Write, _: Write) -> int:
    files = [a for a in args if not a.startswith("-")]
    out(f"{len(_lines(shell, files, stdin))}\n".encode())
    return 0


def _head_tail(tail: bool) -> Builtin:
    def run(shell: Shell, args: list[str], stdin: bytes, out: Write, _: Write) -> int:
        count, files = 10, []
        items = iter(args)
        for arg in items:
            if arg == "-n":
                count = int(next(items, "10"))
            elif arg.startswith("-") and arg[1:].isdigit():
                count = int(arg[1:])
            else:
                files.append(arg)
        lines = _lines(shell, files, stdin)
        out(b"".join(lines[-count:] if tail else lines[:count]) if count else b"")
        return 0

    return run


def _sleep(shell: Shell, args: list[str], _: bytes, __: Write, err: Write) -> int:
    try:
        shell.result.clock += float(args[0]) if args else 0.0
    except ValueError:
        err(f"sleep: invalid time interval '{args[0]}'\n".encode())
        return 1
    shell.result.slept = True
    return 0


def _env(shell: Shell, args: list[str], _: bytes, out: Write, __: Write) -> int:
    if args:
        if args[0] not in shell.env:
            return 1
        out(f"{shell.env[args[0]]}\n".encode())
        return 0
    out("".join(f"{k}={v}\n" for k, v in sorted(shell.env.items())).encode())
    return 0


def _export(shell: Shell, args: list[str], _: bytes, __: Write, ___: Write) -> int:
    for arg in args:
        if "=" in arg:
            name, _sep, value = arg.partition("=")
            shell.env[name] = value
    return 0


def _pwd(_: Shell, __: list[str], ___: bytes, out: Write, ____: Write) -> int:
    out(b"/\n")
    return 0


def _exit(shell: Shell, args: list[str], _: bytes, __: Write, ___: Write) -> int:
    raise _Exit(_exit_code(args, shell.status))


_BUILTINS: dict[str, Builtin] = {
    "echo": _echo,
    "printf": _printf,
    "cat": _cat,
    "grep": _grep,
    "wc": _wc,
    "head": _head_tail(tail=False),
    "tail": _head_tail(tail=True),
    "true": lambda *_: 0,
    ":": lambda *_: 0,
    "false": lambda *_: 1,
    "sleep": _sleep,
    "env": lambda s, a, i, o, e: _env(s, [], i, o, e),
    "printenv": _env,
    "export": _export,
    "exit": _exit,
    "pwd": _pwd,
    "cd": lambda *_: 0,
}
