"""Builds fail where a rack's build fails, and log what the rack's builder logs (issue 15, 1+5)."""

from __future__ import annotations

import re

import httpx
import pytest

from convox_provider.testing import RackEmulator

from .conftest import DOCKERFILE, tgz


def _build(
    http: httpx.Client, files: dict[str, bytes], **params: str
) -> tuple[dict[str, str], str]:
    """Upload ``files`` as a tarball, build it; the finished build and its log."""
    url = http.post("/apps/demo/objects/tmp/src.tgz", content=tgz(files)).json()["Url"]
    build = http.post("/apps/demo/builds", data={"url": url, **params}).json()
    done = http.get(f"/apps/demo/builds/{build['id']}").json()
    log = http.get(f"/apps/demo/objects/build/{build['id']}/logs").text
    return done, log


def _fails(http: httpx.Client, manifest: str, files: dict[str, bytes] | None = None) -> str:
    """The ``ERROR:`` text of a build that must fail without a release."""
    source = {"convox.yml": manifest.encode(), "Dockerfile": DOCKERFILE, **(files or {})}
    build, log = _build(http, source)
    assert (build["status"], build["release"]) == ("failed", "")
    assert log.count("ERROR: ") == 1
    return log.split("ERROR: ", 1)[1]


@pytest.mark.parametrize(
    ("manifest", "error"),
    [
        ("services:\n  web:\n    build: .\n   port: 3000\n", "yaml: line 4: "),
        ("services:\n  web: [a, b]\n", "cannot unmarshal !!seq into manifest.Service"),
        (
            "services:\n  web:\n    command: [a, b]\n",
            "services.web.command: cannot unmarshal !!seq",
        ),
        ("services:\n  web:\n    build: [a]\n", "unknown type for service build: []interface {}"),
        ("services:\n  web:\n    port: http\n", 'strconv.Atoi: parsing "http": invalid syntax'),
        ("services:\n  web:\n    environment: {A: b}\n", "unknown type for service environment"),
        ("services:\n  Web:\n    build: .\n", "validation errors:\nservice name Web invalid"),
        (
            "services:\n  web:\n    resources: [db]\n",
            "service web references a resource that does not exist: db",
        ),
        ("resources:\n  db:\n    options: {}\n", 'resource "db" has blank type'),
        (
            "services:\n  web: {}\ntimers:\n  t:\n    schedule: '* * * * *'\n    service: job\n",
            "timer t references a service that does not exist: job",
        ),
        ("services:\n  web:\n    <<: *nothing\n", "unknown anchor 'nothing' referenced"),
    ],
)
def test_an_invalid_manifest_fails_the_build(
    http: httpx.Client, demo: dict[str, str], manifest: str, error: str
) -> None:
    assert error in _fails(http, manifest)


def test_a_failed_manifest_check_logs_nothing_before_its_error(
    http: httpx.Client, demo: dict[str, str]
) -> None:
    build, log = _build(http, {"convox.yml": b"services: [x]\n"})
    assert build["manifest"] == "services: [x]\n"  # the builder stored it before checking it
    assert log == (
        "ERROR: yaml: unmarshal errors:\n"
        "  services: cannot unmarshal !!seq into manifest.Services\n"
    )


def test_a_build_service_needs_its_dockerfile(http: httpx.Client, demo: dict[str, str]) -> None:
    build, log = _build(http, {"convox.yml": b"services:\n  web:\n    build: .\n"})
    assert (build["status"], build["release"]) == ("failed", "")
    assert re.fullmatch(
        r"Building: \.\nERROR: open /tmp/\d+/Dockerfile: no such file or directory\n", log
    )
    # no build and no image means "build: ." (the rack's default), which needs one too
    _, log = _build(http, {"convox.yml": b"services:\n  web:\n    port: 3000\n"})
    assert log.endswith("/Dockerfile: no such file or directory\n")
    # build.manifest names another Dockerfile, under build.path
    manifest = b"services:\n  api:\n    build:\n      path: api\n      manifest: Dockerfile.prod\n"
    _, log = _build(http, {"convox.yml": manifest, "Dockerfile": DOCKERFILE})
    assert log.startswith("Building: api\n")
    assert log.endswith("/api/Dockerfile.prod: no such file or directory\n")
    build, log = _build(http, {"convox.yml": manifest, "api/Dockerfile.prod": b"FROM alpine\n"})
    assert build["status"] == "complete"
    assert "Step 1/1 : FROM alpine\n" in log


def test_unknown_keys_are_ignored_as_the_rack_ignores_them(
    http: httpx.Client, demo: dict[str, str]
) -> None:
    manifest = b"servces:\n  web: {}\nservices:\n  web:\n    bild: nope\n    colour: blue\n"
    build, _ = _build(http, {"convox.yml": manifest, "Dockerfile": DOCKERFILE})
    assert build["status"] == "complete"


def test_a_good_build_logs_the_builders_steps(
    http: httpx.Client, rack: RackEmulator, demo: dict[str, str]
) -> None:
    manifest = (
        b"services:\n  web:\n    build: .\n    port: 3000\n  worker:\n    build: .\n"
        b"  redis:\n    image: redis:7\n"
    )
    dockerfile = b"# syntax\nFROM python:3.12\nRUN pip install \\\n    flask\nCOPY . /app\n"
    build, log = _build(http, {"convox.yml": manifest, "Dockerfile": dockerfile})
    assert build["status"] == "complete"
    assert build["release"].startswith("R")
    bid, registry = build["id"], rack.state.registry("demo")
    lines = log.splitlines()
    assert lines[0] == "Building: ."
    assert lines[1].startswith("Sending build context to Docker daemon  ")
    steps = [line for line in lines if line.startswith("Step ")]
    assert steps == [
        "Step 1/3 : FROM python:3.12",
        "Step 2/3 : RUN pip install flask",
        "Step 3/3 : COPY . /app",
    ]
    assert re.fullmatch(
        r"Successfully tagged [0-9a-f]{64}:latest", lines[lines.index(steps[-1]) + 3]
    )
    assert "Running: docker pull redis:7" in lines
    assert f"Running: docker tag redis:7 emulator/demo:redis.{bid}" in lines
    pushes = [line for line in lines if line.startswith("Running: docker push ")]
    assert pushes == [
        f"Running: docker push {registry}:{service}.{bid}" for service in ("redis", "web", "worker")
    ]
    assert lines[-1] == pushes[-1]  # no closing line: the real builder prints none
    assert not any(w in log for w in ("Building service", "Build complete", "Pushing:"))


def test_anchors_and_interpolation(http: httpx.Client, rack: RackEmulator) -> None:
    rack.create_app("demo")
    rack.add_release("demo", "services:\n  web: {}\n", env={"DIR": "svc", "IMAGE": "nginx:1"})
    manifest = (
        b"services:\n"
        b"  web: &base\n    build: ${DIR}\n    port: 3000\n"
        b"  copy:\n    <<: *base\n    port: 4000\n"
        b"  proxy:\n    image: ${IMAGE}\n    command: ${MISSING}run\n"
    )
    build, log = _build(http, {"convox.yml": manifest, "svc/Dockerfile": b"FROM alpine\n"})
    assert build["status"] == "complete", log
    assert log.count("Building: svc\n") == 1  # web and copy share one build
    assert "Running: docker pull nginx:1\n" in log
    assert build["manifest"] == manifest.decode()  # stored as written, markers kept


def test_scripted_failures_stop_inside_the_first_step(
    http: httpx.Client, rack: RackEmulator, demo: dict[str, str]
) -> None:
    rack.scripts.fail_next_build("The command '/bin/sh -c make' returned a non-zero code: 2")
    build, log = _build(http, {"convox.yml": b"services:\n  web: {}\n", "Dockerfile": DOCKERFILE})
    assert (build["status"], build["release"]) == ("failed", "")
    assert log.splitlines()[-2:] == [
        "Step 1/2 : FROM scratch",
        "ERROR: The command '/bin/sh -c make' returned a non-zero code: 2",
    ]
