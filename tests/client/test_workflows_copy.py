"""The build copy workflow and its export relay, on the fake driver (two scripted racks)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from convox_provider.client.errors import ConvoxInputError, ConvoxWaitTimeoutError
from convox_provider.client.models import Build, Release
from convox_provider.client.operation import Call, On
from convox_provider.client.relay import REPLACED, ConvoxCopyError, ExportRelay
from convox_provider.client.workflows.copy import BuildCopyWorkflows, copy_marker
from convox_provider.client.workflows.events import BuildCopied
from tests.client.workflow_fakes import FakeRack, api_error

MANIFEST = "services:\n  web:\n    build: .\n"


def export_archive(description: str = "v1", images: int = 2, size: int = 70_000) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.USTAR_FORMAT) as tar:
        data = json.dumps({"id": "BSOURCE", "description": description, "manifest": MANIFEST})
        for name, content in [("build.json", data.encode())] + [
            (f"s{i}.BSOURCE.tar", bytes(range(256)) * (size // 256)) for i in range(images)
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def pieces(data: bytes, size: int = 997) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


class Side(FakeRack):
    """A fake rack that can also be the other side of a copy."""

    def __init__(self, host: str, export: bytes = b"") -> None:
        super().__init__()
        self.config = SimpleNamespace(console=False, base_url=host, rack=None)
        self.export = export
        self.imported: bytes | None = None
        self.downloads: list[str] = []

    def open_download(self, call: Call[Any]) -> Iterator[bytes]:
        self.downloads.append(call.path)
        return pieces(self.export)

    def perform(self, effect: Any) -> Any:
        return self._perform(effect)

    def _perform(self, effect: Any) -> Any:
        if isinstance(effect, On):
            return effect.driver.perform(effect.effect)
        return super()._perform(effect)


def built(**fields: Any) -> Build:
    values = {"id": "BSOURCE", "status": "complete", "release": "RSOURCE", "manifest": MANIFEST}
    values.update(fields)
    return Build(**values)


@pytest.fixture
def racks() -> tuple[Side, Side]:
    source = Side("https://staging", export_archive())
    target = Side("https://production")
    source.on("GET", "/apps/demo/builds/BSOURCE", built())
    target.on("GET", "/apps/demo", SimpleNamespace(app_status=None))
    target.on("GET", "/apps/demo/builds", [])

    def imported(sent: Any) -> Build:
        target.imported = sent.body
        return built(id="BNEW", release="RNEW", description="x")

    target.on("POST", "/apps/demo/builds/import", imported)
    target.on(
        "GET", "/apps/demo/releases/RNEW", Release(id="RNEW", build="BNEW", manifest=MANIFEST)
    )
    return source, target


def copy(source: Side, target: Side, **options: Any) -> Any:
    target.builds = SimpleNamespace(_driver=target)
    return BuildCopyWorkflows(source).copy("demo", "BSOURCE", to=target, **options)


def test_the_import_body_is_the_export_with_a_marked_description(racks: Any) -> None:
    source, target = racks
    copied = copy(source, target, on_event=source.event)
    assert (copied.build_id, copied.release_id, copied.reused) == ("BNEW", "RNEW", False)
    with tarfile.open(fileobj=io.BytesIO(target.imported), mode="r:gz") as tar:
        names = tar.getnames()
        meta = json.load(tar.extractfile("build.json"))  # type: ignore[arg-type]
        original = tarfile.open(fileobj=io.BytesIO(source.export), mode="r:gz")  # noqa: SIM115
        assert (
            tar.extractfile("s1.BSOURCE.tar").read()
            == original.extractfile(  # type: ignore[union-attr]
                "s1.BSOURCE.tar"
            ).read()
        )  # type: ignore[union-attr]
    assert names == ["build.json", REPLACED, "s0.BSOURCE.tar", "s1.BSOURCE.tar"]
    marker = copy_marker("https://staging|", "demo", "BSOURCE")
    assert meta["description"] == f"v1 [{marker}]"
    assert source.events_of(BuildCopied)[0].size == len(source.export)
    # passed through: a small gzip member of its own, then the export's bytes unchanged
    assert target.imported.endswith(source.export)
    assert len(target.imported) - len(source.export) < 1024
    with tarfile.open(fileobj=io.BytesIO(target.imported), mode="r:gz") as tar:
        replaced = tar.extractfile(REPLACED).read()  # type: ignore[union-attr]
    plain = gzip.decompress(source.export)
    assert replaced == plain[: len(replaced)]  # the original build.json entry, whole
    assert tarfile.TarInfo.frombuf(replaced[:512], "utf-8", "strict").name == "build.json"


def reordered_export() -> bytes:
    """An export whose first entry is not build.json: it cannot be passed through."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.USTAR_FORMAT) as tar:
        data = json.dumps({"id": "BSOURCE", "description": "v1", "manifest": MANIFEST})
        for name, content in [("s0.BSOURCE.tar", b"x" * 3000), ("build.json", data.encode())]:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def test_an_export_not_starting_with_build_json_is_re_encoded(racks: Any) -> None:
    source, target = racks
    source.export = reordered_export()
    copy(source, target)
    with tarfile.open(fileobj=io.BytesIO(target.imported), mode="r:gz") as tar:
        assert tar.getnames() == ["s0.BSOURCE.tar", "build.json"]
        meta = json.load(tar.extractfile("build.json"))  # type: ignore[arg-type]
    assert meta["description"].startswith("v1 [convox-copy:")
    assert not target.imported.endswith(source.export)


def test_a_second_build_json_is_never_passed_through(racks: Any) -> None:
    source, target = racks
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.USTAR_FORMAT) as tar:
        for content in (b'{"description": "v1"}', b'{"description": "other"}'):
            info = tarfile.TarInfo("build.json")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    source.export = buffer.getvalue()
    with pytest.raises(ConvoxCopyError, match=r"second build\.json") as raised:
        copy(source, target)
    assert raised.value.rack == "source"
    assert target.imported is None


def test_a_marked_build_on_the_target_is_reused(racks: Any) -> None:
    source, target = racks
    marker = copy_marker("https://staging|", "demo", "BSOURCE")
    earlier = built(id="BNEW", release="RNEW", description=f"v1 [{marker}]")
    target._answers[("GET", "/apps/demo/builds")] = [[earlier]]
    copied = copy(source, target)
    assert copied.reused
    assert copied.build_id == "BNEW"
    assert target.requests("POST") == []


@pytest.mark.parametrize("cut", [1, 500, -30, -8])
def test_an_export_cut_short_aborts_the_import(racks: Any, cut: int) -> None:
    source, target = racks
    source.export = source.export[:cut]
    with pytest.raises(ConvoxCopyError, match="incomplete") as raised:
        copy(source, target)
    assert raised.value.rack == "source"
    assert "staging" in str(raised.value)
    assert target.imported is None  # the body raised before it ended


def test_an_import_whose_manifest_differs_is_an_error_of_the_target(racks: Any) -> None:
    source, target = racks
    target._answers[("POST", "/apps/demo/builds/import")] = [
        built(id="BNEW", release="RNEW", manifest="x")
    ]
    with pytest.raises(ConvoxCopyError, match="manifest differs") as raised:
        copy(source, target)
    assert raised.value.rack == "target"
    assert "production" in str(raised.value)


def test_a_target_error_names_the_target_rack(racks: Any) -> None:
    source, target = racks
    target._answers[("POST", "/apps/demo/builds/import")] = [api_error(502, "bad gateway")]
    with pytest.raises(ConvoxCopyError, match="target rack https://production") as raised:
        copy(source, target)
    assert raised.value.rack == "target"


def test_a_missing_target_app_is_bad_input(racks: Any) -> None:
    source, target = racks
    target._answers[("GET", "/apps/demo")] = [api_error(404, "app not found")]
    with pytest.raises(ConvoxInputError, match="create it first"):
        copy(source, target)


def test_a_build_that_is_not_complete_is_bad_input(racks: Any) -> None:
    source, target = racks
    source._answers[("GET", "/apps/demo/builds/BSOURCE")] = [built(status="running", release="")]
    with pytest.raises(ConvoxInputError, match="only a complete build"):
        copy(source, target)
    assert target.sent == []


def test_the_same_app_on_the_same_rack_is_refused(racks: Any) -> None:
    source, _ = racks
    with pytest.raises(ConvoxInputError, match="same app"):
        copy(source, source)
    assert source.sent == []


class TestRelay:
    def relay(self, **options: Any) -> ExportRelay:
        defaults: dict[str, Any] = {"describe": lambda d: d + "!", "source": "src", "timeout": 60}
        defaults.update(options)
        return ExportRelay(**defaults)

    def test_constant_memory_per_chunk(self) -> None:
        data = export_archive(images=3, size=3_000_000)
        relay = self.relay()
        out = bytearray()
        for chunk in pieces(data, 65536):
            for piece in relay.feed(chunk):
                out += piece
            assert len(relay._pending) <= 512 + 256 * 1024
        out += relay.finish()
        assert gzip.decompress(bytes(out)).count(bytes(range(256))) >= 3 * (3_000_000 // 256)
        assert relay.images == [f"s{i}.BSOURCE.tar" for i in range(3)]

    def test_progress_is_reported(self) -> None:
        seen: list[int] = []
        relay = self.relay(on_progress=seen.append)
        data = export_archive()
        for chunk in pieces(data):
            list(relay.feed(chunk))
        relay.finish()
        assert seen[-1] == len(data)

    def test_the_deadline_stops_the_relay(self) -> None:
        clock = iter([0.0, 0.0, 100.0])
        relay = self.relay(timeout=10, clock=lambda: next(clock))
        list(relay.feed(b"\x1f"))
        with pytest.raises(ConvoxWaitTimeoutError):
            list(relay.feed(b"\x8b"))

    def test_garbage_is_not_an_archive(self) -> None:
        with pytest.raises(ConvoxCopyError, match="not a gzip"):
            list(self.relay().feed(b"<html>oops</html>"))

    def test_an_archive_without_build_json_is_refused(self) -> None:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            info = tarfile.TarInfo("web.B.tar")
            tar.addfile(info, io.BytesIO(b""))
        relay = self.relay()
        list(relay.feed(buffer.getvalue()))
        with pytest.raises(ConvoxCopyError, match=r"no build\.json"):
            relay.finish()
