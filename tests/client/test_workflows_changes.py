"""The release-change reader on the fake driver: one rack, and a candidate on another rack."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from convox_provider.client.errors import ConvoxInputError
from convox_provider.client.models import App, Build, Release
from convox_provider.client.workflows.changes import ReleaseChange, ReleaseChangeWorkflows
from convox_provider.client.workflows.copy import copy_marker
from tests.client.test_workflows_copy import Side
from tests.client.workflow_fakes import api_error

OLD = "services:\n  web:\n    build: .\n"
NEW = "services:\n  web:\n    build: .\n  worker:\n    build: .\n"
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def script(
    rack: Side,
    release_id: str,
    build_id: str,
    *,
    env: str,
    manifest: str,
    created: datetime,
    description: str = "",
    git_sha: str = "",
) -> None:
    rack.on(
        "GET",
        f"/apps/demo/releases/{release_id}",
        Release(id=release_id, build=build_id, env=env, manifest=manifest, created=created),
    )
    rack.on(
        "GET",
        f"/apps/demo/builds/{build_id}",
        Build(
            id=build_id,
            description=description,
            git_sha=git_sha,
            manifest=manifest,
            status="complete",
            release=release_id,
            ended=created,
        ),
    )


@pytest.fixture
def production() -> Side:
    rack = Side("https://production")
    rack.on("GET", "/apps/demo", App(name="demo", status="running", release="RACTIVE"))
    script(rack, "RACTIVE", "BACTIVE", env="A=1\nB=2\nC=3", manifest=OLD, created=T0, git_sha="aaa")
    return rack


def change(rack: Side, release_id: str, **kwargs: Any) -> ReleaseChange:
    result: ReleaseChange = ReleaseChangeWorkflows(rack).change("demo", release_id, **kwargs)
    return result


def test_same_rack_env_keys_and_manifest_diff(production: Side) -> None:
    later = T0 + timedelta(hours=2)
    script(
        production,
        "RNEW",
        "BNEW",
        env="A=1\nB=v4lue-b2\nD=v4lue-d",
        manifest=NEW,
        created=later,
        description="build 0123456789 add worker",
        git_sha="0123456789abcdef",
    )
    found = change(production, "RNEW")
    assert (found.env_added, found.env_removed, found.env_changed) == (("D",), ("C",), ("B",))
    assert found.env_release == "RNEW"
    assert found.candidate.git_sha == "0123456789abcdef"
    assert found.candidate.build_description == "build 0123456789 add worker"
    assert found.active is not None
    assert found.active.build_id == "BACTIVE"
    assert "+  worker:\n" in found.manifest_diff
    assert found.manifest_diff.startswith("--- active RACTIVE\n+++ candidate RNEW\n")
    assert found.unchanged == ""
    assert not found.cross_rack
    assert found.age(found.active) == found.checked_at - T0
    assert "v4lue" not in repr(found)  # no env value in the model at all
    assert [sent.method for sent in production.sent] == ["GET"] * len(production.sent)


def test_the_active_release_is_unchanged(production: Side) -> None:
    found = change(production, "RACTIVE")
    assert found.unchanged == "app demo already runs release RACTIVE"
    assert found.manifest_diff == ""
    assert (found.env_added, found.env_removed, found.env_changed) == ((), (), ())


def test_a_candidate_older_than_the_active_release_is_refused(production: Side) -> None:
    script(production, "ROLD", "BOLD", env="", manifest=OLD, created=T0 - timedelta(days=1))
    with pytest.raises(ConvoxInputError, match="older than the active release RACTIVE"):
        change(production, "ROLD")


def test_missing_app_release_and_build_less_release_are_input_errors(production: Side) -> None:
    production.on(
        "GET", "/apps/demo/releases/RGONE", api_error(500, 'releases.convox.com "rgone" not found')
    )
    with pytest.raises(ConvoxInputError, match="candidate release RGONE of app demo does not"):
        change(production, "RGONE")
    production.on("GET", "/apps/demo/releases/RENV", Release(id="RENV", env="A=1"))
    with pytest.raises(ConvoxInputError, match="has no build"):
        change(production, "RENV")
    missing = Side("https://production")
    missing.on("GET", "/apps/demo", api_error(404, "app not found"))
    with pytest.raises(ConvoxInputError, match="app demo does not exist on rack"):
        change(missing, "RNEW")


def test_a_new_app_has_no_active_release(production: Side) -> None:
    fresh = Side("https://production")
    fresh.on("GET", "/apps/demo", App(name="demo", status="running", release=""))
    script(fresh, "RNEW", "BNEW", env="A=1", manifest=NEW, created=T0)
    found = change(fresh, "RNEW")
    assert found.active is None
    assert found.env_added == ("A",)
    assert found.manifest_diff.startswith("--- no release\n")


def test_a_candidate_on_another_rack_runs_with_the_targets_newest_env(production: Side) -> None:
    staging = Side("https://staging")
    script(staging, "RSTAGE", "BSTAGE", env="A=staging-only", manifest=NEW, created=T0)
    production.on("GET", "/apps/demo/releases", [Release(id="RNEWEST", env="A=1\nB=2\nC=3\nE=5")])
    production.on("GET", "/apps/demo/releases/RNEWEST", Release(id="RNEWEST", env="A=1\nE=5"))
    found = change(production, "RSTAGE", source=_client(staging))
    assert found.cross_rack
    assert found.candidate.rack == "https://staging"
    assert found.rack == "https://production"
    assert found.env_release == "RNEWEST"
    # the fresh GET of the newest release counts, not the list entry; staging's env never does
    assert (found.env_added, found.env_removed, found.env_changed) == (("E",), ("B", "C"), ())
    assert staging.keys == [
        ("GET", "/apps/demo/releases/RSTAGE"),
        ("GET", "/apps/demo/builds/BSTAGE"),
    ]


def test_a_copy_already_running_on_the_target_is_unchanged() -> None:
    production, staging = Side("https://production"), Side("https://staging")
    script(staging, "RSTAGE", "BSTAGE", env="", manifest=NEW, created=T0)
    marker = copy_marker("https://staging|", "demo", "BSTAGE")
    production.on("GET", "/apps/demo", App(name="demo", status="running", release="RCOPY"))
    script(
        production, "RCOPY", "BCOPY", env="A=1", manifest=NEW, created=T0, description=f"[{marker}]"
    )
    production.on("GET", "/apps/demo/releases", [Release(id="RCOPY")])
    production.on("GET", "/apps/demo/releases/RCOPY", Release(id="RCOPY", build="BCOPY", env="A=1"))
    found = change(production, "RSTAGE", source=_client(staging))
    assert "already runs release RCOPY, a copy of build BSTAGE" in found.unchanged


def test_source_must_be_a_client() -> None:
    with pytest.raises(ConvoxInputError, match="source= must be the client"):
        change(Side("https://production"), "R1", source=object())


class _Client:
    def __init__(self, driver: Side) -> None:
        self.builds = self.releases = ReleaseChangeWorkflows(driver)


def _client(driver: Side) -> Any:
    return _Client(driver)


def test_the_fingerprint_tells_a_change_that_moved(production: Side) -> None:
    script(production, "RNEW", "BNEW", env="A=1\nB=2\nC=3", manifest=NEW, created=T0)
    first = change(production, "RNEW")
    again = change(production, "RNEW")
    assert again.checked_at > first.checked_at
    assert again.differs_from(first.fingerprint) == ""  # the time read is not part of it
    moved = Side("https://production")
    moved.on("GET", "/apps/demo", App(name="demo", status="running", release="RACTIVE"))
    script(moved, "RACTIVE", "BACTIVE", env="A=1\nB=2", manifest=OLD, created=T0, git_sha="aaa")
    script(moved, "RNEW", "BNEW", env="A=1\nB=2\nC=3", manifest=NEW, created=T0)
    later = change(moved, "RNEW")
    assert later.differs_from(first.fingerprint) == (
        "app demo on rack https://production now runs RACTIVE, and promoting release RNEW would"
        " run the environment of release RNEW (keys added ['C'])"
    )
    assert len(first.fingerprint) == 32
