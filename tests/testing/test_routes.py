"""Each route of docs/rack-api.md §4: happy path, statuses and messages."""

from __future__ import annotations

import io
import json
import re
import tarfile

import httpx

from convox_provider.testing import RackEmulator
from convox_provider.testing.plugin import RackFactory

from .conftest import DOCKERFILE, MANIFEST, tgz

# --- apps ----------------------------------------------------------------------------------


def test_app_create_starts_updating_then_running(http: httpx.Client) -> None:
    created = http.post("/apps", data={"name": "shop", "generation": "2"})
    assert created.status_code == 200
    assert created.json() == {
        "generation": "3",
        "locked": False,
        "name": "shop",
        "release": "",
        "router": "emulator.convox.localhost",
        "status": "updating",
        "parameters": {},
    }
    assert http.get("/apps/shop").json()["status"] == "running"


def test_app_create_errors(http: httpx.Client) -> None:
    assert http.post("/apps", data={"name": "system"}).text == "app name is reserved\n"
    assert http.post("/apps", data={"name": "rack"}).status_code == 400
    http.post("/apps", data={"name": "dup"})
    conflict = http.post("/apps", data={"name": "dup"})
    assert (conflict.status_code, conflict.text) == (409, "app already exists: dup\n")
    invalid = http.post("/apps", data={"name": "Bad_Name"})
    assert invalid.status_code == 500
    assert 'Namespace "emulator-Bad_Name" is invalid' in invalid.text


def test_app_list_sorted_by_name(http: httpx.Client, rack: RackEmulator) -> None:
    for name in ("zeta", "alpha", "mid"):
        rack.create_app(name)
    assert [a["name"] for a in http.get("/apps").json()] == ["alpha", "mid", "zeta"]


def test_app_delete_lock_and_deleting(http: httpx.Client, convox_rack_factory: RackFactory) -> None:
    from convox_provider.testing import Timing

    rack = convox_rack_factory(timing=Timing(app_delete=0.3))
    client = httpx.Client(base_url=rack.url, auth=("convox", "password"))
    rack.create_app("old")
    client.put("/apps/old", data={"lock": "true"})
    locked = client.delete("/apps/old")
    assert (locked.status_code, locked.text) == (409, "app is locked: old\n")
    client.put("/apps/old", data={"lock": "false"})
    assert client.delete("/apps/old").text == "ok\n"
    assert client.get("/apps/old").json()["status"] == "deleting"
    import time

    time.sleep(0.35)
    gone = client.get("/apps/old")
    assert (gone.status_code, gone.text) == (404, "app not found: old\n")


def test_app_cancel_requires_updating(http: httpx.Client, demo: dict[str, str]) -> None:
    refused = http.post("/apps/demo/cancel")
    assert (refused.status_code, refused.text) == (403, "app is not updating\n")


def test_app_configs(http: httpx.Client, demo: dict[str, str]) -> None:
    assert http.get("/apps/demo/configs").json() == []
    missing = http.get("/apps/demo/configs/cli-env-mask")
    assert (missing.status_code, missing.text) == (404, "app config not found: cli-env-mask\n")
    assert http.put("/apps/demo/configs/cli-env-mask", data={"value": "U0VDUkVU"}).text == "ok\n"
    assert http.get("/apps/demo/configs/cli-env-mask").json() == {
        "name": "cli-env-mask",
        "value": "SECRET",
    }
    assert http.put("/apps/demo/configs/x", data={"value": "***"}).status_code == 400


def test_app_update_reapplies_release(http: httpx.Client, convox_rack_factory: RackFactory) -> None:
    from convox_provider.testing import Timing

    rack = convox_rack_factory(timing=Timing(rollout=0.2))
    rack.create_app("demo")
    client = httpx.Client(base_url=rack.url, auth=("convox", "password"))
    client.put("/apps/demo", data={"parameters": "BuildMem=1024"})
    assert client.get("/apps/demo").json()["status"] == "updating"


def test_app_metrics_unimplemented(http: httpx.Client, demo: dict[str, str]) -> None:
    response = http.get("/apps/demo/metrics")
    assert (response.status_code, response.text) == (501, "unimplemented\n")


# --- objects -------------------------------------------------------------------------------


def test_object_store_fetch_head_delete(http: httpx.Client, demo: dict[str, str]) -> None:
    stored = http.post(
        "/apps/demo/objects/src/a.tgz",
        content=b"\x1f\x8b\x08data",
        headers={"Content-Type": "application/octet-stream"},
    )
    assert stored.json() == {"Url": "object://demo/src/a.tgz"}
    fetched = http.get("/apps/demo/objects/src/a.tgz")
    assert fetched.content == b"\x1f\x8b\x08data"
    assert fetched.headers["content-type"] == "application/x-gzip"
    assert http.head("/apps/demo/objects/src/a.tgz").status_code == 200
    assert http.head("/apps/demo/objects/never").status_code == 200
    assert http.delete("/apps/demo/objects/src/a.tgz").text == "ok\n"
    missing = http.get("/apps/demo/objects/src/a.tgz")
    assert (missing.status_code, missing.text) == (404, "object not found: src/a.tgz\n")
    assert http.delete("/apps/demo/objects/src/a.tgz").status_code == 404


def test_object_empty_key_gets_random_tmp_key(http: httpx.Client, demo: dict[str, str]) -> None:
    url = http.post("/apps/demo/objects/", content=b"x").json()["Url"]
    assert re.fullmatch(r"object://demo/tmp/[0-9a-f]{30}", url)


def test_object_key_validation(
    http: httpx.Client, rack: RackEmulator, demo: dict[str, str]
) -> None:
    from http import client as httpclient
    from urllib.parse import urlsplit

    from .conftest import basic

    parts = urlsplit(rack.url)
    conn = httpclient.HTTPConnection(parts.hostname or "", parts.port)
    conn.request(
        "POST", "/apps/demo/objects/a/../../etc", body=b"x", headers={"Authorization": basic()}
    )
    bad = conn.getresponse()
    assert (bad.status, bad.read()) == (400, b"invalid object key\n")
    conn.request("GET", "/apps/demo/objects/.", headers={"Authorization": basic()})
    dot = conn.getresponse()
    assert (dot.status, dot.read()) == (400, b"invalid object key\n")
    conn.close()
    assert http.get("/apps/demo/objects", params={"prefix": "tmp"}).status_code == 501
    assert http.get("/apps/demo/objects", params={"prefix": "../x"}).text == "invalid prefix\n"


def test_form_labelled_raw_body_is_swallowed(http: httpx.Client, demo: dict[str, str]) -> None:
    http.post(
        "/apps/demo/objects/swallowed",
        content=b"a=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert http.get("/apps/demo/objects/swallowed").content == b""


# --- builds --------------------------------------------------------------------------------


def _build(http: httpx.Client, files: dict[str, bytes], **params: str) -> dict[str, object]:
    url = http.post("/apps/demo/objects/tmp/src.tgz", content=tgz(files)).json()["Url"]
    return http.post("/apps/demo/builds", data={"url": url, **params}).json()  # type: ignore[no-any-return]


def test_build_runs_then_completes_with_release(http: httpx.Client, demo: dict[str, str]) -> None:
    build = _build(
        http,
        {"convox.yml": MANIFEST.encode(), "Dockerfile": DOCKERFILE},
        description="v2",
        **{"git-sha": "abc"},
    )
    assert build["status"] == "running"
    assert re.fullmatch(r"B[A-Z]{10}", str(build["id"]))
    assert str(build["process"]).startswith("build-")
    assert build["ended"] == "0001-01-01T00:00:00Z"
    done = http.get(f"/apps/demo/builds/{build['id']}").json()
    assert done["status"] == "complete"
    assert done["logs"] == f"object://demo/build/{build['id']}/logs"
    assert done["manifest"] == MANIFEST
    release = http.get(f"/apps/demo/releases/{done['release']}").json()
    assert release["build"] == build["id"]
    assert release["description"] == "v2"
    assert release["env"] == "FOO=bar"
    logs = http.get(f"/apps/demo/objects/build/{build['id']}/logs").text
    assert logs.startswith("Building: .\n")


def test_build_lookup_is_case_insensitive_and_missing_is_500(
    http: httpx.Client, demo: dict[str, str]
) -> None:
    assert http.get(f"/apps/demo/builds/{demo['build'].lower()}").json()["id"] == demo["build"]
    missing = http.get("/apps/demo/builds/BNOTTHEREXX")
    assert (missing.status_code, missing.text) == (
        500,
        'builds.convox.com "bnottherexx" not found\n',
    )


def test_build_failures(http: httpx.Client, demo: dict[str, str]) -> None:
    no_manifest = _build(http, {"other.txt": b"x"})
    failed = http.get(f"/apps/demo/builds/{no_manifest['id']}").json()
    assert failed["status"] == "failed"
    assert failed["release"] == ""
    logs = http.get(f"/apps/demo/objects/build/{no_manifest['id']}/logs").text
    assert logs.endswith("ERROR: open convox.yml: no such file or directory\n")
    https = http.post("/apps/demo/builds", data={"url": "https://example.com/src.tgz"}).json()
    logs = http.get(f"/apps/demo/objects/build/{https['id']}/logs").text
    assert logs.endswith("ERROR: unknown source type\n")
    missing = http.post("/apps/demo/builds", data={"url": "object://demo/tmp/none.tgz"}).json()
    logs = http.get(f"/apps/demo/objects/build/{missing['id']}/logs").text
    assert logs.endswith("ERROR: object not found: /tmp/none.tgz\n")


def test_build_custom_manifest_path_and_scripted_outcomes(
    http: httpx.Client, rack: RackEmulator, demo: dict[str, str]
) -> None:
    source = {"./deploy/prod.yml": MANIFEST.encode(), "Dockerfile": DOCKERFILE}
    build = _build(http, source, manifest="deploy/prod.yml")
    assert http.get(f"/apps/demo/builds/{build['id']}").json()["status"] == "complete"
    rack.scripts.next_build(logs=["step one", "step two"], entrypoint="/entry.sh")
    scripted = _build(http, {"convox.yml": MANIFEST.encode(), "Dockerfile": DOCKERFILE})
    assert (
        http.get(f"/apps/demo/objects/build/{scripted['id']}/logs").text == "step one\nstep two\n"
    )
    assert http.get(f"/apps/demo/builds/{scripted['id']}").json()["entrypoint"] == "/entry.sh"
    rack.scripts.fail_next_build("exit status 1", app="demo")
    failing = _build(http, {"convox.yml": MANIFEST.encode(), "Dockerfile": DOCKERFILE})
    assert http.get(f"/apps/demo/builds/{failing['id']}").json()["status"] == "failed"
    assert http.get(f"/apps/demo/objects/build/{failing['id']}/logs").text.endswith(
        "ERROR: exit status 1\n"
    )


def test_build_list_newest_first_with_limit(http: httpx.Client, demo: dict[str, str]) -> None:
    ids = [
        _build(http, {"convox.yml": MANIFEST.encode(), "Dockerfile": DOCKERFILE})["id"]
        for _ in range(3)
    ]
    listed = [b["id"] for b in http.get("/apps/demo/builds").json()]
    assert listed[:3] == ids[::-1]
    assert len(http.get("/apps/demo/builds", params={"limit": "2"}).json()) == 2


def test_external_build_and_update(http: httpx.Client, demo: dict[str, str]) -> None:
    build = http.post("/apps/demo/builds", data={"external": "true"}).json()
    assert build["status"] == "created"
    assert build["repository"] == "https://convox:password@api.emulator.convox.localhost/demo"
    updated = http.put(
        f"/apps/demo/builds/{build['id']}",
        data={"manifest": MANIFEST, "status": "complete", "ended": "20260115.143049.120000000"},
    ).json()
    assert updated["status"] == "complete"
    assert updated["ended"] == "2026-01-15T14:30:49.12Z"
    bad = http.put(f"/apps/demo/builds/{build['id']}", data={"started": "yesterday"})
    assert bad.status_code == 500
    assert bad.text.startswith('parsing time "yesterday"')


def test_build_import_image(http: httpx.Client, demo: dict[str, str]) -> None:
    build = http.post("/apps/demo/builds", data={"external": "true"}).json()
    assert http.post(f"/apps/demo/builds/{build['id']}/image").status_code == 422
    no_manifest = http.post(f"/apps/demo/builds/{build['id']}/image", data={"image": "nginx:1"})
    assert no_manifest.status_code == 422
    http.put(f"/apps/demo/builds/{build['id']}", data={"manifest": MANIFEST})
    accepted = http.post(f"/apps/demo/builds/{build['id']}/image", data={"image": "nginx:1"})
    assert (accepted.status_code, accepted.content) == (202, b"")
    final = http.get(f"/apps/demo/builds/{build['id']}").json()
    assert (final["status"], final["release"]) == ("complete", "")


def test_build_export_and_import_roundtrip(http: httpx.Client, demo: dict[str, str]) -> None:
    exported = http.get(f"/apps/demo/builds/{demo['build']}.tgz")
    assert exported.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(exported.content), mode="r:gz") as tar:
        names = tar.getnames()
        build_json = json.loads(tar.extractfile("build.json").read())  # type: ignore[union-attr]
    assert names == ["build.json", f"web.{demo['build']}.tar", f"worker.{demo['build']}.tar"]
    assert build_json["id"] == demo["build"]
    imported = http.post(
        "/apps/demo/builds/import",
        content=exported.content,
        headers={"Content-Type": "application/octet-stream"},
    ).json()
    assert imported["status"] == "complete"
    assert imported["id"] != demo["build"]
    assert imported["manifest"] == MANIFEST
    assert http.get(f"/apps/demo/releases/{imported['release']}").json()["build"] == imported["id"]
    broken = http.post("/apps/demo/builds/import", content=b"not gzip")
    assert (broken.status_code, broken.text) == (500, "gzip: invalid header\n")


# --- releases ------------------------------------------------------------------------------


def test_release_create_forks_newest_and_describes_env_changes(
    http: httpx.Client, demo: dict[str, str]
) -> None:
    created = http.post("/apps/demo/releases", data={"env": "FOO=baz\nNEW=1"}).json()
    assert created["build"] == demo["build"]
    assert created["description"] == "env add:NEW change:FOO"
    assert created["manifest"] == MANIFEST
    assert re.fullmatch(r"R[A-Z]{10}", created["id"])
    removed = http.post("/apps/demo/releases", data={"env": ""}).json()
    assert removed["description"] == "env remove:FOO remove:NEW"
    same = http.post("/apps/demo/releases", data={"build": demo["build"]}).json()
    assert (same["description"], same["env"]) == ("seed", "")
    pinned = http.post(
        "/apps/demo/releases", data={"parent-release": demo["release"], "description": "x"}
    ).json()
    assert (pinned["env"], pinned["description"]) == ("FOO=bar", "x")


def test_release_errors(http: httpx.Client, demo: dict[str, str]) -> None:
    missing = http.get("/apps/demo/releases/RMISSINGXXX")
    assert (missing.status_code, missing.text) == (
        500,
        'releases.convox.com "rmissingxxx" not found\n',
    )
    no_build = http.post("/apps/demo/releases", data={"build": "BNOPE"})
    assert no_build.text == 'builds.convox.com "bnope" not found\n'
    long_line = http.post("/apps/demo/releases", data={"env": "A=" + "x" * 70000})
    assert (long_line.status_code, long_line.text) == (500, "bufio.Scanner: token too long\n")


def test_release_list_newest_first(http: httpx.Client, demo: dict[str, str]) -> None:
    ids = [http.post("/apps/demo/releases", data={"env": f"N={n}"}).json()["id"] for n in range(12)]
    listed = http.get("/apps/demo/releases").json()
    assert [r["id"] for r in listed] == ids[::-1][:10]
    assert [r["id"] for r in http.get("/apps/demo/releases", params={"limit": "1"}).json()] == [
        ids[-1]
    ]


def test_promote_rules(http: httpx.Client, rack: RackEmulator, demo: dict[str, str]) -> None:
    rack.create_app("empty")
    bare = http.post("/apps/empty/releases", data={"env": "A=1"}).json()
    empty = http.post(f"/apps/empty/releases/{bare['id']}/promote")
    assert (empty.status_code, empty.text) == (
        400,
        "can not promote a release with an empty manifest\n",
    )
    newer = http.post("/apps/demo/releases", data={"env": "FOO=2"}).json()
    assert http.post(f"/apps/demo/releases/{newer['id']}/promote").text == "ok\n"
    older = http.post(f"/apps/demo/releases/{demo['release']}/promote")
    assert (older.status_code, older.text) == (
        400,
        "can not promote an older release, try rollback\n",
    )
    assert http.post(f"/apps/demo/releases/{newer['id']}/promote").text == "ok\n"


def test_promote_requires_running_unless_forced(convox_rack_factory: RackFactory) -> None:
    from convox_provider.testing import Timing

    rack = convox_rack_factory(timing=Timing(rollout=0.5))
    rack.create_app("demo")
    rack.add_release("demo", MANIFEST)
    client = httpx.Client(base_url=rack.url, auth=("convox", "password"))
    newer = client.post("/apps/demo/releases", data={"env": "A=1"}).json()
    assert (
        client.post(f"/apps/demo/releases/{newer['id']}/promote", data={"force": "false"}).text
        == "ok\n"
    )
    busy = client.post(f"/apps/demo/releases/{newer['id']}/promote", data={"force": "false"})
    assert (busy.status_code, busy.text) == (403, "app is currently updating\n")
    forced = client.post(
        f"/apps/demo/releases/{newer['id']}/promote", data={"force": "true", "timeout": "x"}
    )
    assert (forced.status_code, forced.text) == (500, 'strconv.Atoi: parsing "x": invalid syntax\n')
    assert (
        client.post(f"/apps/demo/releases/{newer['id']}/promote", data={"force": "true"}).text
        == "ok\n"
    )


def test_promote_required_env(http: httpx.Client, rack: RackEmulator) -> None:
    rack.create_app("needs")
    manifest = (
        "services:\n  web:\n    build: .\n    environment:\n      - SECRET\n      - OPTIONAL=1\n"
    )
    _, release = rack.add_release("needs", manifest, promote=False)
    refused = http.post(f"/apps/needs/releases/{release['id']}/promote")
    assert (refused.status_code, refused.text) == (500, "required env: SECRET\n")
    fixed = http.post("/apps/needs/releases", data={"env": "SECRET=s"}).json()
    assert http.post(f"/apps/needs/releases/{fixed['id']}/promote").text == "ok\n"
    assert http.get("/apps/needs").json()["release"] == fixed["id"]


# --- services and processes ----------------------------------------------------------------


def test_services_from_active_manifest(
    http: httpx.Client, rack: RackEmulator, demo: dict[str, str]
) -> None:
    services = http.get("/apps/demo/services").json()
    assert [s["name"] for s in services] == ["web", "worker"]
    web = services[0]
    assert web["count"] == 2
    assert (web["cpu"], web["memory"]) == (250, 512)
    assert web["domain"] == "web.demo.emulator.convox.localhost"
    assert web["ports"] == [{"balancer": 443, "certificate": "", "container": 3000}]
    assert services[1]["ports"] is None
    rack.create_app("fresh")
    assert http.get("/apps/fresh/services").json() == []


def test_service_update_scales_pods(http: httpx.Client, demo: dict[str, str]) -> None:
    assert http.put("/apps/demo/services/web", data={"count": "3", "memory": "1024"}).text == "ok\n"
    web = http.get("/apps/demo/services").json()[0]
    assert (web["count"], web["memory"]) == (3, 1024)
    pods = http.get("/apps/demo/processes", params={"service": "web"}).json()
    assert len(pods) == 3
    assert all(re.fullmatch(r"web-[a-z0-9]{9}-[a-z0-9]{5}", p["id"]) for p in pods)
    missing = http.put("/apps/demo/services/nope", data={"count": "1"})
    assert (missing.status_code, missing.text) == (500, 'deployments.apps "nope" not found\n')
    assert http.post("/apps/demo/services/web/restart").text == "ok\n"
    after = {p["id"] for p in http.get("/apps/demo/processes", params={"service": "web"}).json()}
    assert len(after) == 3
    assert after.isdisjoint({p["id"] for p in pods})


def test_one_off_process_lifecycle(
    http: httpx.Client, rack: RackEmulator, demo: dict[str, str]
) -> None:
    rack.scripts.on_command("bin/migrate", output="migrated\n", exit_code=0)
    run = http.post(
        "/apps/demo/services/web/processes",
        headers={
            "Command": "bin/migrate",
            "Environment": "EXTRA=1&SPACE=a+b",
            "Cpu": "256",
            "Memory": "512",
        },
    ).json()
    assert run["status"] == "pending"
    assert run["command"] == "bin/migrate"
    assert run["release"] == demo["release"]
    assert re.fullmatch(r"web-[a-z0-9]{5}", run["id"])
    assert http.get(f"/apps/demo/processes/{run['id']}").json()["status"] == "complete"
    assert [
        p["id"]
        for p in http.get("/apps/demo/processes", params={"service": "web"}).json()
        if p["id"] == run["id"]
    ]
    bad = http.post("/apps/demo/services/web/processes", headers={"Cpu": "lots"})
    assert bad.text == 'strconv.Atoi: parsing "lots": invalid syntax\n'
    nowhere = http.post("/apps/demo/services/ghost/processes", headers={"Command": "true"})
    assert nowhere.status_code == 500
    assert "spec.containers[0].image: Required value" in nowhere.text
    assert http.post("/apps/missing/services/web/processes").status_code == 404


def test_failed_command_and_reaping(convox_rack_factory: RackFactory) -> None:
    import time

    from convox_provider.testing import Timing

    rack = convox_rack_factory(timing=Timing(reap=0.2))
    rack.create_app("demo")
    rack.add_release("demo", MANIFEST)
    client = httpx.Client(base_url=rack.url, auth=("convox", "password"))
    run = client.post(
        "/apps/demo/services/worker/processes", headers={"Command": "sh -c 'echo oops; exit 2'"}
    ).json()
    assert client.get(f"/apps/demo/processes/{run['id']}").json()["status"] == "failed"
    time.sleep(0.25)
    gone = client.get(f"/apps/demo/processes/{run['id']}")
    assert (gone.status_code, gone.text) == (500, f'pods "{run["id"]}" not found\n')
    assert client.delete(f"/apps/demo/processes/{run['id']}").status_code == 500


def test_build_pod_listed_while_build_runs(convox_rack_factory: RackFactory) -> None:
    from convox_provider.testing import Timing

    rack = convox_rack_factory(timing=Timing(build=5))
    rack.create_app("demo")
    client = httpx.Client(base_url=rack.url, auth=("convox", "password"))
    url = client.post(
        "/apps/demo/objects/tmp/x.tgz",
        content=tgz({"convox.yml": MANIFEST.encode(), "Dockerfile": DOCKERFILE}),
    ).json()["Url"]
    build = client.post("/apps/demo/builds", data={"url": url}).json()
    pods = client.get("/apps/demo/processes").json()
    assert [(p["id"], p["name"], p["status"]) for p in pods] == [
        (build["process"], "build", "running")
    ]
    assert client.get(f"/apps/demo/builds/{build['id']}").json()["status"] == "running"


# --- system and friends --------------------------------------------------------------------


def test_system_routes(http: httpx.Client) -> None:
    system = http.get("/system").json()
    assert (system["version"], system["status"], system["provider"]) == ("3.24.9", "running", "k8s")
    assert http.put("/system", data={"count": "3"}).status_code == 501
    assert http.get("/system/releases").text == "release history is unavailable\n"
    assert {p["name"] for p in http.get("/system/processes").json()} == {"api", "atom", "router"}


def test_instances(http: httpx.Client) -> None:
    instances = http.get("/instances").json()
    assert len(instances) == 1
    assert instances[0]["status"] == "running"
    assert http.post("/instances/keyroll").status_code == 501
    assert http.delete("/instances/unknown").text == 'nodes "unknown" not found\n'
    assert http.delete(f"/instances/{instances[0]['id']}").text == "ok\n"
    assert http.get("/instances").json() == []


def test_rack_resources_only_webhooks(http: httpx.Client) -> None:
    unknown = http.post("/resources", data={"kind": "postgres"})
    assert (unknown.status_code, unknown.text) == (400, "rack resource type unknown: postgres\n")
    brackets = http.post("/resources", data={"kind": "webhook", "parameters[Url]": "https://x"})
    assert brackets.text == "parameter required: Url\n"
    created = http.post(
        "/resources", data={"kind": "webhook", "name": "hook", "parameters": "Url=https%3A%2F%2Fx"}
    ).json()
    assert created == {
        "name": "hook",
        "parameters": {"Url": "https://x"},
        "status": "running",
        "type": "webhook",
        "url": "",
    }
    assert http.get("/resources").json() == [created]
    assert http.request("OPTIONS", "/resources").json()[0]["name"] == "webhook"
    assert http.put("/resources/hook").text == "unavailable on v3 racks\n"
    assert http.delete("/resources/hook").text == "ok\n"
    assert http.get("/resources/hook").text == "no such resource: hook\n"


def test_app_resources_from_manifest(http: httpx.Client, rack: RackEmulator) -> None:
    rack.create_app("db")
    rack.add_release(
        "db", MANIFEST + "resources:\n  main:\n    type: postgres\n  cache:\n    type: redis\n"
    )
    assert [r["name"] for r in http.get("/apps/db/resources").json()] == ["cache", "main"]
    assert http.get("/apps/db/resources/main").json()["type"] == "postgres"
    assert (
        http.get("/apps/db/resources/cache/data").text
        == "export not available for resources of type: redis\n"
    )
    assert http.get("/apps/db/resources/nope").status_code == 404


def test_registries_and_certificates(http: httpx.Client) -> None:
    added = http.post(
        "/registries", data={"server": "quay.io", "username": "u", "password": "p"}
    ).json()
    assert added == {"server": "quay.io", "username": "u", "password": "p"}
    assert http.get("/registries").json() == [added]
    assert http.delete("/registries/quay.io").text == "ok\n"
    assert http.get("/registries").json() == []
    cert = http.post("/certificates/generate", data={"domains": "example.org"}).json()
    assert cert["domain"] == "example.org"
    assert [c["id"] for c in http.get("/certificates").json()] == [cert["id"]]
    assert http.delete(f"/certificates/{cert['id']}").text == "ok\n"
    assert http.put("/apps/x/ssl/web/443").status_code == 501


def test_deleting_a_service_pod_gets_it_replaced(http: httpx.Client, demo: dict[str, str]) -> None:
    before = [p["id"] for p in http.get("/apps/demo/processes", params={"service": "web"}).json()]
    assert http.delete(f"/apps/demo/processes/{before[0]}").text == "ok\n"
    after = [p["id"] for p in http.get("/apps/demo/processes", params={"service": "web"}).json()]
    assert len(after) == 2
    assert before[0] not in after


def test_handler_crash_is_a_500_with_the_message(
    http: httpx.Client, rack: RackEmulator, monkeypatch: object
) -> None:
    def boom() -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(rack.state, "app_list", boom)  # type: ignore[attr-defined]
    response = http.get("/apps")
    assert (response.status_code, response.text) == (500, "boom\n")
    assert http.get("/system").status_code == 200


def test_scripted_handler_crash_is_an_error_frame(
    rack: RackEmulator, http: httpx.Client, demo: dict[str, str]
) -> None:
    from .conftest import basic
    from .wsraw import BINARY, TEXT, RawWebSocket

    def explode(_: object) -> object:
        raise ValueError("script exploded")

    rack.scripts.on_command("explode", explode)  # type: ignore[arg-type]
    with RawWebSocket(
        rack.url, "/apps/demo/processes/web/exec", {"Authorization": basic(), "Command": "explode"}
    ) as ws:
        assert ws.frames_until_end() == [(TEXT, b"ERROR: script exploded\n"), (BINARY, b"")]


def test_manifest_service(http: httpx.Client, rack: RackEmulator) -> None:
    rack.create_app("m")
    rack.add_release(
        "m",
        "services:\n  web:\n    environment:\n      - A\n    scale:\n      count: 1-4\n",
        env={"A": "1"},
    )
    assert http.get("/apps/m/manifest/services/web").json() == {
        "name": "web",
        "environment": ["A"],
        "scale": {"min": 1, "max": 4},
    }
    missing = http.get("/apps/m/manifest/services/db")
    assert (missing.status_code, missing.text) == (
        500,
        "service db not found in manifest for app m\n",
    )
