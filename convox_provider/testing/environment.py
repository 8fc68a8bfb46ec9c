"""Release environment strings as the rack parses and compares them (docs/rack-api.md §5.3)."""

from __future__ import annotations

from .errors import RackError

__all__ = ["env_diff", "parse_env", "render_env"]

# bufio.Scanner's default maximum token size: a longer line makes parsing fail.
_MAX_LINE = 64 * 1024


def parse_env(text: str) -> dict[str, str]:
    """Parse ``KEY=VALUE`` lines exactly like the server.

    Split at the first ``=``, key trimmed, value verbatim, lines without ``=`` or with an empty
    key dropped, last duplicate wins, ``#`` not special, a trailing ``\\r`` dropped. A line
    longer than 64 KiB raises 500 ``bufio.Scanner: token too long``.
    """
    env: dict[str, str] = {}
    for raw in text.split("\n"):
        if len(raw.encode()) >= _MAX_LINE:
            raise RackError(500, "bufio.Scanner: token too long")
        line = raw[:-1] if raw.endswith("\r") else raw
        key, sep, value = line.partition("=")
        if not sep:
            continue
        key = key.strip()
        if key:
            env[key] = value
    return env


def render_env(env: dict[str, str]) -> str:
    """The CLI's rendering: sorted ``KEY=VALUE`` lines joined by newlines, no trailing newline."""
    return "\n".join(sorted(f"{key}={value}" for key, value in env.items()))


def env_diff(old: str, new: str) -> str:
    """Release description fragment ``add:K1 change:K2 remove:K3`` (docs/rack-api.md §4.4)."""
    before = parse_env(old.strip())
    after = parse_env(new.strip())
    adds = sorted(k for k in after if k not in before)
    changes = sorted(k for k in after if k in before and before[k] != after[k])
    removes = sorted(k for k in before if k not in after)
    parts = [f"add:{k}" for k in adds] + [f"change:{k}" for k in changes]
    parts += [f"remove:{k}" for k in removes]
    return " ".join(parts)
