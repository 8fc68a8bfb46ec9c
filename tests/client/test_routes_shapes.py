"""Every REST route: the exact request each client method sends, and how the answer is read.

One table row per route; each row runs on the sync and on the async client.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from convox_provider.client.models import (
    App,
    AppConfig,
    Build,
    Capacity,
    Certificate,
    Instance,
    Process,
    Registry,
    Release,
    Resource,
    ResourceType,
    Service,
    System,
    SystemJwt,
)

APP = {
    "generation": "3",
    "locked": False,
    "name": "myapp",
    "release": "RKQZPLMNOA",
    "router": "0a1b2c3d4e5f.convox.cloud",
    "status": "running",
    "parameters": {"BuildMem": "2048"},
}
BUILD = {
    "id": "BHTQWERTYU",
    "app": "myapp",
    "description": "build 1a2b3c4d5e fix login",
    "entrypoint": "",
    "git-sha": "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b",
    "logs": "",
    "manifest": "services:\n  web:\n    build: .\n",
    "process": "build-7xk2p",
    "release": "",
    "reason": "",
    "repository": "",
    "status": "running",
    "started": "2026-01-15T14:28:02.118734512Z",
    "ended": "0001-01-01T00:00:00Z",
}
RELEASE = {
    "id": "RKQZPLMNOA",
    "app": "myapp",
    "build": "BHTQWERTYU",
    "env": "DATABASE_URL=postgres://db/app\nLOG_LEVEL=info",
    "manifest": "services:\n  web:\n    build: .\n",
    "description": "env add:LOG_LEVEL",
    "created": "2026-01-15T14:31:05.447120931Z",
}
SERVICE = {
    "count": 2,
    "cpu": 256,
    "domain": "web.myapp.0a1b2c3d4e5f.convox.cloud",
    "gpu": 0,
    "gpu-vendor": "",
    "memory": 512,
    "name": "web",
    "nlb": None,
    "ports": [{"balancer": 443, "certificate": "", "container": 3000}],
    "min": 2,
    "max": 2,
}
PROCESS = {
    "id": "run-abcde",
    "app": "myapp",
    "command": "bin/migrate",
    "cpu": 0,
    "gpu": 0,
    "host": "",
    "image": "registry/myapp:web.BHTQWERTYU",
    "instance": "",
    "memory": 0,
    "name": "web",
    "ports": None,
    "release": "RKQZPLMNOA",
    "started": "2026-01-15T14:30:51Z",
    "status": "pending",
    "service": "web",
}
SYSTEM = {
    "count": 0,
    "domain": "router.0a1b2c3d4e5f.convox.cloud",
    "name": "production",
    "provider": "aws",
    "rack-domain": "api.0a1b2c3d4e5f.convox.cloud",
    "router-internal": "",
    "region": "",
    "status": "running",
    "type": "",
    "version": "3.24.9",
}
RESOURCE = {"name": "db", "type": "postgres", "status": "running", "url": "postgres://u:p@db/app"}
WEBHOOK = {
    "name": "deploys",
    "type": "webhook",
    "status": "running",
    "url": "https://hooks.example/x",
    "parameters": {"Url": "https://hooks.example/x"},
}
INSTANCE = {
    "agent": False,
    "cpu": 0.4,
    "cpu-capacity": 2,
    "cpu-allocatable": 1.9,
    "gpu-capacity": 0,
    "gpu-allocatable": 0,
    "id": "ip-10-1-40-12.ec2.internal",
    "memory": 900,
    "memory-capacity": 7800,
    "memory-allocatable": 7000,
    "private-ip": "10.1.40.12",
    "processes": 12,
    "public-ip": "",
    "status": "running",
    "started": "2026-01-10T08:00:00Z",
}
CERTIFICATE = {
    "id": "cert-abc12",
    "domain": "example.org",
    "domains": ["example.org", "www.example.org"],
    "expiration": "2027-01-01T00:00:00Z",
    "status": "",
}
REGISTRY = {"server": "ghcr.io", "username": "bot", "password": "ghp_secret"}

OK = object()
"""Marker reply: the rack's ``ok\\n`` text answer."""


@dataclass
class Route:
    """One route: the client call, the request it must send, the answer and its reading."""

    call: Callable[[Any], Any]
    method: str
    path: str
    reply: Any = OK
    form: list[tuple[str, str]] | None = None
    query: list[tuple[str, str]] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)
    check: Callable[[Any], bool] = lambda result: result is None


ROUTES: dict[str, Route] = {
    # -- apps (§4.1) --
    "apps.list": Route(
        lambda c: c.apps.list(),
        "GET",
        "/apps",
        reply=[APP],
        check=lambda r: [a.name for a in r] == ["myapp"] and isinstance(r[0], App),
    ),
    "apps.get": Route(
        lambda c: c.apps.get("myapp"),
        "GET",
        "/apps/myapp",
        reply=APP,
        check=lambda r: r.release == "RKQZPLMNOA" and r.parameters == {"BuildMem": "2048"},
    ),
    "apps.create": Route(
        lambda c: c.apps.create("myapp", timeout=600),
        "POST",
        "/apps",
        reply={**APP, "status": "updating", "release": ""},
        form=[("name", "myapp"), ("generation", "2"), ("timeout", "600")],
        check=lambda r: r.status == "updating",
    ),
    "apps.create minimal": Route(
        lambda c: c.apps.create("myapp"),
        "POST",
        "/apps",
        reply=APP,
        form=[("name", "myapp"), ("generation", "2")],
        check=lambda r: isinstance(r, App),
    ),
    "apps.update": Route(
        lambda c: c.apps.update("myapp", parameters={"BuildMem": "2048", "BuildCpu": "512"}),
        "PUT",
        "/apps/myapp",
        form=[("parameters", "BuildCpu=512&BuildMem=2048")],
    ),
    "apps.update lock": Route(
        lambda c: c.apps.update("myapp", lock=True),
        "PUT",
        "/apps/myapp",
        form=[("lock", "true")],
    ),
    "apps.delete": Route(lambda c: c.apps.delete("myapp"), "DELETE", "/apps/myapp"),
    "apps.cancel": Route(lambda c: c.apps.cancel("myapp"), "POST", "/apps/myapp/cancel"),
    "apps.config_list": Route(
        lambda c: c.apps.config_list("myapp"),
        "GET",
        "/apps/myapp/configs",
        reply=[{"name": "cli-env-mask", "value": "SECRET"}],
        check=lambda r: r == [AppConfig(name="cli-env-mask", value="SECRET")],
    ),
    "apps.config_get": Route(
        lambda c: c.apps.config_get("myapp", "cli-env-mask"),
        "GET",
        "/apps/myapp/configs/cli-env-mask",
        reply={"name": "cli-env-mask", "value": "SECRET"},
        check=lambda r: r.value == "SECRET",
    ),
    "apps.config_set": Route(
        lambda c: c.apps.config_set("myapp", "cli-env-mask", value="SECRET,TOKEN"),
        "PUT",
        "/apps/myapp/configs/cli-env-mask",
        form=[("value", base64.b64encode(b"SECRET,TOKEN").decode())],
    ),
    "apps.config_set bytes": Route(
        lambda c: c.apps.config_set("myapp", "blob", value=b"\x00\xff"),
        "PUT",
        "/apps/myapp/configs/blob",
        form=[("value", "AP8=")],
    ),
    # -- objects (§4.2) --
    "objects.fetch": Route(
        lambda c: c.objects.fetch("myapp", "/src/v1.0/\u00fcber+x@2.tgz"),
        "GET",
        "/apps/myapp/objects/src/v1.0/%C3%BCber+x@2.tgz",
        reply=b"\x1f\x8b raw bytes",
        check=lambda r: r == b"\x1f\x8b raw bytes",
    ),
    "objects.delete": Route(
        lambda c: c.objects.delete("myapp", "tmp/x.tgz"), "DELETE", "/apps/myapp/objects/tmp/x.tgz"
    ),
    "objects.list": Route(
        lambda c: c.objects.list("myapp", prefix="tmp/"),
        "GET",
        "/apps/myapp/objects",
        reply=["myapp/tmp/a.tgz", "myapp/tmp/b.tgz"],
        query=[("prefix", "tmp/")],
        check=lambda r: r == ["myapp/tmp/a.tgz", "myapp/tmp/b.tgz"],
    ),
    "objects.list all": Route(
        lambda c: c.objects.list("myapp"),
        "GET",
        "/apps/myapp/objects",
        reply=[],
        check=lambda r: r == [],
    ),
    # -- builds (§4.3) --
    "builds.create": Route(
        lambda c: c.builds.create(
            "myapp",
            "object://myapp/tmp/src.tgz",
            description="build 1a2b fix",
            manifest="deploy/convox.yml",
            development=False,
            build_args={"NODE_ENV": "production", "A": "1"},
            git_sha="1a2b3c",
            wildcard_domain=True,
        ),
        "POST",
        "/apps/myapp/builds",
        reply=BUILD,
        form=[
            ("url", "object://myapp/tmp/src.tgz"),
            ("description", "build 1a2b fix"),
            ("manifest", "deploy/convox.yml"),
            ("development", "false"),
            ("build-args", "NODE_ENV=production,A=1"),
            ("git-sha", "1a2b3c"),
            ("wildcard-domain", "true"),
        ],
        check=lambda r: r.id == "BHTQWERTYU" and r.ended is None and r.process == "build-7xk2p",
    ),
    "builds.create external": Route(
        lambda c: c.builds.create("myapp", external=True),
        "POST",
        "/apps/myapp/builds",
        reply={**BUILD, "status": "created"},
        form=[("external", "true")],
        check=lambda r: r.status == "created",
    ),
    "builds.list": Route(
        lambda c: c.builds.list("myapp", limit=3),
        "GET",
        "/apps/myapp/builds",
        reply=[BUILD],
        query=[("limit", "3")],
        check=lambda r: isinstance(r[0], Build) and r[0].git_sha.startswith("1a2b"),
    ),
    "builds.list default": Route(
        lambda c: c.builds.list("myapp"),
        "GET",
        "/apps/myapp/builds",
        reply=[],
        check=lambda r: r == [],
    ),
    "builds.get": Route(
        lambda c: c.builds.get("myapp", "BHTQWERTYU"),
        "GET",
        "/apps/myapp/builds/BHTQWERTYU",
        reply=BUILD,
        check=lambda r: r.started == datetime(2026, 1, 15, 14, 28, 2, 118734, tzinfo=timezone.utc),
    ),
    "builds.update": Route(
        lambda c: c.builds.update(
            "myapp",
            "BHTQWERTYU",
            status="complete",
            release="RKQZPLMNOA",
            manifest="services: {}",
            logs="object://myapp/build/BHTQWERTYU/logs",
            entrypoint="/bin/sh",
            started=datetime(2026, 1, 15, 14, 28, 2, 118734, tzinfo=timezone.utc),
            ended=datetime(2026, 1, 15, 15, 30, 41, tzinfo=timezone(timedelta(hours=1))),
        ),
        "PUT",
        "/apps/myapp/builds/BHTQWERTYU",
        reply={**BUILD, "status": "complete"},
        form=[
            ("status", "complete"),
            ("release", "RKQZPLMNOA"),
            ("manifest", "services: {}"),
            ("logs", "object://myapp/build/BHTQWERTYU/logs"),
            ("entrypoint", "/bin/sh"),
            ("started", "20260115.142802.118734000"),
            ("ended", "20260115.143041.000000000"),
        ],
        check=lambda r: r.status == "complete",
    ),
    "builds.import_image": Route(
        lambda c: c.builds.import_image(
            "myapp",
            "BHTQWERTYU",
            "ghcr.io/org/web:1.2",
            src_creds_user="bot",
            src_creds_pass="ghp_x",
        ),
        "POST",
        "/apps/myapp/builds/BHTQWERTYU/image",
        reply=b"",
        form=[
            ("image", "ghcr.io/org/web:1.2"),
            ("src-creds-user", "bot"),
            ("src-creds-pass", "ghp_x"),
        ],
    ),
    # -- releases (§4.4) --
    "releases.create": Route(
        lambda c: c.releases.create(
            "myapp",
            build="BHTQWERTYU",
            env={"LOG_LEVEL": "info", "DATABASE_URL": "postgres://db/app"},
            description="deploy",
            parent_release="RPARENTAAA",
        ),
        "POST",
        "/apps/myapp/releases",
        reply=RELEASE,
        form=[
            ("build", "BHTQWERTYU"),
            ("env", "DATABASE_URL=postgres://db/app\nLOG_LEVEL=info"),
            ("description", "deploy"),
            ("parent-release", "RPARENTAAA"),
        ],
        check=lambda r: r.environment == {"DATABASE_URL": "postgres://db/app", "LOG_LEVEL": "info"},
    ),
    "releases.create raw env": Route(
        lambda c: c.releases.create("myapp", env="B=2\nA=1\n#C=3"),
        "POST",
        "/apps/myapp/releases",
        reply=RELEASE,
        form=[("env", "B=2\nA=1\n#C=3")],
        check=lambda r: isinstance(r, Release),
    ),
    "releases.create empty env": Route(
        lambda c: c.releases.create("myapp", env={}),
        "POST",
        "/apps/myapp/releases",
        reply=RELEASE,
        form=[("env", "")],
        check=lambda r: isinstance(r, Release),
    ),
    "releases.list": Route(
        lambda c: c.releases.list("myapp", limit=1),
        "GET",
        "/apps/myapp/releases",
        reply=[RELEASE],
        query=[("limit", "1")],
        check=lambda r: [x.id for x in r] == ["RKQZPLMNOA"],
    ),
    "releases.get": Route(
        lambda c: c.releases.get("myapp", "RKQZPLMNOA"),
        "GET",
        "/apps/myapp/releases/RKQZPLMNOA",
        reply=RELEASE,
        check=lambda r: r.build == "BHTQWERTYU",
    ),
    "releases.promote": Route(
        lambda c: c.releases.submit_promote("myapp", "RKQZPLMNOA"),
        "POST",
        "/apps/myapp/releases/RKQZPLMNOA/promote",
        form=[("force", "false")],
    ),
    "releases.promote options": Route(
        lambda c: c.releases.submit_promote(
            "myapp", "RKQZPLMNOA", force=True, timeout=600, min_count=50, max_count=200, idle=True
        ),
        "POST",
        "/apps/myapp/releases/RKQZPLMNOA/promote",
        form=[
            ("force", "true"),
            ("timeout", "600"),
            ("min", "50"),
            ("max", "200"),
            ("idle", "true"),
        ],
    ),
    # -- services (§4.5) --
    "services.list": Route(
        lambda c: c.services.list("myapp"),
        "GET",
        "/apps/myapp/services",
        reply=[SERVICE],
        check=lambda r: (
            isinstance(r[0], Service) and r[0].nlb == [] and r[0].ports[0].balancer == 443
        ),
    ),
    "services.update count": Route(
        lambda c: c.services.update("myapp", "web", count=3, cpu=512, memory=1024),
        "PUT",
        "/apps/myapp/services/web",
        form=[("count", "3"), ("cpu", "512"), ("memory", "1024")],
    ),
    "services.update range": Route(
        lambda c: c.services.update("myapp", "web", min=0, max=5, gpu=1, gpu_vendor="nvidia"),
        "PUT",
        "/apps/myapp/services/web",
        form=[("gpu", "1"), ("gpu-vendor", "nvidia"), ("min", "0"), ("max", "5")],
    ),
    "services.restart": Route(
        lambda c: c.services.restart("myapp", "web"), "POST", "/apps/myapp/services/web/restart"
    ),
    # -- processes (§4.6) --
    "processes.list": Route(
        lambda c: c.processes.list("myapp", service="web", release="RKQZPLMNOA"),
        "GET",
        "/apps/myapp/processes",
        reply=[PROCESS],
        query=[("service", "web"), ("release", "RKQZPLMNOA")],
        check=lambda r: isinstance(r[0], Process) and r[0].ports == [],
    ),
    "processes.list all": Route(
        lambda c: c.processes.list("myapp"),
        "GET",
        "/apps/myapp/processes",
        reply=[],
        check=lambda r: r == [],
    ),
    "processes.get": Route(
        lambda c: c.processes.get("myapp", "web-5d8f7c9b6-x2kqp"),
        "GET",
        "/apps/myapp/processes/web-5d8f7c9b6-x2kqp",
        reply=PROCESS,
        check=lambda r: r.status == "pending" and r.process_status.value == "pending",
    ),
    "processes.stop": Route(
        lambda c: c.processes.stop("myapp", "run-abcde"),
        "DELETE",
        "/apps/myapp/processes/run-abcde",
    ),
    "processes.delete": Route(
        lambda c: c.processes.delete("myapp", "run-abcde"),
        "DELETE",
        "/apps/myapp/processes/run-abcde",
    ),
    "processes.run": Route(
        lambda c: c.processes.run_detached(
            "myapp",
            "web",
            command="bin/migrate --all",
            release="RKQZPLMNOA",
            environment={"FOO": "bar", "COLOR": "blue green"},
            cpu=250,
            cpu_limit=500,
            memory=512,
            memory_limit=1024,
            gpu=1,
            gpu_vendor="nvidia",
            image="registry/custom:1",
            volumes={"/data": "/mnt/data"},
            use_service_volume=True,
            node_labels={"pool": "batch", "zone": "a"},
            privileged=False,
            system_critical=True,
            height=40,
            width=120,
        ),
        "POST",
        "/apps/myapp/services/web/processes",
        reply=PROCESS,
        options={
            "command": "bin/migrate --all",
            "release": "RKQZPLMNOA",
            "environment": "COLOR=blue+green&FOO=bar",
            "cpu": "250",
            "cpu-limit": "500",
            "memory": "512",
            "memory-limit": "1024",
            "gpu": "1",
            "gpu-vendor": "nvidia",
            "image": "registry/custom:1",
            "volumes": "%2Fdata=%2Fmnt%2Fdata",
            "use-service-volume": "true",
            "node-labels": "pool=batch,zone=a",
            "privileged": "false",
            "system-critical": "true",
            "height": "40",
            "width": "120",
        },
        check=lambda r: r.id == "run-abcde",
    ),
    "processes.run argv": Route(
        lambda c: c.processes.run_detached(
            "myapp", "web", command=["sh", "-c", "rake db:migrate && echo ok"]
        ),
        "POST",
        "/apps/myapp/services/web/processes",
        reply=PROCESS,
        options={"command": "sh -c 'rake db:migrate && echo ok'"},
        check=lambda r: isinstance(r, Process),
    ),
    "processes.run default command": Route(
        lambda c: c.processes.run_detached("myapp", "worker"),
        "POST",
        "/apps/myapp/services/worker/processes",
        reply=PROCESS,
        check=lambda r: isinstance(r, Process),
    ),
    # -- resources (§4.9) --
    "resources.list": Route(
        lambda c: c.resources.list("myapp"),
        "GET",
        "/apps/myapp/resources",
        reply=[RESOURCE],
        check=lambda r: isinstance(r[0], Resource) and r[0].url.startswith("postgres://"),
    ),
    "resources.get": Route(
        lambda c: c.resources.get("myapp", "db"),
        "GET",
        "/apps/myapp/resources/db",
        reply=RESOURCE,
        check=lambda r: r.type == "postgres",
    ),
    "resources.system_list": Route(
        lambda c: c.resources.system_list(),
        "GET",
        "/resources",
        reply=[WEBHOOK],
        check=lambda r: r[0].parameters == {"Url": "https://hooks.example/x"},
    ),
    "resources.system_get": Route(
        lambda c: c.resources.system_get("deploys"),
        "GET",
        "/resources/deploys",
        reply=WEBHOOK,
        check=lambda r: r.type == "webhook",
    ),
    "resources.system_create": Route(
        lambda c: c.resources.system_create(
            "webhook", name="deploys", parameters={"Url": "https://hooks.example/x?a=1&b=2"}
        ),
        "POST",
        "/resources",
        reply=WEBHOOK,
        form=[
            ("kind", "webhook"),
            ("name", "deploys"),
            ("parameters", "Url=https%3A%2F%2Fhooks.example%2Fx%3Fa%3D1%26b%3D2"),
        ],
        check=lambda r: r.name == "deploys",
    ),
    "resources.system_delete": Route(
        lambda c: c.resources.system_delete("deploys"), "DELETE", "/resources/deploys"
    ),
    "resources.system_types": Route(
        lambda c: c.resources.system_types(),
        "OPTIONS",
        "/resources",
        reply=[
            {"name": "webhook", "parameters": [{"default": "", "description": "", "name": "Url"}]}
        ],
        check=lambda r: isinstance(r[0], ResourceType) and r[0].parameters[0].name == "Url",
    ),
    # -- instances (§4.10) --
    "instances.list": Route(
        lambda c: c.instances.list(),
        "GET",
        "/instances",
        reply=[INSTANCE],
        check=lambda r: isinstance(r[0], Instance) and r[0].private_ip == "10.1.40.12",
    ),
    "instances.terminate": Route(
        lambda c: c.instances.terminate("ip-10-1-40-12.ec2.internal"),
        "DELETE",
        "/instances/ip-10-1-40-12.ec2.internal",
    ),
    # -- registries (§4.11) --
    "registries.list": Route(
        lambda c: c.registries.list(),
        "GET",
        "/registries",
        reply=[REGISTRY],
        check=lambda r: isinstance(r[0], Registry) and r[0].server == "ghcr.io",
    ),
    "registries.add": Route(
        lambda c: c.registries.add("ghcr.io", "bot", "ghp_secret"),
        "POST",
        "/registries",
        reply=REGISTRY,
        form=[("server", "ghcr.io"), ("username", "bot"), ("password", "ghp_secret")],
        check=lambda r: r.username == "bot",
    ),
    "registries.remove": Route(
        lambda c: c.registries.remove("ghcr.io"), "DELETE", "/registries/ghcr.io"
    ),
    "registries.remove with path": Route(
        lambda c: c.registries.remove("registry.example.org:5000/team/"),
        "DELETE",
        "/registries/registry.example.org:5000/team/",
    ),
    # -- certificates (§4.11) --
    "certificates.list": Route(
        lambda c: c.certificates.list(),
        "GET",
        "/certificates",
        reply=[CERTIFICATE],
        check=lambda r: isinstance(r[0], Certificate) and r[0].domains[1] == "www.example.org",
    ),
    "certificates.list generated": Route(
        lambda c: c.certificates.list(generated=True),
        "GET",
        "/certificates",
        reply=[],
        query=[("generated", "true")],
        check=lambda r: r == [],
    ),
    "certificates.create": Route(
        lambda c: c.certificates.create("-----PUB-----", "-----KEY-----", chain="-----CHAIN-----"),
        "POST",
        "/certificates",
        reply=CERTIFICATE,
        form=[("pub", "-----PUB-----"), ("key", "-----KEY-----"), ("chain", "-----CHAIN-----")],
        check=lambda r: r.id == "cert-abc12",
    ),
    "certificates.generate": Route(
        lambda c: c.certificates.generate(
            ["example.org", "www.example.org"], issuer="letsencrypt", duration=timedelta(days=90)
        ),
        "POST",
        "/certificates/generate",
        reply=CERTIFICATE,
        form=[
            ("domains", "example.org,www.example.org"),
            ("issuer", "letsencrypt"),
            ("duration", "2160h0m0s"),
        ],
        check=lambda r: r.expiration == datetime(2027, 1, 1, tzinfo=timezone.utc),
    ),
    "certificates.delete": Route(
        lambda c: c.certificates.delete("cert-abc12"), "DELETE", "/certificates/cert-abc12"
    ),
    # -- system (§1.6, §4.8) --
    "system.get": Route(
        lambda c: c.system.get(),
        "GET",
        "/system",
        reply=SYSTEM,
        check=lambda r: isinstance(r, System) and r.rack_domain.startswith("api."),
    ),
    "system.update": Route(
        lambda c: c.system.update(
            count=3, force=True, parameters={"node_type": "t3.large"}, type="x", version="3.24.9"
        ),
        "PUT",
        "/system",
        form=[
            ("count", "3"),
            ("force", "true"),
            ("parameters", "node_type=t3.large"),
            ("type", "x"),
            ("version", "3.24.9"),
        ],
    ),
    "system.processes": Route(
        lambda c: c.system.processes(all=True),
        "GET",
        "/system/processes",
        reply=[PROCESS],
        query=[("all", "true")],
        check=lambda r: isinstance(r[0], Process),
    ),
    "system.releases": Route(
        lambda c: c.system.releases(),
        "GET",
        "/system/releases",
        reply=[{"id": "3.24.9", "created": "2026-01-01T00:00:00Z"}],
        check=lambda r: r[0].id == "3.24.9",
    ),
    "system.capacity": Route(
        lambda c: c.system.capacity(),
        "GET",
        "/system/capacity",
        reply={"cluster-cpu": 4000, "cluster-memory": 16000, "process-count": 7},
        check=lambda r: isinstance(r, Capacity) and r.cluster_cpu == 4000 and r.process_count == 7,
    ),
    "system.jwt_token": Route(
        lambda c: c.system.jwt_token(role="read", duration_in_hour=24),
        "POST",
        "/system/jwt/token",
        reply={"token": "eyJhbGciOi.x.y"},
        form=[("role", "read"), ("durationInHour", "24")],
        check=lambda r: isinstance(r, SystemJwt) and r.token == "eyJhbGciOi.x.y",
    ),
    "system.jwt_rotate": Route(lambda c: c.system.jwt_rotate(), "PUT", "/system/jwt/rotate"),
    "system.auth": Route(lambda c: c.system.auth(), "GET", "/auth"),
    "system.check": Route(lambda c: c.system.check(), "GET", "/check"),
    # -- api (escape hatch) --
    "api.get": Route(
        lambda c: c.api.get("/apps/myapp/budget", params={"x": "1"}),
        "GET",
        "/apps/myapp/budget",
        reply={"limit": 10},
        query=[("x", "1")],
        check=lambda r: r == {"limit": 10},
    ),
}


@pytest.mark.parametrize("name", list(ROUTES))
async def test_route_request_and_answer(rack, name: str) -> None:
    route = ROUTES[name]
    if route.reply is OK:
        rack.ok()
    elif isinstance(route.reply, bytes):
        rack.reply(202 if name == "builds.import_image" else 200, content=route.reply)
    else:
        rack.reply(json=route.reply)

    result = await rack(route.call)

    request = rack.request
    assert request.method == route.method
    assert rack.path == route.path
    assert rack.query == route.query
    assert rack.options == route.options
    if route.form is None:
        assert request.content == b""
        assert "content-type" not in request.headers
    else:
        assert rack.form == route.form
    assert route.check(result), result


async def test_every_resource_group_is_on_the_client(rack) -> None:
    groups = {
        "api": "Api",
        "apps": "Apps",
        "builds": "Builds",
        "certificates": "Certificates",
        "environment": "Environment",
        "instances": "Instances",
        "objects": "Objects",
        "processes": "Processes",
        "registries": "Registries",
        "releases": "Releases",
        "resources": "Resources",
        "services": "Services",
        "system": "SystemResource",
    }
    assert {name: type(getattr(rack.client, name)).__name__ for name in groups} == groups
