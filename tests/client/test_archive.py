"""Source archives: what goes in, in what form, and in how much memory (docs/rack-api.md §7.1)."""

from __future__ import annotations

import gzip
import io
import os
import re
import tarfile
import tracemalloc
from pathlib import Path
from typing import Any

import httpx
import pytest

from convox_provider.client.archive import (
    Archived,
    Finished,
    Scanned,
    SourceArchive,
    Uploaded,
    new_object_key,
    upload,
    upload_call,
)
from convox_provider.client.client import AsyncConvoxClient, ConvoxClient
from convox_provider.client.errors import ConvoxInputError


def members(chunks: Any) -> dict[str, tarfile.TarInfo]:
    data = b"".join(chunks)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {member.name: member for member in tar.getmembers()}


def contents(chunks: Any) -> dict[str, bytes]:
    data = b"".join(chunks)
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile():
                handle = tar.extractfile(member)
                assert handle is not None
                out[member.name] = handle.read()
    return out


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "app"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "mod.py").write_text("print('hi')\n")
    (root / "src" / "main.py").write_text("import pkg\n")
    (root / "empty").mkdir()
    (root / "Dockerfile").write_text("FROM python:3.12\nCOPY . /app\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "link-to-main").symlink_to("src/main.py")
    (root / "link-to-dir").symlink_to("src")
    (root / "dangling").symlink_to("does/not/exist")
    os.link(root / "Dockerfile", root / "Dockerfile.hard")
    (root / "logs").mkdir()
    (root / "logs" / "app.log").write_text("noise\n")
    (root / "logs" / "keep").mkdir()
    (root / "logs" / "keep" / "README").write_text("kept\n")
    (root / "node_modules" / "left").mkdir(parents=True)
    (root / "node_modules" / "left" / "index.js").write_text("x\n")
    (root / "secret.env").write_text("TOKEN=1\n")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / ".dockerignore").write_text(
        "# build context rules\nnode_modules\n*.env\nlogs\n!logs/keep\n"
    )
    return root


def test_round_trip_honours_dockerignore_and_keeps_links(tree: Path) -> None:
    found = members(SourceArchive(tree))
    assert sorted(found) == [
        ".dockerignore",
        ".git",  # nothing is excluded by default (§7.1 step 3)
        ".git/HEAD",
        "Dockerfile",
        "Dockerfile.hard",
        "dangling",
        "empty",
        "link-to-dir",
        "link-to-main",
        "logs/keep",  # walked for the exception; "logs" itself stays out
        "logs/keep/README",
        "run.sh",
        "src",
        "src/main.py",
        "src/pkg",
        "src/pkg/mod.py",
    ]
    assert found["empty"].isdir()
    assert found["link-to-main"].issym()
    assert found["link-to-main"].linkname == "src/main.py"
    assert found["link-to-dir"].issym()  # not followed: src is not archived twice
    assert found["dangling"].linkname == "does/not/exist"
    assert found["Dockerfile.hard"].islnk()
    assert found["Dockerfile.hard"].linkname == "Dockerfile"
    assert found["run.sh"].mode & 0o777 == 0o755
    assert contents(SourceArchive(tree))["src/pkg/mod.py"] == b"print('hi')\n"


def test_names_are_relative_with_directory_slashes(tree: Path) -> None:
    data = gzip.decompress(b"".join(SourceArchive(tree)))
    names = []
    offset = 0
    while offset < len(data) and data[offset : offset + 512] != b"\0" * 512:
        header = tarfile.TarInfo.frombuf(data[offset : offset + 512], "utf-8", "strict")
        raw = data[offset : offset + 100].rstrip(b"\0").decode()
        names.append(raw)
        offset += 512 + (-(-header.size // 512)) * 512
    assert names == [  # depth first, names in byte order, directories with their "/"
        ".dockerignore",
        ".git/",
        ".git/HEAD",
        "Dockerfile",
        "Dockerfile.hard",
        "dangling",
        "empty/",
        "link-to-dir",
        "link-to-main",
        "logs/keep/",
        "logs/keep/README",
        "run.sh",
        "src/",
        "src/main.py",
        "src/pkg/",
        "src/pkg/mod.py",
    ]


def test_output_is_deterministic(tree: Path) -> None:
    assert b"".join(SourceArchive(tree)) == b"".join(SourceArchive(tree))


def test_root_symlink_is_resolved(tree: Path, tmp_path: Path) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(tree)
    archive = SourceArchive(alias)
    assert archive.root == tree.resolve()
    assert "src/main.py" in members(archive)


def test_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConvoxInputError, match="not a directory"):
        SourceArchive(tmp_path / "file")
    with pytest.raises(ConvoxInputError, match=r"'.*missing' does not exist: give the directory"):
        SourceArchive(tmp_path / "missing")


def test_bad_dockerignore_is_refused_before_archiving(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("[\n")
    with pytest.raises(ConvoxInputError, match=r"invalid \.dockerignore pattern"):
        SourceArchive(tmp_path)


def test_progress_events(tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    (tmp_path / "small.txt").write_text("hello\n")
    events: list[Any] = []
    chunks = list(SourceArchive(tmp_path, progress=events.append))
    assert events[0] == Scanned(files=2, bytes=3 * 1024 * 1024 + 6)
    assert events[-1] == Finished(files=2, bytes=3 * 1024 * 1024 + 6, sent=sum(map(len, chunks)))
    archived = [e for e in events if isinstance(e, Archived)]
    uploaded = [e for e in events if isinstance(e, Uploaded)]
    assert len(archived) == len(uploaded) == len(chunks) > 1
    assert [e.bytes for e in uploaded] == sorted(e.bytes for e in uploaded)
    assert archived[-1] == Archived(bytes=3 * 1024 * 1024 + 6, total=3 * 1024 * 1024 + 6)
    assert all(len(chunk) >= 256 * 1024 for chunk in chunks[:-1])


def test_a_file_that_shrinks_while_archived_is_an_error(tmp_path: Path) -> None:
    victim = tmp_path / "a.bin"
    victim.write_bytes(os.urandom(4 * 1024 * 1024))

    def shrink(event: Any) -> None:
        if isinstance(event, Archived):
            victim.write_bytes(b"")

    with pytest.raises(ConvoxInputError, match=r"a\.bin shrank"):
        list(SourceArchive(tmp_path, progress=shrink))


def test_a_file_that_grows_is_stored_at_its_header_size(tmp_path: Path) -> None:
    grower = tmp_path / "a.log"
    grower.write_bytes(os.urandom(4 * 1024 * 1024))

    def grow(event: Any) -> None:
        if isinstance(event, Archived):
            with grower.open("ab") as handle:
                handle.write(b"more" * 1000)

    archived = contents(SourceArchive(tmp_path, progress=grow))
    assert len(archived["a.log"]) == 4 * 1024 * 1024


def test_special_files_are_left_out(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "file").write_text("x")
    assert sorted(members(SourceArchive(tmp_path))) == ["file"]


def test_unicode_and_long_names(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 80) / ("e" * 80)
    deep.mkdir(parents=True)
    (deep / ("naïve-" + "f" * 120 + ".txt")).write_text("x")
    names = members(SourceArchive(tmp_path))
    assert f"{'d' * 80}/{'e' * 80}/naïve-{'f' * 120}.txt" in names


def test_memory_stays_flat_for_big_files_and_many_files(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as handle:  # 200 MB, sparse: cheap to make, read in full
        handle.truncate(200 * 1024 * 1024)
    for directory in range(20):
        folder = tmp_path / f"pkg{directory}"
        folder.mkdir()
        for index in range(100):
            (folder / f"m{index}.py").write_text(f"value = {index}\n" * 20)
    tracemalloc.start()
    try:
        total = 0
        for chunk in SourceArchive(tmp_path):
            total += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total > 0
    assert peak < 8 * 1024 * 1024, f"peak traced memory {peak / 2**20:.1f} MiB"


def test_object_keys_look_like_the_clis() -> None:
    keys = {new_object_key() for _ in range(50)}
    assert len(keys) == 50
    assert all(re.fullmatch(r"tmp/[0-9a-f]{30}\.tgz", key) for key in keys)


# -- the upload request -------------------------------------------------------------------------


def stored(bodies: list[bytes]) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.method == "POST"
        assert request.headers["content-type"] == "application/octet-stream"
        bodies.append(request.read())
        key = request.url.path.split("/objects/", 1)[1]
        return httpx.Response(200, json={"Url": f"object://myapp/{key}"})

    return handler


def test_upload_call_streams_the_archive_sync(tree: Path) -> None:
    bodies: list[bytes] = []
    with ConvoxClient(
        "http://127.0.0.1:9", "k", transport=httpx.MockTransport(stored(bodies))
    ) as client:
        request = upload_call("myapp", SourceArchive(tree), key="tmp/fixed.tgz")
        assert request.path == "/apps/myapp/objects/tmp/fixed.tgz"
        assert request.retry_safe is False  # a stream is never sent twice on an ambiguous failure
        result = client._driver.execute(request)
    assert result.url == "object://myapp/tmp/fixed.tgz"
    assert "src/main.py" in contents([bodies[0]])


async def test_upload_streams_the_archive_from_a_worker_thread_async(tree: Path) -> None:
    import threading

    bodies: list[bytes] = []
    threads: set[str] = set()

    def progress(event: Any) -> None:
        threads.add(threading.current_thread().name)

    transport = httpx.MockTransport(stored(bodies))
    async with AsyncConvoxClient("http://127.0.0.1:9", "k", transport=transport) as client:
        archive = SourceArchive(tree, progress=progress)
        result = await client._driver.execute(upload(client.objects, "myapp", archive))
    assert re.fullmatch(r"object://myapp/tmp/[0-9a-f]{30}\.tgz", result.url)
    assert "Dockerfile" in contents([bodies[0]])
    assert threading.main_thread().name not in threads  # the event loop never compressed


def test_upload_arguments_are_checked(tree: Path) -> None:
    with pytest.raises(ConvoxInputError):
        upload_call("bad/app", SourceArchive(tree))
    with pytest.raises(ConvoxInputError):
        upload_call("myapp", SourceArchive(tree), key="../escape.tgz")
