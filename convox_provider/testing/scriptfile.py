"""Scripts from a file (``--scripts FILE``) or the admin route: YAML or JSON, one shape.

::

    commands:                 # newest last wins, like Scripts.on_command
      - command: bin/migrate  # exact command, as sent or its words joined by spaces
        output: "migrated\\n"
        exit_code: 0
        duration: 0.5         # seconds (default: --process-seconds)
        times: 1              # how often it fires (default: always)
      - regex: "rake .*"      # or a regular expression (full match)
        exit_code: 1
    builds:                   # the next builds, in order (any app unless app is given)
      - fail: "compile error"
        app: myapp
        logs: ["line one"]    # replaces the builder's log lines
    promotes:                 # the next rollouts of app fail, then roll back
      - app: myapp
        reason: Deadline      # or Error
        crash: ["Error: no DATABASE_URL"]  # its new pods crash-loop, writing these lines
        service: web          # only this service's pods crash (default: all)
    services:                 # container output of replicas started from now on
      - service: web
        app: myapp
        lines: ["Listening on :3000"]

Every key is checked: a typo is an error, not a script that silently never fires.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .scripts import Scripts
from .yamlsubset import ManifestError, parse_yaml

__all__ = ["ScriptsFileError", "apply_scripts", "parse_scripts"]

_KEYS = {
    "commands": {"command", "regex", "output", "exit_code", "duration", "times"},
    "builds": {"fail", "app", "logs", "entrypoint", "duration"},
    "promotes": {"app", "reason", "crash", "service"},
    "services": {"service", "app", "lines"},
}


class ScriptsFileError(ValueError):
    """The scripts text is not valid: the message says where."""


def parse_scripts(text: str) -> dict[str, list[dict[str, Any]]]:
    """Parse and check scripts text (JSON when it starts with ``{``, else YAML)."""
    try:
        data = json.loads(text) if text.lstrip().startswith("{") else parse_yaml(text)
    except (ValueError, ManifestError) as exc:
        raise ScriptsFileError(f"scripts: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ScriptsFileError("scripts: the top level must be a mapping")
    checked: dict[str, list[dict[str, Any]]] = {}
    for section, entries in data.items():
        if section not in _KEYS:
            known = ", ".join(sorted(_KEYS))
            raise ScriptsFileError(f"scripts: unknown section {section!r} (known: {known})")
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ScriptsFileError(f"scripts: {section} must be a list of mappings")
        for index, entry in enumerate(entries):
            where = f"scripts: {section}[{index}]"
            unknown = set(entry) - _KEYS[section]
            if unknown:
                raise ScriptsFileError(f"{where}: unknown key {sorted(unknown)[0]!r}")
            _check(section, entry, where)
        checked[section] = entries
    return checked


def _check(section: str, entry: dict[str, Any], where: str) -> None:
    if section == "commands":
        if ("command" in entry) == ("regex" in entry):
            raise ScriptsFileError(f"{where}: give exactly one of 'command' or 'regex'")
        if "regex" in entry:
            try:
                re.compile(str(entry["regex"]))
            except re.error as exc:
                raise ScriptsFileError(f"{where}: bad regex: {exc}") from exc
        for key in ("exit_code", "times"):
            if key in entry and (isinstance(entry[key], bool) or not isinstance(entry[key], int)):
                raise ScriptsFileError(f"{where}: {key} must be an integer")
    if section == "promotes" and "app" not in entry:
        raise ScriptsFileError(f"{where}: 'app' is required")
    if section == "promotes" and entry.get("reason", "Deadline") not in ("Deadline", "Error"):
        raise ScriptsFileError(f"{where}: reason must be Deadline or Error")
    if section == "promotes" and "crash" in entry and not isinstance(entry["crash"], list):
        raise ScriptsFileError(f"{where}: crash must be a list of log lines")
    if section == "services" and (
        "service" not in entry or not isinstance(entry.get("lines"), list)
    ):
        raise ScriptsFileError(f"{where}: needs 'service' and a list of 'lines'")
    if "duration" in entry and not isinstance(entry["duration"], (int, float)):
        raise ScriptsFileError(f"{where}: duration must be a number of seconds")


def apply_scripts(scripts: Scripts, text: str) -> dict[str, int]:
    """Arm everything in ``text`` on ``scripts``; returns how many entries each section had."""
    data = parse_scripts(text)
    for entry in data.get("commands", []):
        pattern: str | re.Pattern[str] = (
            re.compile(str(entry["regex"])) if "regex" in entry else str(entry["command"])
        )
        duration = entry.get("duration")
        scripts.on_command(
            pattern,
            output=str(entry.get("output", "")),
            exit_code=int(entry.get("exit_code", 0)),
            duration=float(duration) if duration is not None else None,
            times=entry.get("times"),
        )
    for entry in data.get("builds", []):
        logs = entry.get("logs")
        duration = entry.get("duration")
        scripts.next_build(
            app=entry.get("app"),
            fail=str(entry["fail"]) if entry.get("fail") is not None else None,
            logs=[str(line) for line in logs] if isinstance(logs, list) else None,
            entrypoint=str(entry.get("entrypoint", "")),
            duration=float(duration) if duration is not None else None,
        )
    for entry in data.get("promotes", []):
        crash = entry.get("crash")
        scripts.fail_next_promote(
            str(entry["app"]),
            reason=str(entry.get("reason", "Deadline")),
            crash=[str(line) for line in crash] if isinstance(crash, list) else None,
            service=str(entry["service"]) if entry.get("service") is not None else None,
        )
    for entry in data.get("services", []):
        scripts.on_service(
            str(entry["service"]), [str(line) for line in entry["lines"]], app=entry.get("app")
        )
    return {section: len(entries) for section, entries in data.items()}
