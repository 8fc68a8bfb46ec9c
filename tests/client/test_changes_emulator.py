"""What a promote would change, read from emulated racks over real HTTP, on both clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from convox_provider.client.errors import ConvoxInputError
from convox_provider.client.workflows.changes import ReleaseChange
from tests.client.test_copy_emulator import MANIFEST, Pair

WEB_ONLY = "services:\n  web:\n    build: .\n    port: 3000\n"
SECRET_VALUES = ("s3cr3t-staging", "s3cr3t-prod", "s3cr3t-new")


@pytest.fixture(params=["sync", "async"])
async def racks(request: pytest.FixtureRequest, convox_rack_factory: Any) -> AsyncIterator[Pair]:
    staging, production = convox_rack_factory(), convox_rack_factory()
    for rack, secret in ((staging, "s3cr3t-staging"), (production, "s3cr3t-prod")):
        rack.create_app("demo")
        rack.add_release("demo", WEB_ONLY, env={"TOKEN": secret, "OLD": secret}, description="v1")
    made = Pair(str(request.param), staging, production)
    yield made
    await made.close()


async def test_a_new_release_on_the_same_rack(racks: Pair) -> None:
    build, release = racks.source_rack.add_release(
        "demo",
        MANIFEST,
        env={"TOKEN": "s3cr3t-new", "NEW": "s3cr3t-new"},
        description="build 0123456789 worker",
        promote=False,
    )
    found: ReleaseChange = await racks.run(
        lambda p: p.source.releases.change("demo", release["id"])
    )
    assert found.candidate.build_id == build["id"]
    assert found.candidate.build_description == "build 0123456789 worker"
    assert found.active is not None
    assert found.active.release_id == racks.source_rack.app("demo")["release"]
    assert (found.env_added, found.env_removed, found.env_changed) == (
        ("NEW",),
        ("OLD",),
        ("TOKEN",),
    )
    assert "+  worker:\n+    build: .\n" in found.manifest_diff
    assert not any(value in repr(found) for value in SECRET_VALUES)


async def test_a_staging_release_against_production_then_its_copy(racks: Pair) -> None:
    build, release = racks.source_rack.add_release(
        "demo", MANIFEST, description="v2", promote=False
    )
    before: ReleaseChange = await racks.run(
        lambda p: p.target.releases.change("demo", release["id"], source=p.source)
    )
    assert before.cross_rack
    assert before.env_release == racks.target_rack.releases("demo")[0]["id"]
    assert (before.env_added, before.env_removed, before.env_changed) == ((), (), ())
    assert "+  worker:" in before.manifest_diff
    assert before.unchanged == ""
    copied = await racks.run(lambda p: p.source.builds.copy("demo", build["id"], to=p.target))
    await racks.run(
        lambda p: p.target.releases.promote(
            "demo", copied.release_id, initial_delay=0, poll_interval=0.05
        )
    )
    after: ReleaseChange = await racks.run(
        lambda p: p.target.releases.change("demo", release["id"], source=p.source)
    )
    assert after.unchanged.endswith(
        f"already runs release {copied.release_id}, a copy of build {build['id']} of the"
        f" candidate release {release['id']}"
    )
    assert after.manifest_diff == ""
    # the copy on production itself, given by its release id there
    there: ReleaseChange = await racks.run(
        lambda p: p.target.releases.change("demo", copied.release_id)
    )
    assert there.unchanged == f"app demo already runs release {copied.release_id}"


async def test_bad_input_reads_only(racks: Pair) -> None:
    racks.source_rack.requests.clear()
    with pytest.raises(ConvoxInputError, match="candidate release RNOSUCH of app demo does not"):
        await racks.run(lambda p: p.source.releases.change("demo", "RNOSUCH"))
    with pytest.raises(ConvoxInputError, match="app gone does not exist"):
        await racks.run(lambda p: p.source.releases.change("gone", "RNOSUCH"))
    with pytest.raises(ConvoxInputError, match="source= must be the client of the candidate"):
        await racks.run(lambda p: p.source.releases.change("demo", "R1", source="staging"))
    assert racks.source_rack.requests.count("GET") == len(racks.source_rack.requests)
