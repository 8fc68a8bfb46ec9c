"""The build pod's work: check the manifest, find the Dockerfiles, write the builder's log.

The wording follows the rack's Docker build engine (*convox/convox pkg/build/docker.go*):
``Building: <path>`` and the ``docker build`` output per distinct build, ``Running: docker pull
<image>`` per image service, ``Running: docker tag <from> <rack>/<app>:<service>.<build>`` per
service, then ``Running: docker tag`` and ``Running: docker push`` to the app's registry. There
is no closing line: a build that ends without ``ERROR:`` succeeded. A failure is the
returned ``error``; the caller appends ``ERROR: <error>`` and fails the build.
"""

from __future__ import annotations

import hashlib
import posixpath
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from . import archive
from .validation import BuildTarget, check_manifest
from .yamlsubset import ManifestError

__all__ = ["BuildJob", "BuildOutcome", "run_builder"]


@dataclass(frozen=True)
class BuildJob:
    """What the build pod is given."""

    build_id: str
    app: str
    rack: str
    registry: str
    manifest_text: str
    source: Path
    env: dict[str, str] = field(default_factory=dict)
    fail: str | None = None


@dataclass
class BuildOutcome:
    """The log lines the build writes and, when it fails, why."""

    lines: list[str] = field(default_factory=list)
    error: str | None = None


def _join(*parts: str) -> str:
    return posixpath.normpath(posixpath.join(*parts)).lstrip("/") or "."


def dockerfile_steps(text: str) -> list[str]:
    """Dockerfile instructions as ``docker build`` numbers them (continuations joined)."""
    steps: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (line == "" or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        steps.append((pending + line).strip())
        pending = ""
    if pending.strip():
        steps.append(pending.strip())
    return steps


def _short(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def run_builder(job: BuildJob) -> BuildOutcome:
    """Everything the build writes up to its end (the rack's order, §4.3)."""
    out = BuildOutcome()
    try:
        targets = check_manifest(job.manifest_text, job.env)
    except ManifestError as exc:
        out.error = str(exc)
        return out
    builds: dict[tuple[str, str], list[BuildTarget]] = {}
    for target in targets:
        if not target.image:
            builds.setdefault((target.path, target.dockerfile), []).append(target)
    wanted = {_join(path, dockerfile) for path, dockerfile in builds}
    try:
        files, size = archive.read_source_files(job.source, wanted)
    except archive.SourceError as exc:
        out.error = str(exc)
        return out
    tmp = f"/tmp/{secrets.randbelow(9 * 10**8) + 10**8}"
    tags: dict[str, list[str]] = {}
    for (path, dockerfile), members in builds.items():
        out.lines.append(f"Building: {path}")
        text = files.get(_join(path, dockerfile))
        if text is None:
            full = posixpath.normpath(posixpath.join(tmp, path, dockerfile))
            out.error = f"open {full}: no such file or directory"
            return out
        digest = hashlib.sha256(f"{job.build_id}\0{path}\0{dockerfile}".encode()).hexdigest()
        out.lines.append(f"Sending build context to Docker daemon  {_size(size)}")
        steps = dockerfile_steps(text)
        if not steps:
            out.error = "the Dockerfile (Dockerfile) cannot be empty"
            return out
        layer = ""
        for index, step in enumerate(steps, start=1):
            out.lines.append(f"Step {index}/{len(steps)} : {step}")
            if job.fail is not None:
                out.error = job.fail
                return out
            layer = _short(job.build_id, path, dockerfile, str(index))
            out.lines.append(f" ---> {layer}")
        out.lines.append(f"Successfully built {layer}")
        out.lines.append(f"Successfully tagged {digest}:latest")
        tags[digest] = [f"{job.rack}/{job.app}:{m.service}.{job.build_id}" for m in members]
    for image in sorted({t.image for t in targets if t.image}):
        out.lines.append(f"Running: docker pull {image}")
        if job.fail is not None:
            out.error = job.fail
            return out
        tags[image] = [
            f"{job.rack}/{job.app}:{t.service}.{job.build_id}" for t in targets if t.image == image
        ]
    if job.fail is not None:  # nothing to build: the failure is the build's own
        out.error = job.fail
        return out
    pushes: dict[str, str] = {}
    for source in sorted(tags):
        for local in tags[source]:
            out.lines.append(f"Running: docker tag {source} {local}")
            service_tag = local.rsplit(":", 1)[1]
            pushes[local] = f"{job.registry}:{service_tag}"
    for local in sorted(pushes):
        out.lines.append(f"Running: docker tag {local} {pushes[local]}")
        out.lines.append(f"Running: docker push {pushes[local]}")
    return out


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.3g}{unit}"
        value /= 1000
    return f"{size}B"
