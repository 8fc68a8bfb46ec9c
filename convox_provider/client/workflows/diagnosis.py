"""What the rack shows of a failed rollout or build, in a few lines for its error message.

A rollback says only that the app went back; why is in the new release's pods: those that never
became ready, their status and the end of their output (docs/rack-api.md §5.5, §6.2, §5.12).
Everything here is bounded (pods, lines, bytes, seconds) and never raises: a read that fails
becomes a short "could not read …" line, so the original error is always the one raised.

Secrets: a pod's output is the app's own and may print anything. Before a line is shown, the
values of the release's environment (4 characters or more: shorter ones would blank out
ordinary words) and the client's own API key (the deploy key or rack password) are replaced by
``****``, and so is the password of any URL (``RACK_URL`` in a pod's environment holds one).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from convox_provider.client.encoding import parse_env
from convox_provider.client.errors import ConvoxError, ConvoxNotFoundError
from convox_provider.client.models import Process
from convox_provider.client.operation import Flow, Resource, call, now, stream
from convox_provider.client.resources import processes as process_routes
from convox_provider.client.resources import releases as release_routes
from convox_provider.client.resources import streams as stream_routes
from convox_provider.client.status import ProcessStatus

__all__ = [
    "DIAGNOSIS_SECONDS",
    "LOG_LINES",
    "PODS_SHOWN",
    "build_pod_diagnosis",
    "diagnosed",
    "redact",
    "release_diagnosis",
]

PODS_SHOWN = 3
"""Pods of a failed release described at most (the least ready first)."""

LOG_LINES = 5
"""Last lines of output shown per pod."""

LINE_CHARS = 200
"""Characters of one output line shown; the rest is cut with ``…``."""

LOG_BYTES = 16 * 1024
"""Bytes of a pod's output kept while it is read (its end)."""

LOG_SECONDS = 2.0
"""How long one pod's log stream is read before it is closed (the stream follows the pod; the
driver checks this as output arrives and at its 5 s keep-alive, so a silent one takes up to 5 s).
"""

LOG_WINDOW = 600.0
"""Seconds of a pod's output asked for: ``Since`` is sent as minus this, since the process-log
route adds it to the current time (§6.2)."""

DIAGNOSIS_SECONDS = 10.0
"""Once this much time went on a diagnosis, the logs of the remaining pods are not read."""

MASK = "****"
_MIN_SECRET = 4
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)[^/\s@]+@")
_ORDER = {
    ProcessStatus.CRASHED: 0,
    ProcessStatus.FAILED: 1,
    ProcessStatus.UNHEALTHY: 2,
    ProcessStatus.STARTING: 3,
    ProcessStatus.PENDING: 4,
    ProcessStatus.UNKNOWN: 5,
}


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret, and the password of every URL in it, replaced by ``****``.

    Longer secrets are replaced first, so a secret containing a shorter one goes whole."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= _MIN_SECRET:
            text = text.replace(secret, MASK)
    return _URL_PASSWORD.sub(rf"\g<head>{MASK}@", text)


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= LINE_CHARS else text[: LINE_CHARS - 1] + "…"


def _api_key(resource: Resource[Any]) -> str | None:
    """The client's own key, to redact: the driver's configuration holds it."""
    key = getattr(getattr(resource._driver, "config", None), "api_key", None)
    return key if isinstance(key, str) else None


def _secrets(resource: Resource[Any], app: str, release_id: str) -> Flow[list[str]]:
    """Flow: what must not be shown: the release's env values and the API key (one GET of the
    release; its failure is raised, and then no output is shown at all)."""
    release = yield from call(release_routes.get(app, release_id))
    secrets = list(parse_env(release.env).values())
    key = _api_key(resource)
    return [*secrets, key] if key else secrets


def _log_tail(app: str, pid: str, secrets: list[str]) -> Flow[list[str]]:
    """Flow: the last :data:`LOG_LINES` lines of the pod's output, redacted and cut."""
    kept = bytearray()

    def keep(chunk: bytes) -> None:
        kept.extend(chunk)
        if len(kept) > LOG_BYTES:
            del kept[: len(kept) - LOG_BYTES]

    spec = stream_routes.process_logs(app, pid, since=-LOG_WINDOW)
    failure = ""
    try:
        yield from stream(spec, keep, pause_after=LOG_SECONDS, pause_idle=LOG_SECONDS)
    except ConvoxError as exc:
        failure = f"could not read its log: {_short(exc)}"
    text = bytes(kept).decode("utf-8", "replace")
    lines = [line for line in text.splitlines() if line.strip()][-LOG_LINES:]
    shown = []
    for line in lines:
        clean = redact(line.rstrip(), secrets)
        shown.append(clean if len(clean) <= LINE_CHARS else clean[: LINE_CHARS - 1] + "…")
    if failure:
        shown.append(failure)
    return shown or ["(no output)"]


def _describe(pod: Process) -> str:
    return f"{pod.id} ({pod.name or pod.service or 'process'}): {pod.status or 'no status'}"


def release_diagnosis(resource: Resource[Any], app: str, release_id: str) -> Flow[str]:
    """Flow: a few lines on the pods of ``release_id`` that are not ``running`` (ready), to
    follow a sentence about the release ("its processes …", the id is not repeated): up to
    :data:`PODS_SHOWN` of them, the least ready first, each with its status and the last
    :data:`LOG_LINES` lines of its output (redacted, see the module doc). Never raises; ``""``
    only when the rack showed nothing at all worth a line."""
    started = yield from now()
    try:
        listed = yield from call(process_routes.list(app, release=release_id))
    except ConvoxError as exc:
        return f"Could not read its processes: {_short(exc)}"
    pods = [p for p in listed if p.release == release_id and p.name != "build"]
    if not pods:
        return (
            "None of its processes is left on the rack to show why (a rollback removes them);"
            " the app's logs (system/k8s lines) tell"
        )
    done = (ProcessStatus.RUNNING, ProcessStatus.COMPLETE)  # a finished one-off is no failure
    failing = sorted(
        (p for p in pods if p.process_status not in done),
        key=lambda p: (_ORDER.get(p.process_status, 6), p.id),
    )
    if not failing:
        return f"All {len(pods)} of its processes read running"
    lines = [f"Its processes not ready ({len(failing)} of {len(pods)}):"]
    try:
        secrets: list[str] | None = yield from _secrets(resource, app, release_id)
    except ConvoxError as exc:
        secrets = None
        lines.append(f"  (their output is not shown: could not read the release: {_short(exc)})")
    for pod in failing[:PODS_SHOWN]:
        lines.append(f"  {_describe(pod)}")
        if secrets is None:
            continue
        if pod.process_status is ProcessStatus.PENDING:
            lines.append("    (not started yet: no output)")
            continue
        if (yield from now()) - started >= DIAGNOSIS_SECONDS:
            lines.append(f"    (log not read: the diagnosis took {DIAGNOSIS_SECONDS:g} s already)")
            continue
        lines += [f"    {line}" for line in (yield from _log_tail(app, pod.id, secrets))]
    if len(failing) > PODS_SHOWN:
        lines.append(f"  … and {len(failing) - PODS_SHOWN} more")
    return "\n".join(lines)


def build_pod_diagnosis(app: str, pid: str) -> Flow[str]:
    """Flow: one line on a failed build's pod (its status, or that it is gone); never raises.
    The build's own log is in the error already."""
    if not pid:
        return ""
    try:
        pod = yield from call(process_routes.get(app, pid))
    except ConvoxNotFoundError:
        return f"Build pod {pid} is gone (the rack removes a finished pod about 5 s after it ends)"
    except ConvoxError as exc:
        return f"Could not read build pod {pid}: {_short(exc)}"
    return f"Build pod {_describe(pod)}"


def diagnosed(diagnosis: Flow[str], what: str) -> Flow[str]:
    """Flow: ``diagnosis``'s text, or one "could not read ``what``" line for whatever it raised:
    a diagnosis must never replace the error it explains (only cancellation goes through)."""
    try:
        return (yield from diagnosis)
    except Exception as exc:  # the error being explained is the one to raise
        return f"Could not read {what}: {_short(exc)}"
