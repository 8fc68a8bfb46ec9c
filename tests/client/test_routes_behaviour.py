"""Route behaviour beyond the request shape: raw bodies and streams, the inverted ``no-cache``,
environment reads, per-call timeouts, what is retried, and secrets kept out of sight."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from convox_provider.client.client import AsyncConvoxClient, ConvoxClient
from convox_provider.client.errors import (
    ConvoxConnectionError,
    ConvoxGatewayError,
    ConvoxInputError,
    ConvoxNotFoundError,
    ConvoxServerError,
)
from convox_provider.client.models import Build, Object

BUILD = {"id": "BNEWBUILDX", "app": "myapp", "status": "complete", "release": "RNEWRELEAS"}
# Long calls wait long for every phase but connecting, still bounded by the client's timeout.
TRANSFER = {"connect": 30.0, "read": 3600.0, "write": 3600.0, "pool": 3600.0}
FOREVER = {"connect": 30.0, "read": None, "write": None, "pool": None}
DEFAULT = {"connect": 30.0, "read": 30.0, "write": 30.0, "pool": 30.0}


# -- objects ---------------------------------------------------------------------------------


async def test_store_sends_raw_bytes_and_returns_the_object_url(rack) -> None:
    rack.reply(json={"Url": "object://myapp/tmp/src.tgz"})

    stored = await rack(lambda c: c.objects.store("myapp", "tmp/src.tgz", b"\x1f\x8bdata"))

    assert stored == Object(url="object://myapp/tmp/src.tgz")
    request = rack.request
    assert (request.method, rack.path) == ("POST", "/apps/myapp/objects/tmp/src.tgz")
    assert request.headers["content-type"] == "application/octet-stream"
    assert request.content == b"\x1f\x8bdata"
    assert rack.options == {}
    assert request.extensions["timeout"] == TRANSFER


@pytest.mark.parametrize(("public", "header"), [(True, "true"), (False, "false")])
async def test_store_public_header(rack, public: bool, header: str) -> None:
    rack.reply(json={"Url": "https://bucket.s3.amazonaws.com/myapp/k"})

    stored = await rack(lambda c: c.objects.store("myapp", "k", b"x", public=public))

    assert rack.options == {"public": header}
    assert stored.url.startswith("https://")


async def test_store_without_key_lets_the_rack_choose_one(rack) -> None:
    rack.reply(json={"Url": "object://myapp/tmp/8d3c0e.tgz"})

    stored = await rack(lambda c: c.objects.store("myapp", None, b"x"))

    assert rack.path == "/apps/myapp/objects/"
    assert stored.url == "object://myapp/tmp/8d3c0e.tgz"


async def test_store_streams_chunks_without_joining_them(rack) -> None:
    rack.reply(json={"Url": "object://myapp/big.tgz"})

    await rack(lambda c: c.objects.store("myapp", "big.tgz", rack.chunks([b"ab", b"cd", b"e"])))

    request = rack.request
    assert request.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in request.headers
    assert request.content == b"abcde"
    assert request.headers["content-type"] == "application/octet-stream"


async def test_store_refuses_a_body_the_client_cannot_send(rack) -> None:
    async def agen() -> Any:
        yield b"x"

    wrong = agen() if rack.kind == "sync" else iter([b"x"])
    with pytest.raises(ConvoxInputError, match=f"the {rack.kind} client takes bytes"):
        await rack(lambda c: c.objects.store("myapp", "k", wrong))
    with pytest.raises(ConvoxInputError, match="got str"):
        await rack(lambda c: c.objects.store("myapp", "k", "text"))
    assert rack.requests == []
    if rack.kind == "sync":
        await wrong.aclose()


async def test_store_timeout_per_call(rack) -> None:
    rack.reply(json={"Url": "object://myapp/k"})
    rack.reply(json={"Url": "object://myapp/k"})

    await rack(lambda c: c.objects.store("myapp", "k", b"x", timeout=None))
    await rack(lambda c: c.objects.store("myapp", "k", b"x", timeout=12.5))

    first, second = rack.requests
    assert first.extensions["timeout"] == FOREVER
    assert second.extensions["timeout"] == dict.fromkeys(TRANSFER, 12.5)


async def test_fetch_to_streams_into_the_sink(rack) -> None:
    body = bytes(range(256)) * 1000
    rack.reply(content=body)
    received: list[bytes] = []

    size = await rack(lambda c: c.objects.fetch_to("myapp", "build/B1/logs", received.append))

    assert size == len(body)
    assert b"".join(received) == body
    assert (rack.request.method, rack.path) == ("GET", "/apps/myapp/objects/build/B1/logs")
    assert rack.request.extensions["timeout"] == TRANSFER


async def test_fetch_keeps_the_default_timeout(rack) -> None:
    rack.reply(content=b"small")

    assert await rack(lambda c: c.objects.fetch("myapp", "k")) == b"small"
    assert rack.request.extensions["timeout"] == DEFAULT


async def test_sink_receives_nothing_from_an_error_answer(rack) -> None:
    rack.reply(404, json={"error": "object not found: k"})
    received: list[bytes] = []

    with pytest.raises(Exception, match="object not found: k"):
        await rack(lambda c: c.objects.fetch_to("myapp", "k", received.append))
    assert received == []


# -- builds ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("no_cache", "wire"),
    [(True, [("no-cache", "false")]), (False, [("no-cache", "true")]), (None, [])],
)
async def test_no_cache_is_sent_inverted(rack, no_cache: bool | None, wire: list[Any]) -> None:
    # The rack reads ``no-cache`` as "use the cache" (docs/rack-api.md §4.3).
    rack.reply(json=BUILD)

    await rack(lambda c: c.builds.create("myapp", "object://myapp/s.tgz", no_cache=no_cache))

    assert rack.form == [("url", "object://myapp/s.tgz"), *wire]


async def test_export_streams_the_archive_into_the_sink(rack) -> None:
    archive = b"\x1f\x8b" + b"\x00" * 70_000
    rack.reply(content=archive, headers={"content-type": "application/octet-stream"})
    received = bytearray()

    size = await rack(lambda c: c.builds.export("myapp", "BHTQWERTYU", received.extend))

    assert (rack.request.method, rack.path) == ("GET", "/apps/myapp/builds/BHTQWERTYU.tgz")
    assert size == len(archive)
    assert bytes(received) == archive
    assert rack.request.extensions["timeout"] == TRANSFER


async def test_import_sends_the_archive_raw_with_a_long_timeout(rack) -> None:
    rack.reply(json=BUILD)

    build = await rack(lambda c: c.builds.import_build("myapp", b"\x1f\x8barchive"))

    assert isinstance(build, Build)
    assert build.release == "RNEWRELEAS"
    request = rack.request
    assert (request.method, rack.path) == ("POST", "/apps/myapp/builds/import")
    assert request.headers["content-type"] == "application/octet-stream"
    assert request.content == b"\x1f\x8barchive"
    assert request.extensions["timeout"] == TRANSFER


async def test_import_streams_chunks(rack) -> None:
    rack.reply(json=BUILD)

    await rack(lambda c: c.builds.import_build("myapp", rack.chunks([b"1", b"2"]), timeout=None))

    assert rack.request.content == b"12"
    assert rack.request.headers["transfer-encoding"] == "chunked"
    assert rack.request.extensions["timeout"] == FOREVER


async def test_import_image_accepts_the_202_empty_answer(rack) -> None:
    rack.reply(202, content=b"")

    assert await rack(lambda c: c.builds.import_image("myapp", "B1", "nginx:1.27")) is None


# -- builds from and to files -----------------------------------------------------------------

ARCHIVE = bytes(range(256)) * 10_000  # 2.4 MiB: several 1 MiB chunks


def entries(directory: Path) -> list[str]:
    """The names in ``directory`` (temporary files included)."""
    return sorted(os.listdir(directory))


class ReadRecorder(io.BytesIO):
    """A binary file recording which thread made each read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.threads: list[int] = []

    def read(self, size: int | None = -1, /) -> bytes:
        self.threads.append(threading.get_ident())
        return super().read(size)


async def test_import_from_a_path_sends_exactly_the_file(rack, tmp_path: Path) -> None:
    archive = tmp_path / "build.tgz"
    archive.write_bytes(ARCHIVE)
    rack.reply(json=BUILD)
    rack.reply(json=BUILD)

    await rack(lambda c: c.builds.import_build("myapp", archive))
    await rack(lambda c: c.builds.import_build("myapp", str(archive)))

    for request in rack.requests:
        assert (request.method, rack.path_of(request)) == ("POST", "/apps/myapp/builds/import")
        assert request.headers["content-type"] == "application/octet-stream"
        assert request.content == ARCHIVE
        assert request.extensions["timeout"] == TRANSFER


async def test_import_from_a_file_object_reads_it_off_the_event_loop(rack) -> None:
    file = ReadRecorder(ARCHIVE)
    rack.reply(json=BUILD)

    build = await rack(lambda c: c.builds.import_build("myapp", file))

    assert build.id == "BNEWBUILDX"
    assert rack.request.headers["content-type"] == "application/octet-stream"
    assert rack.request.content == ARCHIVE
    assert len(file.threads) == 4  # three chunks, then the empty read that ends the file
    here = threading.get_ident()
    if rack.kind == "sync":
        assert set(file.threads) == {here}
    else:
        assert here not in file.threads


async def test_import_from_a_file_object_starts_where_it_stands(rack) -> None:
    file = io.BytesIO(b"header" + ARCHIVE)
    file.seek(6)
    rack.reply(json=BUILD)

    await rack(lambda c: c.builds.import_build("myapp", file))

    assert rack.request.content == ARCHIVE


async def test_import_from_a_file_is_sent_whole_again_after_a_connect_failure(
    retrying_rack, tmp_path: Path
) -> None:
    rack = retrying_rack
    archive = tmp_path / "build.tgz"
    archive.write_bytes(ARCHIVE)
    for source in (archive, io.BytesIO(ARCHIVE)):
        rack.mock.add_exception(httpx.ConnectError("connection refused"))
        rack.reply(json=BUILD)

        await rack(lambda c, source=source: c.builds.import_build("myapp", source))

    assert [request.content for request in rack.requests] == [ARCHIVE] * 4


async def test_import_refuses_what_is_not_a_binary_file(rack, tmp_path: Path) -> None:
    with pytest.raises(ConvoxInputError, match="is not a file"):
        await rack(lambda c: c.builds.import_build("myapp", tmp_path / "missing.tgz"))
    with pytest.raises(ConvoxInputError, match="is not a file"):
        await rack(lambda c: c.builds.import_build("myapp", tmp_path))
    with pytest.raises(ConvoxInputError, match="binary file"):
        await rack(lambda c: c.builds.import_build("myapp", io.StringIO("text")))
    assert rack.requests == []


async def test_import_of_a_large_file_keeps_memory_flat(client_kind: str, tmp_path: Path) -> None:
    archive = tmp_path / "big.tgz"
    block = os.urandom(1024 * 1024)
    with archive.open("wb") as file:
        for _ in range(50):
            file.write(block)
    drain = Drain()
    tracemalloc.start()
    try:
        if client_kind == "sync":
            with ConvoxClient("https://api.rack.example", "key", transport=drain) as client:
                build = client.builds.import_build("myapp", archive)
        else:
            async with AsyncConvoxClient("https://api.rack.example", "key", transport=drain) as ac:
                build = await ac.builds.import_build("myapp", archive)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert build.id == "BNEWBUILDX"
    assert drain.received == 50 * len(block)
    assert drain.digest == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert peak < 5 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"


class Drain(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """A rack that reads the request body chunk by chunk, keeps only its size and digest, and
    answers with a build."""

    def __init__(self) -> None:
        self.received = 0
        self._hash = hashlib.sha256()

    @property
    def digest(self) -> str:
        return self._hash.hexdigest()

    def _take(self, chunk: bytes) -> None:
        self.received += len(chunk)
        self._hash.update(chunk)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        for chunk in request.stream:
            self._take(chunk)
        return httpx.Response(200, json=BUILD)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        async for chunk in request.stream:
            self._take(chunk)
        return httpx.Response(200, json=BUILD)


async def test_export_to_a_path_writes_the_archive(rack, tmp_path: Path) -> None:
    rack.reply(content=ARCHIVE, headers={"content-type": "application/x-gzip"})
    target = tmp_path / "export.tgz"
    target.write_bytes(b"an older export")

    size = await rack(lambda c: c.builds.export("myapp", "BHTQWERTYU", target))

    assert size == len(ARCHIVE)
    assert target.read_bytes() == ARCHIVE
    assert entries(tmp_path) == ["export.tgz"]  # no temporary file left
    assert rack.path == "/apps/myapp/builds/BHTQWERTYU.tgz"
    assert rack.request.extensions["timeout"] == TRANSFER


async def test_export_to_a_file_object_writes_and_leaves_it_open(rack) -> None:
    rack.reply(content=ARCHIVE)
    file = io.BytesIO()

    size = await rack(lambda c: c.builds.export("myapp", "BHTQWERTYU", file))

    assert size == len(ARCHIVE)
    assert file.getvalue() == ARCHIVE


class BrokenBody(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body that breaks after its first chunk."""

    def __iter__(self) -> Iterator[bytes]:
        yield ARCHIVE[:1000]
        raise httpx.ReadError("connection reset by peer")

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield ARCHIVE[:1000]
        raise httpx.ReadError("connection reset by peer")


async def test_a_broken_export_leaves_the_path_as_it_was(rack, tmp_path: Path) -> None:
    target = tmp_path / "export.tgz"
    rack.mock.add_response(stream=BrokenBody())

    with pytest.raises(ConvoxConnectionError, match="download broke"):
        await rack(lambda c: c.builds.export("myapp", "B1", target))
    assert entries(tmp_path) == []

    target.write_bytes(b"an older export")
    rack.mock.add_response(stream=BrokenBody())
    with pytest.raises(ConvoxConnectionError, match="download broke"):
        await rack(lambda c: c.builds.export("myapp", "B1", target))
    assert entries(tmp_path) == ["export.tgz"]
    assert target.read_bytes() == b"an older export"


async def test_an_export_answered_with_an_error_writes_nothing(rack, tmp_path: Path) -> None:
    rack.reply(404, json={"error": "build not found: B1"})
    rack.reply(404, json={"error": "object not found: k"})

    with pytest.raises(ConvoxNotFoundError, match="build not found"):
        await rack(lambda c: c.builds.export("myapp", "B1", tmp_path / "export.tgz"))
    with pytest.raises(ConvoxNotFoundError, match="object not found"):
        await rack(lambda c: c.objects.fetch_to("myapp", "k", tmp_path / "object.bin"))
    assert entries(tmp_path) == []


async def test_fetch_to_a_path(rack, tmp_path: Path) -> None:
    rack.reply(content=ARCHIVE)

    size = await rack(lambda c: c.objects.fetch_to("myapp", "tmp/a.tgz", tmp_path / "a.tgz"))

    assert size == len(ARCHIVE)
    assert (tmp_path / "a.tgz").read_bytes() == ARCHIVE


async def test_export_refuses_a_destination_it_cannot_write(rack, tmp_path: Path) -> None:
    with pytest.raises(ConvoxInputError, match="is a directory"):
        await rack(lambda c: c.builds.export("myapp", "B1", tmp_path))
    with pytest.raises(ConvoxInputError, match="no directory"):
        await rack(lambda c: c.builds.export("myapp", "B1", tmp_path / "missing" / "b.tgz"))
    with pytest.raises(ConvoxInputError, match="binary file"):
        await rack(lambda c: c.builds.export("myapp", "B1", io.StringIO()))
    assert rack.requests == []
    assert entries(tmp_path) == []


# -- environment -----------------------------------------------------------------------------

NEWEST = {
    "id": "RNEWESTAAA",
    "app": "myapp",
    "build": "B2",
    "env": "A=1\nB=x=y\n #C=3\r\nNOEQUALS\nA=2",
    "created": "2026-01-15T14:31:05Z",
}


async def test_environment_reads_the_newest_release(rack) -> None:
    rack.reply(json=[NEWEST])
    rack.reply(json=NEWEST)

    env = await rack(lambda c: c.environment.get("myapp"))

    # Parsed with the rack's rules: first '=' splits, key trimmed, '#' kept, last duplicate wins.
    assert env == {"A": "2", "B": "x=y", "#C": "3"}
    listing, reading = rack.requests
    assert (listing.method, rack.path_of(listing)) == ("GET", "/apps/myapp/releases")
    assert rack.query_of(listing) == [("limit", "1")]
    assert (reading.method, rack.path_of(reading)) == ("GET", "/apps/myapp/releases/RNEWESTAAA")


async def test_environment_of_an_app_without_releases_is_empty(rack) -> None:
    rack.reply(json=[])

    assert await rack(lambda c: c.environment.get("myapp")) == {}
    assert len(rack.requests) == 1


async def test_environment_of_an_explicit_release(rack) -> None:
    rack.reply(json={**NEWEST, "id": "ROLDAAAAAA", "env": "X=old"})

    assert await rack(lambda c: c.environment.get("myapp", release="ROLDAAAAAA")) == {"X": "old"}
    assert rack.path == "/apps/myapp/releases/ROLDAAAAAA"


# -- what is retried -------------------------------------------------------------------------

RETRIED = {
    "apps.get": lambda c: c.apps.get("myapp"),
    "objects.fetch": lambda c: c.objects.fetch("myapp", "k"),
    "apps.config_set": lambda c: c.apps.config_set("myapp", "n", value="v"),
    "builds.update": lambda c: c.builds.update("myapp", "B1", status="complete"),
    "services.update": lambda c: c.services.update("myapp", "web", count=2),
    "registries.add": lambda c: c.registries.add("ghcr.io", "u", "p"),
    "resources.system_types": lambda c: c.resources.system_types(),
    "objects.store bytes under a key": lambda c: c.objects.store("myapp", "k", b"x"),
}
NOT_RETRIED = {
    "apps.create": lambda c: c.apps.create("myapp"),
    "apps.update": lambda c: c.apps.update("myapp", lock=True),
    "apps.delete": lambda c: c.apps.delete("myapp"),
    "objects.store without key": lambda c: c.objects.store("myapp", None, b"x"),
    "builds.create": lambda c: c.builds.create("myapp", "object://myapp/k"),
    "builds.import_build": lambda c: c.builds.import_build("myapp", b"x"),
    "releases.create": lambda c: c.releases.create("myapp", env={"A": "1"}),
    "releases.submit_promote": lambda c: c.releases.submit_promote("myapp", "R1"),
    "services.restart": lambda c: c.services.restart("myapp", "web"),
    "processes.run_detached": lambda c: c.processes.run_detached("myapp", "web", command="migrate"),
    "processes.stop": lambda c: c.processes.stop("myapp", "run-1"),
    "system.jwt_token": lambda c: c.system.jwt_token(role="read", duration_in_hour=1),
}


@pytest.mark.parametrize("name", list(RETRIED))
async def test_idempotent_calls_are_retried_after_a_gateway_error(retrying_rack, name) -> None:
    rack = retrying_rack
    rack.reply(503, text="upstream unavailable\n")
    answers = {"resources.system_types": [], "objects.store bytes under a key": {"Url": "x"}}
    rack.reply(json=answers.get(name, {}))

    await rack(RETRIED[name])

    assert len(rack.requests) == 2


@pytest.mark.parametrize("name", list(NOT_RETRIED))
async def test_other_writes_are_never_sent_twice(retrying_rack, name) -> None:
    rack = retrying_rack
    rack.reply(504, text="gateway timeout\n")

    with pytest.raises(ConvoxGatewayError):
        await rack(NOT_RETRIED[name])
    assert len(rack.requests) == 1


async def test_a_streamed_store_is_not_retried(retrying_rack) -> None:
    rack = retrying_rack
    rack.reply(503, text="busy\n")

    with pytest.raises(ConvoxGatewayError):
        await rack(lambda c: c.objects.store("myapp", "k", rack.chunks([b"a"])))
    assert len(rack.requests) == 1


# -- secrets ---------------------------------------------------------------------------------

SECRET = "s3cr3t-VALUE-9f2"


def _describe(client: Any, group: str, name: str, *args: Any, **kwargs: Any) -> Any:
    resource = getattr(client, group)
    return getattr(type(resource), name).describe(resource, *args, **kwargs)


@pytest.mark.parametrize(
    ("group", "name", "args", "kwargs"),
    [
        ("processes", "run_detached", ("myapp", "web"), {"environment": {"TOKEN": SECRET}}),
        (
            "processes",
            "run_detached",
            ("myapp", "web"),
            {"command": f"psql postgres://u:{SECRET}@db"},
        ),
        ("releases", "create", ("myapp",), {"env": {"TOKEN": SECRET}}),
        ("releases", "create", ("myapp",), {"env": f"TOKEN={SECRET}"}),
        ("registries", "add", ("ghcr.io", "bot", SECRET), {}),
        ("certificates", "create", ("PUB", SECRET), {}),
        ("apps", "config_set", ("myapp", "n"), {"value": SECRET}),
        ("builds", "import_image", ("myapp", "B1", "img"), {"src_creds_pass": SECRET}),
        ("resources", "system_create", ("webhook",), {"parameters": {"Url": SECRET}}),
    ],
)
def test_secret_values_stay_out_of_the_call_repr(sync_client, group, name, args, kwargs) -> None:
    call = _describe(sync_client, group, name, *args, **kwargs)

    assert SECRET not in repr(call)
    assert "Hidden([" in repr(call)


async def test_run_environment_reaches_the_header_but_never_an_error(rack) -> None:
    rack.reply(500, json={"error": "could not start pod"}, headers={"request-id": "0123456789ab"})

    with pytest.raises(ConvoxServerError) as caught:
        await rack(
            lambda c: c.processes.run_detached("myapp", "web", environment={"TOKEN": SECRET})
        )

    assert rack.options["environment"] == f"TOKEN={SECRET}"
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)


async def test_bad_environment_errors_name_keys_not_values(rack) -> None:
    with pytest.raises(ConvoxInputError) as caught:
        await rack(
            lambda c: c.processes.run_detached("myapp", "web", environment={"A": SECRET, "B": 3})
        )
    assert SECRET not in str(caught.value)

    with pytest.raises(ConvoxInputError) as caught:
        await rack(lambda c: c.releases.create("myapp", env={"A": SECRET + "\nB=1"}))
    assert SECRET not in str(caught.value)
    assert "'A'" in str(caught.value)
    assert rack.requests == []
