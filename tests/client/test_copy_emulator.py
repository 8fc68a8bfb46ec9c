"""Copying a build between two emulated racks over real HTTP, on both clients."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from convox_provider.client.client import AsyncConvoxClient, ConvoxClient
from convox_provider.client.errors import ConvoxInputError
from convox_provider.client.relay import ConvoxCopyError
from convox_provider.client.workflows.copy import CopiedBuild
from convox_provider.client.workflows.events import BuildCopied, BuildCopyProgress
from convox_provider.testing.emulator import RackEmulator

MANIFEST = "services:\n  web:\n    build: .\n    port: 3000\n  worker:\n    build: .\n"


class Pair:
    def __init__(self, kind: str, source: RackEmulator, target: RackEmulator) -> None:
        cls = ConvoxClient if kind == "sync" else AsyncConvoxClient
        self.source_rack = source
        self.target_rack = target
        self.source: Any = cls(source.url, source.password)
        self.target: Any = cls(target.url, target.password)

    async def run(self, operation: Callable[[Pair], Any]) -> Any:
        result = operation(self)
        if inspect.isawaitable(result):
            return await result
        return result

    async def close(self) -> None:
        for client in (self.source, self.target):
            if isinstance(client, ConvoxClient):
                client.close()
            else:
                await client.aclose()


@pytest.fixture(params=["sync", "async"])
async def pair(request: pytest.FixtureRequest, convox_rack_factory: Any) -> AsyncIterator[Pair]:
    source = convox_rack_factory()
    target = convox_rack_factory()
    source.create_app("demo")
    target.create_app("demo")
    made = Pair(str(request.param), source, target)
    yield made
    await made.close()


def seeded(rack: RackEmulator, description: str = "release 1") -> str:
    build, _ = rack.add_release("demo", MANIFEST, description=description)
    return str(build["id"])


async def test_a_build_is_copied_with_its_manifest_and_a_marker(pair: Pair) -> None:
    build_id = seeded(pair.source_rack)
    events: list[Any] = []
    copied: CopiedBuild = await pair.run(
        lambda p: p.source.builds.copy("demo", build_id, to=p.target, on_event=events.append)
    )
    assert not copied.reused
    assert copied.size > 0
    target = pair.target_rack.builds("demo")
    assert [b["id"] for b in target] == [copied.build_id]
    assert target[0]["manifest"] == MANIFEST
    assert target[0]["status"] == "complete"
    assert target[0]["release"] == copied.release_id
    assert target[0]["description"].startswith("release 1 [convox-copy:")
    assert any(isinstance(e, BuildCopyProgress) for e in events)
    assert [type(e) for e in events][-1] is BuildCopied
    assert "images" in copied.unverified
    # nothing promoted on the target
    assert pair.target_rack.app("demo")["release"] != copied.release_id


async def test_the_copy_writes_no_temporary_file(
    pair: Pair, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The export goes straight into the import: nothing is spooled on the copying side (the
    emulators spool into their own directories, made before this test points tempfile away)."""
    import tempfile

    build_id = seeded(pair.source_rack)
    client_tmp = tmp_path / "client-tmp"
    client_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(client_tmp))
    copied = await pair.run(lambda p: p.source.builds.copy("demo", build_id, to=p.target))
    assert copied.size > 0
    assert list(client_tmp.iterdir()) == []


async def test_a_second_copy_finds_the_first_instead_of_importing_again(pair: Pair) -> None:
    build_id = seeded(pair.source_rack)
    first = await pair.run(lambda p: p.source.builds.copy("demo", build_id, to=p.target))
    again = await pair.run(lambda p: p.source.builds.copy("demo", build_id, to=p.target))
    assert again.reused
    assert again.build_id == first.build_id
    assert pair.target_rack.requests.count("POST", "/apps/demo/builds/import") == 1


async def test_a_cut_export_is_never_imported(pair: Pair) -> None:
    build_id = seeded(pair.source_rack)
    pair.source_rack.faults.truncate("GET", f"/apps/demo/builds/{build_id}.tgz", 200)
    with pytest.raises(ConvoxCopyError) as raised:
        await pair.run(lambda p: p.source.builds.copy("demo", build_id, to=p.target))
    assert raised.value.rack == "source"
    assert pair.source_rack.url.split("//")[1] in str(raised.value)
    assert pair.target_rack.builds("demo") == []
    # the retry copies it once
    await pair.run(lambda p: p.source.builds.copy("demo", build_id, to=p.target))
    assert len(pair.target_rack.builds("demo")) == 1


@pytest.mark.parametrize("fault", ["502", "429", "drop"])
async def test_opening_the_export_is_retried_like_any_read(pair: Pair, fault: str) -> None:
    """A refusal or a dropped connection before the export's body began: retried, not fatal."""
    build_id = seeded(pair.source_rack)
    export = f"/apps/demo/builds/{build_id}.tgz"
    if fault == "drop":
        pair.source_rack.faults.drop("GET", export, stage="headers")
    else:
        pair.source_rack.faults.respond("GET", export, int(fault), retry_after=0.01)
    copied = await pair.run(lambda p: p.source.builds.copy("demo", build_id, to=p.target))
    assert [b["id"] for b in pair.target_rack.builds("demo")] == [copied.build_id]
    assert [f.fired for f in pair.source_rack.faults.faults] == [1]
    assert pair.source_rack.requests.count("GET", export) == 2
    assert pair.target_rack.requests.count("POST", "/apps/demo/builds/import") == 1


async def test_a_failed_import_names_the_target_rack(pair: Pair) -> None:
    build_id = seeded(pair.source_rack)
    pair.target_rack.faults.respond("POST", "/apps/demo/builds/import", 500, message="boom")
    with pytest.raises(ConvoxCopyError) as raised:
        await pair.run(lambda p: p.source.builds.copy("demo", build_id, to=p.target))
    assert raised.value.rack == "target"
    assert pair.target_rack.url.split("//")[1] in str(raised.value)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("same", "same app"),
        ("missing_target", "does not exist on the target rack"),
        ("slash", "cannot contain"),
        ("dots", "'..'"),
        ("running_build", "only a complete build"),
    ],
)
async def test_bad_input_is_refused_before_any_write(pair: Pair, case: str, expected: str) -> None:
    build_id = seeded(pair.source_rack)
    if case == "running_build":
        pair.source_rack.state.builds._records["demo"][build_id].status = "running"
    calls: dict[str, Callable[[Pair], Any]] = {
        "same": lambda p: p.source.builds.copy("demo", build_id, to=p.source),
        "missing_target": lambda p: p.source.builds.copy(
            "demo", build_id, to=p.target, target_app="nope"
        ),
        "slash": lambda p: p.source.builds.copy("demo", build_id, to=p.target, target_app="a/b"),
        "dots": lambda p: p.source.builds.copy("demo", "..", to=p.target),
        "running_build": lambda p: p.source.builds.copy("demo", build_id, to=p.target),
    }
    with pytest.raises(ConvoxInputError, match=expected):
        await pair.run(calls[case])
    for rack in (pair.source_rack, pair.target_rack):
        assert rack.requests.count("POST") == 0
    assert pair.target_rack.builds("demo") == []


async def test_clients_of_different_kinds_are_refused(convox_rack_factory: Any) -> None:
    source, target = convox_rack_factory(), convox_rack_factory()
    with ConvoxClient(source.url, source.password) as sync:
        other = AsyncConvoxClient(target.url, target.password)
        with pytest.raises(ConvoxInputError, match="same kind"):
            sync.builds.copy("demo", "BABCDEFGHIJ", to=other)
        await other.aclose()
