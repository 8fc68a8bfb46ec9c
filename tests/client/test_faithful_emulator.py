"""Our client against the emulator where it now behaves as a rack (issue 15, end to end)."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from convox_provider.client.client import AsyncConvoxClient, ConvoxClient
from convox_provider.client.errors import ConvoxError
from convox_provider.client.resources.streams import AppLogs, ProcessStreams
from convox_provider.client.retry import RetryConfig
from convox_provider.testing import RackEmulator

MANIFEST = "services:\n  web:\n    build: .\n    port: 3000\n    command: bin/web\n"
Client = ConvoxClient | AsyncConvoxClient


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def rack(convox_rack: RackEmulator) -> RackEmulator:
    convox_rack.create_app("demo")
    convox_rack.add_release("demo", MANIFEST, description="seed")
    return convox_rack


@pytest.fixture
async def client(kind: str, rack: RackEmulator) -> AsyncIterator[Client]:
    cls = ConvoxClient if kind == "sync" else AsyncConvoxClient
    made = cls(rack.url, "password", retry=RetryConfig(max_retries=0))
    yield made
    if isinstance(made, ConvoxClient):
        made.close()
    else:
        await made.aclose()


async def run(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result


async def collect(chunks: Iterator[Any] | AsyncIterator[Any]) -> list[Any]:
    if isinstance(chunks, AsyncIterator):
        return [chunk async for chunk in chunks]
    return list(chunks)


async def exec_output(
    client: Client, command: str, stdin: bytes | None = None
) -> tuple[bytes, int]:
    output: list[bytes] = []
    code = await run(
        ProcessStreams(client._driver).exec(
            "demo", "web", command, on_output=output.append, stdin=stdin, tty=stdin is not None
        )
    )
    return b"".join(output), int(code)


async def test_a_build_without_its_dockerfile_fails_with_the_rack_error(
    kind: str, rack: RackEmulator, client: Client, tmp_path: Path
) -> None:
    (tmp_path / "convox.yml").write_text(MANIFEST)
    output: list[bytes] = []
    with pytest.raises(ConvoxError) as failure:
        await run(
            client.builds.build_from_directory(
                "demo", tmp_path, on_output=output.append, poll_interval=0.02
            )
        )
    assert "failed" in str(failure.value)
    assert b"".join(output).endswith(b"/Dockerfile: no such file or directory\n")
    assert rack.builds("demo")[0]["status"] == "failed"
    assert rack.builds("demo")[0]["release"] == ""


async def test_exec_sees_the_injected_environment_and_stdin(
    kind: str, rack: RackEmulator, client: Client
) -> None:
    release = rack.app("demo")["release"]
    out, code = await exec_output(client, "sh -c 'echo $APP/$SERVICE/$RELEASE; exit 7'")
    assert (out, code) == (f"demo/web/{release}\n".encode(), 7)
    out, code = await exec_output(client, "cat", stdin=b"piped\n")
    assert (out, code) == (b"piped\r\n", 0)  # stdin needs a TTY, which writes CRLF


async def test_app_logs_show_pod_events_and_container_output(
    kind: str, rack: RackEmulator, client: Client
) -> None:
    rack.scripts.on_service("web", ["Listening on :3000"])
    newer = await run(client.releases.create("demo", env="A=1"))
    await run(client.releases.promote("demo", newer.id, poll_interval=0.02, initial_delay=0))
    chunks = await collect(AppLogs(client._driver).logs("demo", follow=False, since="1m"))
    log = b"".join(chunks).decode()
    assert "Started container demo\n" in log
    assert "started: bin/web\n" in log
    assert "Listening on :3000\n" in log
