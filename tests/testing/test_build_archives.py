"""Build import and export archives in the emulator: images kept, multistream gzip, reuse."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import httpx

from convox_provider.testing import RackEmulator

from .conftest import MANIFEST

IMAGE = bytes(range(256)) * 4096  # 1 MiB: an image archive as an import brings it


def _member(entries: list[tuple[str, bytes]], *, end: bool) -> bytes:
    """One gzip member holding ``entries`` as tar data; ``end``: with the end-of-archive."""
    plain = io.BytesIO()
    for name, content in entries:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        plain.write(info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict"))
        plain.write(content + bytes(-len(content) % 512))
    if end:
        plain.write(bytes(1024))
    return gzip.compress(plain.getvalue())


def _build_json(description: str) -> bytes:
    return json.dumps({"description": description, "manifest": MANIFEST}).encode()


def _export(http: httpx.Client, build_id: str) -> tuple[bytes, dict[str, bytes]]:
    answer = http.get(f"/apps/demo/builds/{build_id}.tgz")
    assert answer.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(answer.content), mode="r:gz") as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
    return answer.content, files


def test_an_imported_build_exports_the_images_it_brought(
    rack: RackEmulator, http: httpx.Client
) -> None:
    rack.create_app("demo")
    archive = _member([("build.json", _build_json("v1")), ("web.BOLD.tar", IMAGE)], end=True)
    imported = http.post("/apps/demo/builds/import", content=archive).json()

    first, files = _export(http, imported["id"])

    assert files[f"web.{imported['id']}.tar"] == IMAGE
    assert json.loads(files["build.json"])["description"] == "v1"
    again, _ = _export(http, imported["id"])
    assert again == first  # written once, served again
    http.put(f"/apps/demo/builds/{imported['id']}", data={"logs": "object://demo/new"})
    _, changed = _export(http, imported["id"])
    assert json.loads(changed["build.json"])["logs"] == "object://demo/new"


def test_the_import_reads_gzip_members_as_one_stream_and_skips_other_files(
    rack: RackEmulator, http: httpx.Client
) -> None:
    """As Go's multistream gzip reader and the rack's import loop do (docs/rack-api.md §4.12)."""
    rack.create_app("demo")
    archive = _member([("build.json", _build_json("marked")), ("notes.txt", b"x")], end=False)
    archive += _member([("web.BOLD.tar", IMAGE)], end=True)

    imported = http.post("/apps/demo/builds/import", content=archive).json()

    assert imported["description"] == "marked"
    _, files = _export(http, imported["id"])
    assert files[f"web.{imported['id']}.tar"] == IMAGE
    assert "notes.txt" not in files


def test_a_seeded_build_exports_empty_image_archives(
    rack: RackEmulator, http: httpx.Client
) -> None:
    rack.create_app("demo")
    build, _ = rack.add_release("demo", MANIFEST)
    _, files = _export(http, build["id"])
    images = [name for name in files if name.endswith(".tar")]
    assert images
    for image in images:
        with tarfile.open(fileobj=io.BytesIO(files[image])) as oci:
            assert sorted(oci.getnames()) == ["index.json", "oci-layout"]
