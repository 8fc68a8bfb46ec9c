"""The routes over real HTTP, against the local rack emulator (sync and async clients)."""

from __future__ import annotations

import gzip
import inspect
import io
import os
import re
import tarfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from convox_provider.client.client import AsyncConvoxClient, ConvoxClient
from convox_provider.client.errors import (
    ConvoxConflictError,
    ConvoxConnectionError,
    ConvoxNotFoundError,
)
from convox_provider.client.models import App, Build, Object, Process, Release, System

MANIFEST = "services:\n  web:\n    build: .\n    port: 3000\n"


def source_tarball(files: dict[str, str]) -> bytes:
    """A gzip tarball of ``files`` at its root, as ``convox build`` uploads it."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue())


class Live:
    """A client of the emulated rack; ``await live(lambda c: …)`` runs on either kind."""

    def __init__(self, client: ConvoxClient | AsyncConvoxClient, rack: Any) -> None:
        self.client = client
        self.rack = rack

    async def __call__(self, operation: Callable[[Any], Any]) -> Any:
        result = operation(self.client)
        return await result if inspect.isawaitable(result) else result


@pytest.fixture
async def live(client_kind: str, convox_rack: Any) -> AsyncIterator[Live]:
    if client_kind == "sync":
        with ConvoxClient(convox_rack.url, convox_rack.password) as client:
            yield Live(client, convox_rack)
    else:
        async with AsyncConvoxClient(convox_rack.url, convox_rack.password) as aclient:
            yield Live(aclient, convox_rack)


async def test_apps_create_get_list(live: Live) -> None:
    created = await live(lambda c: c.apps.create("myapp", timeout=60))
    assert isinstance(created, App)
    assert created.name == "myapp"

    got = await live(lambda c: c.apps.get("myapp"))
    assert got.name == "myapp"
    assert got.status in ("updating", "running")

    listed = await live(lambda c: c.apps.list())
    assert [app.name for app in listed] == ["myapp"]

    with pytest.raises(ConvoxConflictError, match="app already exists: myapp"):
        await live(lambda c: c.apps.create("myapp"))


async def test_object_store_fetch_delete_round_trip(live: Live) -> None:
    live.rack.create_app("myapp")
    payload = bytes(range(256)) * 4096

    stored = await live(lambda c: c.objects.store("myapp", "tmp/blob.bin", payload))
    assert stored == Object(url="object://myapp/tmp/blob.bin")

    assert await live(lambda c: c.objects.fetch("myapp", "tmp/blob.bin")) == payload
    received = bytearray()
    size = await live(lambda c: c.objects.fetch_to("myapp", "tmp/blob.bin", received.extend))
    assert (size, bytes(received)) == (len(payload), payload)

    await live(lambda c: c.objects.delete("myapp", "tmp/blob.bin"))
    with pytest.raises(ConvoxNotFoundError, match="object not found"):
        await live(lambda c: c.objects.fetch("myapp", "tmp/blob.bin"))


async def test_object_store_streamed_and_with_a_rack_chosen_key(live: Live) -> None:
    live.rack.create_app("myapp")

    async def agen() -> AsyncIterator[bytes]:
        yield b"part one, "
        yield b"part two"

    chunks = iter([b"part one, ", b"part two"]) if live.client.__class__ is ConvoxClient else agen()
    stored = await live(lambda c: c.objects.store("myapp", None, chunks))

    assert stored.url.startswith("object://myapp/tmp/")
    key = stored.url.removeprefix("object://myapp/")
    assert await live(lambda c: c.objects.fetch("myapp", key)) == b"part one, part two"


async def test_build_from_an_uploaded_tarball_completes(live: Live) -> None:
    live.rack.create_app("myapp")
    tarball = source_tarball({"convox.yml": MANIFEST, "Dockerfile": "FROM alpine\n"})

    source = await live(lambda c: c.objects.store("myapp", "tmp/src.tgz", tarball))
    build = await live(
        lambda c: c.builds.create(
            "myapp", source.url, description="first build", git_sha="abc123", no_cache=True
        )
    )
    assert isinstance(build, Build)
    assert build.status == "running"
    assert build.process

    build_id = build.id
    for _ in range(50):
        build = await live(lambda c: c.builds.get("myapp", build_id))
        if build.build_status.is_terminal:
            break
    assert build.status == "complete"
    assert build.manifest == MANIFEST
    assert build.git_sha == "abc123"
    assert build.release

    listed = await live(lambda c: c.builds.list("myapp", limit=1))
    assert [b.id for b in listed] == [build.id]
    release = await live(lambda c: c.releases.get("myapp", build.release))
    assert release.build == build.id


async def test_releases_create_list_get_and_environment(live: Live) -> None:
    live.rack.create_app("myapp")
    _, first = live.rack.add_release("myapp", MANIFEST, env={"A": "1"})

    created = await live(
        lambda c: c.releases.create("myapp", env={"A": "2", "B": "x=y"}, description="env change")
    )
    assert isinstance(created, Release)
    assert created.build == first["build"]  # forked from the newest release
    assert created.environment == {"A": "2", "B": "x=y"}

    listed = await live(lambda c: c.releases.list("myapp", limit=2))
    assert [r.id for r in listed] == [created.id, first["id"]]
    got = await live(lambda c: c.releases.get("myapp", created.id))
    assert got.description == "env change"

    assert await live(lambda c: c.environment.get("myapp")) == {"A": "2", "B": "x=y"}
    assert await live(lambda c: c.environment.get("myapp", release=first["id"])) == {"A": "1"}

    await live(lambda c: c.releases.submit_promote("myapp", created.id))
    for _ in range(50):
        app = await live(lambda c: c.apps.get("myapp"))
        if app.status == "running" and app.release == created.id:
            break
    assert (app.status, app.release) == ("running", created.id)


async def test_processes_run_get_delete(live: Live) -> None:
    live.rack.create_app("myapp")
    live.rack.add_release("myapp", MANIFEST)

    process = await live(
        lambda c: c.processes.run_detached(
            "myapp", "web", command=["sleep", "600"], environment={"TOKEN": "t"}, memory=256
        )
    )
    assert isinstance(process, Process)
    assert process.name == "web"

    got = await live(lambda c: c.processes.get("myapp", process.id))
    assert got.id == process.id
    listed = await live(lambda c: c.processes.list("myapp", service="web"))
    assert process.id in [p.id for p in listed]

    await live(lambda c: c.processes.delete("myapp", process.id))
    remaining = [
        p.id for p in await live(lambda c: c.processes.list("myapp")) if p.status == "running"
    ]
    assert process.id not in remaining
    with pytest.raises(ConvoxNotFoundError, match="not found"):
        await live(lambda c: c.processes.get("myapp", process.id))


async def test_system_get_and_auth(live: Live) -> None:
    system = await live(lambda c: c.system.get())
    assert isinstance(system, System)
    assert system.name == "emulator"
    assert system.status == "running"
    assert await live(lambda c: c.system.auth()) is None


async def test_a_missing_release_is_not_found_with_its_request_id(live: Live) -> None:
    live.rack.create_app("myapp")

    with pytest.raises(ConvoxNotFoundError) as caught:
        await live(lambda c: c.releases.get("myapp", "RMISSINGAA"))

    assert caught.value.status_code == 500
    assert caught.value.request_id is not None
    assert re.fullmatch(r"[0-9a-f]{12}", caught.value.request_id)


async def test_export_to_a_file_and_import_it_back(live: Live, tmp_path: Path) -> None:
    live.rack.create_app("myapp")
    source, _ = live.rack.add_release("myapp", MANIFEST)
    target = tmp_path / "export.tgz"

    size = await live(lambda c: c.builds.export("myapp", source["id"], target))

    assert size == target.stat().st_size > 0
    assert sorted(os.listdir(tmp_path)) == ["export.tgz"]
    with tarfile.open(target, mode="r:gz") as tar:
        assert tar.getnames() == ["build.json", f"web.{source['id']}.tar"]

    for data in (target, io.BytesIO(target.read_bytes())):
        imported = await live(lambda c, data=data: c.builds.import_build("myapp", data))
        assert isinstance(imported, Build)
        assert imported.id != source["id"]
        assert imported.status == "complete"
        assert imported.manifest == MANIFEST
        assert imported.release
        release = await live(lambda c, imported=imported: c.releases.get("myapp", imported.release))
        assert release.build == imported.id


async def test_a_truncated_export_leaves_no_file(live: Live, tmp_path: Path) -> None:
    live.rack.create_app("myapp")
    source, _ = live.rack.add_release("myapp", MANIFEST)
    live.rack.faults.truncate("GET", "/apps/myapp/builds/*.tgz", after_bytes=100)
    target = tmp_path / "export.tgz"

    with pytest.raises(ConvoxConnectionError, match="download broke"):
        await live(lambda c: c.builds.export("myapp", source["id"], target))

    assert os.listdir(tmp_path) == []
    assert [f.fired for f in live.rack.faults.faults] == [1]
