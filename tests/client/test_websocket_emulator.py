"""Streams and source uploads against the rack emulator, over real HTTP and WebSocket."""

from __future__ import annotations

import gzip
import inspect
import io
import tarfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from convox_provider.client.archive import SourceArchive, upload
from convox_provider.client.client import AsyncConvoxClient, ConvoxClient
from convox_provider.client.errors import ConvoxConnectionError, ConvoxStreamError
from convox_provider.client.resources.streams import (
    AppLogs,
    BuildLogs,
    ProcessStreams,
    ServiceLogs,
)
from convox_provider.client.retry import RetryConfig
from convox_provider.client.websocket import lines
from convox_provider.testing import RackEmulator

MANIFEST = """\
services:
  web:
    build: .
    port: 3000
    command: bin/web
"""

Client = ConvoxClient | AsyncConvoxClient


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def rack(convox_rack: RackEmulator) -> RackEmulator:
    convox_rack.create_app("demo")
    convox_rack.add_release("demo", MANIFEST)
    return convox_rack


async def make(kind: str, emulator: RackEmulator, key: str = "password", **options: Any) -> Client:
    options.setdefault("retry", RetryConfig(max_retries=0))
    cls = ConvoxClient if kind == "sync" else AsyncConvoxClient
    return cls(emulator.url, key, **options)


@pytest.fixture
async def client(kind: str, rack: RackEmulator) -> AsyncIterator[Client]:
    made = await make(kind, rack)
    yield made
    await close(made)


async def close(client: Client) -> None:
    if isinstance(client, ConvoxClient):
        client.close()
    else:
        await client.aclose()


async def run(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result


async def collect(chunks: Iterator[Any] | AsyncIterator[Any]) -> list[Any]:
    if isinstance(chunks, AsyncIterator):
        return [chunk async for chunk in chunks]
    return list(chunks)


def source_tree(root: Path) -> Path:
    (root / "convox.yml").write_text(MANIFEST)
    (root / "bin").mkdir()
    (root / "bin" / "web").write_text("#!/bin/sh\nexec python -m http.server 3000\n")
    (root / "bin" / "web").chmod(0o755)
    (root / "secrets.env").write_text("TOKEN=do-not-upload\n")
    (root / ".dockerignore").write_text("*.env\n")
    return root


async def test_source_upload_then_build_logs_to_the_end(
    kind: str, rack: RackEmulator, client: Client, tmp_path: Path
) -> None:
    rack.scripts.next_build(logs=["Step 1/2 : FROM python:3.12", "Step 2/2 : COPY . /app"])
    events: list[Any] = []
    archive = SourceArchive(source_tree(tmp_path), progress=events.append)
    stored = await run(client._driver.execute(upload(client.objects, "demo", archive)))
    assert stored.url.startswith("object://demo/tmp/")
    assert stored.url.endswith(".tgz")
    build = await run(client.builds.create("demo", stored.url, description="from a directory"))

    text = await collect(lines(BuildLogs(client._driver).logs("demo", build.id)))
    assert "Step 1/2 : FROM python:3.12" in text
    assert "Step 2/2 : COPY . /app" in text

    data = await run(client.objects.fetch("demo", stored.url.removeprefix("object://demo/")))
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tar:
        assert sorted(tar.getnames()) == [".dockerignore", "bin", "bin/web", "convox.yml"]
    assert type(events[0]).__name__ == "Scanned"
    assert type(events[-1]).__name__ == "Finished"
    assert events[-1].sent == len(data)
    posts = [r for r in rack.requests if r.method == "POST" and "/objects/" in r.path]
    assert len(posts) == 1


async def test_app_logs_without_follow_end(kind: str, client: Client) -> None:
    chunks = await collect(AppLogs(client._driver).logs("demo", follow=False, since="1h"))
    assert all(isinstance(chunk, bytes) for chunk in chunks)


async def test_service_logs_without_follow_end(kind: str, client: Client) -> None:
    chunks = await collect(ServiceLogs(client._driver).logs("demo", "web", follow=False))
    assert all(isinstance(chunk, bytes) for chunk in chunks)


async def test_exec_exit_code_and_output(kind: str, rack: RackEmulator, client: Client) -> None:
    rack.scripts.on_command("sh -c 'exit 3'", output=b"about to fail\n", exit_code=3)
    output: list[bytes] = []
    code = await run(
        ProcessStreams(client._driver).exec(
            "demo", "web", "sh -c 'exit 3'", on_output=output.append
        )
    )
    assert code == 3
    assert b"".join(output) == b"about to fail\n"
    record = rack.state.execs[-1]
    assert record.tty is False
    assert record.stdin_enabled is False


async def test_exec_stdin_reaches_the_rack(kind: str, rack: RackEmulator, client: Client) -> None:
    rack.scripts.on_command("cat", output=b"", exit_code=0, duration=0.5)
    code = await run(
        ProcessStreams(client._driver).exec("demo", "web", "cat", stdin=b"input\n", tty=True)
    )
    assert code == 0
    record = rack.state.execs[-1]
    assert bytes(record.stdin) == b"input\n"
    assert record.stdin_closed


async def test_error_frame_raises_stream_error(kind: str, client: Client) -> None:
    with pytest.raises(ConvoxStreamError, match="app not found: ghost"):
        await collect(AppLogs(client._driver).logs("ghost", follow=False))


async def test_exec_on_a_missing_process_is_an_error(kind: str, client: Client) -> None:
    with pytest.raises(ConvoxStreamError):
        await run(ProcessStreams(client._driver).exec("demo", "web-missing-pod", "true"))


async def test_bad_key_is_an_error_frame(kind: str, rack: RackEmulator) -> None:
    client = await make(kind, rack, key="wrong-password")
    try:
        with pytest.raises(ConvoxStreamError, match="invalid authentication"):
            await collect(AppLogs(client._driver).logs("demo", follow=False))
    finally:
        await close(client)


async def test_truncated_stream_is_a_connection_error(
    kind: str, rack: RackEmulator, client: Client
) -> None:
    build_id = (await run(client.builds.list("demo")))[0].id
    rack.faults.truncate("GET", f"/apps/demo/builds/{build_id}/logs", after_bytes=3)
    with pytest.raises(ConvoxConnectionError, match="end marker"):
        await collect(BuildLogs(client._driver).logs("demo", build_id))


async def test_tiny_frames_split_lines_and_characters(kind: str, tmp_path: Path) -> None:
    rack = RackEmulator(max_frame_bytes=3).start()
    try:
        rack.create_app("demo")
        rack.scripts.next_build(logs=["naïve café ☃ build", "second line"])
        client = await make(kind, rack)
        try:
            archive = SourceArchive(source_tree(tmp_path))
            stored = await run(client._driver.execute(upload(client.objects, "demo", archive)))
            build = await run(client.builds.create("demo", stored.url))
            text = await collect(lines(BuildLogs(client._driver).logs("demo", build.id)))
        finally:
            await close(client)
    finally:
        rack.stop()
    assert "naïve café ☃ build" in text
    assert "second line" in text


async def test_console_session_is_opened_before_streams_and_uploads(
    kind: str, tmp_path: Path
) -> None:
    rack = RackEmulator(console="acme/production", session="challenge").start()
    try:
        rack.create_app("demo")
        rack.add_release("demo", MANIFEST)
        client = await make(kind, rack, rack="acme/production")
        try:
            archive = SourceArchive(source_tree(tmp_path))
            stored = await run(client._driver.execute(upload(client.objects, "demo", archive)))
            assert stored.url.startswith("object://demo/")
            await collect(AppLogs(client._driver).logs("demo", follow=False))
        finally:
            await close(client)
        uploads = [r for r in rack.requests if r.method == "POST" and "/objects/" in r.path]
        assert len(uploads) == 1  # the archive was streamed once, with the session
        assert uploads[0].header("Session")
    finally:
        rack.stop()
