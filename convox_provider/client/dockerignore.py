""".dockerignore rules, as Docker applies them to a build context (docs/rack-api.md §7.1 step 3).

Semantics of Docker's reader and of moby's ``patternmatcher``, written from their documented
behaviour (docs.docker.com, "Build context", ".dockerignore files"):

* one pattern per line; a line whose first character is ``#`` is a comment; lines are trimmed
  and blank ones skipped; a UTF-8 byte-order mark on the first line is dropped;
* each pattern is cleaned like Go's ``filepath.Clean`` (``./a/`` → ``a``, ``a//b/../c`` →
  ``a/c``) and a leading ``/`` removed: the context root is both the working and the root
  directory;
* ``*`` matches any run of characters but ``/``, ``?`` one character but ``/``, ``[…]`` a class
  (``[^…]`` negated; ``!`` is an ordinary member), ``\\`` escapes the next character, as in Go's
  ``filepath.Match``; ``**`` matches any number of directories, including none;
* a pattern matching a directory excludes everything below it;
* ``!pattern`` re-includes what an earlier line excluded; the last matching line decides.

One difference from the classic Docker archiver, on purpose: an excluded directory is still
walked whenever an exception *could* match something below it (``!**/*.py`` included), where
the archiver only looked for exceptions whose text starts with the directory's path.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from convox_provider.client.errors import ConvoxInputError

__all__ = ["DockerIgnore", "read_patterns"]

_BOM = "\ufeff"


def _clean(path: str) -> str:
    """Go's ``filepath.Clean`` on ``/``-separated paths."""
    cleaned = posixpath.normpath(path)
    if cleaned.startswith("//"):  # POSIX keeps a leading "//"; Go collapses it
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned


def read_patterns(text: str) -> list[str]:
    """The patterns of a ``.dockerignore`` file's text (``!`` kept as a prefix)."""
    patterns: list[str] = []
    for number, raw in enumerate(text.split("\n")):
        line = raw[:-1] if raw.endswith("\r") else raw
        if number == 0 and line.startswith(_BOM):
            line = line[len(_BOM) :]
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = _clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


def _class(pattern: str, start: int) -> tuple[str, int]:
    """Translate the ``[…]`` class at ``pattern[start]``; return its regex and the next index.

    Go's rules: ``^`` right after ``[`` negates; ``]`` closes only after one member; ``-`` and
    ``]`` cannot start a member; ``\\`` escapes; ``lo-hi`` is a range (empty when ``lo > hi``).
    A class can match ``/``, as in Go.
    """
    index = start + 1
    negated = index < len(pattern) and pattern[index] == "^"
    if negated:
        index += 1
    members: list[str] = []
    count = 0

    def member() -> str:
        nonlocal index
        if index >= len(pattern) or pattern[index] in "-]":
            raise ValueError("bad character class")
        if pattern[index] == "\\":
            index += 1
            if index >= len(pattern):
                raise ValueError("bad escape")
        char = pattern[index]
        index += 1
        if index >= len(pattern):
            raise ValueError("unterminated character class")
        return char

    while index >= len(pattern) or not (pattern[index] == "]" and count):
        low = member()
        high = low
        if pattern[index] == "-":
            index += 1
            high = member()
        count += 1
        if low == high:
            members.append(re.escape(low))
        elif low < high:
            members.append(f"{re.escape(low)}-{re.escape(high)}")
    index += 1
    body = "".join(members)
    if negated:
        return (f"[^{body}]" if body else "(?s:.)"), index
    return (f"[{body}]" if body else "(?!)"), index


def _translate(pattern: str) -> str:
    """A cleaned pattern as a regular expression matching whole ``/``-separated paths."""
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "*":
            if pattern.startswith("**", index):
                index += 2
                if index < len(pattern) and pattern[index] == "/":
                    index += 1
                out.append(".*" if index >= len(pattern) else "(?:.*/)?")
                continue
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            regex, index = _class(pattern, index)
            out.append(regex)
            continue
        elif char == "\\":
            index += 1
            if index >= len(pattern):
                raise ValueError
            out.append(re.escape(pattern[index]))
        else:
            out.append(re.escape(char))
        index += 1
    return "".join(out)


@dataclass(frozen=True)
class _Pattern:
    text: str
    exclusion: bool
    regex: re.Pattern[str]
    parts: tuple[re.Pattern[str] | None, ...]  # per "/" component; None: contains "**"

    def matches(self, path: str, parents: list[str]) -> bool:
        if self.regex.fullmatch(path):
            return True
        return any(self.regex.fullmatch(parent) for parent in parents)

    def may_match_below(self, directory: list[str]) -> bool:
        """Whether this pattern could match ``directory`` itself or something inside it."""
        for depth, name in enumerate(directory):
            if depth >= len(self.parts):
                return True  # it matches an ancestor of the directory
            part = self.parts[depth]
            if part is None:
                return True
            if not part.fullmatch(name):
                return False
        return True


def _compile(text: str) -> _Pattern:
    exclusion = text.startswith("!")
    body = text[1:] if exclusion else text
    if exclusion and not body:
        raise ConvoxInputError('invalid .dockerignore pattern "!": an exception needs a pattern')
    try:
        regex = re.compile(_translate(body))
        parts = tuple(
            None if "**" in part else re.compile(_translate(part)) for part in body.split("/")
        )
    except (ValueError, re.error) as exc:
        raise ConvoxInputError(
            f"invalid .dockerignore pattern {text!r}: syntax error in pattern (Go filepath.Match)"
        ) from exc
    return _Pattern(text, exclusion, regex, parts)


class DockerIgnore:
    """Decides which paths of a build context are left out.

    Paths are relative to the context root and ``/``-separated (``src/app.py``), without a
    leading ``./``. An invalid pattern raises ``ConvoxInputError`` (Docker refuses the build).
    """

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self._patterns = [_compile(_clean(text.strip())) for text in patterns if text.strip()]
        self._exceptions = [pattern for pattern in self._patterns if pattern.exclusion]

    @classmethod
    def for_directory(cls, root: str | os.PathLike[str]) -> DockerIgnore:
        """The rules of ``root/.dockerignore``; none if the file does not exist."""
        path = Path(root, ".dockerignore")
        try:
            text = path.read_bytes().decode("utf-8", "surrogateescape")
        except FileNotFoundError:
            return cls()
        return cls(read_patterns(text))

    @property
    def patterns(self) -> list[str]:
        """The patterns in order, exceptions with their ``!``."""
        return [pattern.text for pattern in self._patterns]

    def excludes(self, path: str) -> bool:
        """Whether ``path`` (or one of its parent directories) is excluded."""
        parent = posixpath.dirname(path)
        names = parent.split("/") if parent else []
        parents = ["/".join(names[: depth + 1]) for depth in range(len(names))]
        excluded = False
        for pattern in self._patterns:
            if pattern.exclusion != excluded:
                continue  # only a later exception can re-include, only a later rule exclude
            if pattern.matches(path, parents):
                excluded = not pattern.exclusion
        return excluded

    def walk_excluded(self, directory: str) -> bool:
        """Whether an excluded ``directory`` must still be walked: an exception may match
        something inside it (its own entry stays out of the archive)."""
        names = directory.split("/")
        return any(pattern.may_match_below(names) for pattern in self._exceptions)

    def __bool__(self) -> bool:
        return bool(self._patterns)

    def __repr__(self) -> str:
        return f"DockerIgnore({self.patterns!r})"
