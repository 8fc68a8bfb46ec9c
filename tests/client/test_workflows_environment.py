"""Environment set/unset, driven without sockets (docs/rack-api.md §4.4, §7.3, §8 items 5-6)."""

from __future__ import annotations

from typing import Any

import pytest
from workflow_fakes import FakeRack, Sent

from convox_provider.client.errors import ConvoxInputError, ConvoxWorkflowError
from convox_provider.client.models import App, Release
from convox_provider.client.workflows import EnvironmentWorkflows
from convox_provider.client.workflows.events import EnvironmentConflict, ReleaseCreated

APP = "/apps/myapp"
RELEASES = f"{APP}/releases"
SECRET = "s3cr3t-value"


@pytest.fixture
def rack() -> FakeRack:
    return FakeRack()


def env(rack: FakeRack) -> EnvironmentWorkflows[Any]:
    return EnvironmentWorkflows(rack)  # type: ignore[arg-type]


def created(release_id: str) -> Any:
    """An answer to release create echoing the env that was sent."""

    def answer(sent: Sent) -> Release:
        return Release(id=release_id, build="B1", env=sent.form.get("env", ""))

    return answer


def newest(rack: FakeRack, release: Release) -> None:
    rack.on("GET", RELEASES, [release])
    rack.on("GET", f"{RELEASES}/{release.id}", release)


class TestValidation:
    @pytest.mark.parametrize(
        ("changes", "unset"),
        [
            ({"": "x"}, ()),
            ({"A=B": "x"}, ()),
            ({"A B": "x"}, ()),
            ({"A\tB": "x"}, ()),
            ({"A": "line\nbreak"}, ()),
            ({"A": "x" * 70_000}, ()),
            ({"A": "1"}, ("A",)),
            ({}, ()),
            (None, ("BAD KEY",)),
        ],
    )
    def test_nothing_is_sent_for_an_invalid_change(
        self, rack: FakeRack, changes: Any, unset: Any
    ) -> None:
        with pytest.raises(ConvoxInputError) as info:
            env(rack).set("myapp", changes, unset=unset, promote=False)
        assert rack.sent == []
        assert "line\nbreak" not in str(info.value)

    def test_values_never_appear_in_errors(self, rack: FakeRack) -> None:
        with pytest.raises(ConvoxInputError) as info:
            env(rack).set("myapp", {"GOOD": SECRET, "BAD": SECRET + "\n"}, promote=False)
        assert SECRET not in str(info.value)
        assert "BAD" in str(info.value)

    def test_unset_takes_each_str_as_one_key(self, rack: FakeRack) -> None:
        # The official SDK's form, unset(app, *keys): "BAD KEY" is one (invalid) key, not letters
        with pytest.raises(ConvoxInputError, match="BAD KEY"):
            env(rack).unset("myapp", "GOOD", "BAD KEY", promote=False)
        assert rack.sent == []


class TestSet:
    def test_reads_the_newest_release_and_pins_it_as_parent(self, rack: FakeRack) -> None:
        newest(rack, Release(id="R5", build="B5", env="A=1\nB=2"))
        rack.on("POST", RELEASES, created("R6"))
        rack.on("GET", RELEASES, [Release(id="R6"), Release(id="R5")])

        result = env(rack).set(
            "myapp", {"B": SECRET, "C": "3"}, unset=["A"], on_event=rack.event, promote=False
        )

        assert result.id == "R6"
        reads = rack.requests("GET", RELEASES)
        assert reads[0].query == {"limit": "1"}  # newest, not the active release (§8 item 5)
        create = rack.requests("POST", RELEASES)[0]
        assert create.form == {"env": f"B={SECRET}\nC=3", "parent-release": "R5"}
        assert "build" not in create.form
        events = rack.events_of(ReleaseCreated)
        assert [e.release_id for e in events] == ["R6"]
        assert SECRET not in repr(rack.events)

    def test_explicit_release_is_the_base(self, rack: FakeRack) -> None:
        rack.on("GET", f"{RELEASES}/R2", Release(id="R2", build="B2", env="A=1"))
        rack.on("POST", RELEASES, created("R7"))

        assert env(rack).set("myapp", {"Z": "9"}, release="R2", promote=False).id == "R7"

        assert rack.requests("POST", RELEASES)[0].form == {
            "env": "A=1\nZ=9",
            "parent-release": "R2",
        }
        # no listing: with an explicit base there is nothing to merge
        assert rack.requests("GET", RELEASES) == []

    def test_an_app_without_releases_starts_from_an_empty_env(self, rack: FakeRack) -> None:
        rack.on("GET", RELEASES, [], [Release(id="R1")])
        rack.on("POST", RELEASES, created("R1"))

        assert env(rack).set("myapp", {"A": "1"}, promote=False).id == "R1"
        assert rack.requests("POST", RELEASES)[0].form == {"env": "A=1"}

    def test_a_change_already_in_the_newest_release_creates_nothing(self, rack: FakeRack) -> None:
        newest(rack, Release(id="R5", env="A=1\nB=2"))
        assert env(rack).set("myapp", {"A": "1"}, unset=["C"], promote=False).id == "R5"
        assert rack.requests("POST") == []

    def test_replace_reads_nothing_and_writes_exactly_the_changes(self, rack: FakeRack) -> None:
        rack.on("POST", RELEASES, created("R9"))

        assert env(rack).set("myapp", {"ONLY": "1"}, replace=True, promote=False).id == "R9"

        assert rack.keys == [("POST", RELEASES)]
        assert rack.sent[0].form == {"env": "ONLY=1"}

    def test_replace_with_nothing_empties_the_environment(self, rack: FakeRack) -> None:
        rack.on("POST", RELEASES, created("R9"))
        env(rack).set("myapp", {}, replace=True, promote=False)
        assert rack.sent[0].form == {"env": ""}

    def test_unset(self, rack: FakeRack) -> None:
        newest(rack, Release(id="R5", env="A=1\nB=2"))
        rack.on("POST", RELEASES, created("R6"))
        rack.on("GET", RELEASES, [Release(id="R6"), Release(id="R5")])

        assert env(rack).unset("myapp", ["A"], promote=False).id == "R6"
        assert rack.requests("POST", RELEASES)[0].form["env"] == "B=2"

    def test_promote_runs_the_promote_flow_on_the_result(self, rack: FakeRack) -> None:
        newest(rack, Release(id="R5", env="A=1"))
        rack.on("POST", RELEASES, created("R6"))
        rack.on("GET", RELEASES, [Release(id="R6"), Release(id="R5")])
        rack.on("GET", APP, App(status="running", release="R6"))
        rack.on("POST", f"{RELEASES}/R6/promote", None)
        rack.on("GET", f"{APP}/processes", [])
        rack.on("GET", f"{APP}/services", [])

        assert env(rack).set("myapp", {"A": "2"}, promote=True, initial_delay=0).id == "R6"
        assert ("POST", f"{RELEASES}/R6/promote") in rack.keys


class TestConcurrentWriter:
    def test_a_writer_that_overtook_us_gets_our_change_merged_on_top(self, rack: FakeRack) -> None:
        # We read R5; meanwhile another writer created R6 (from R5, so without our change).
        base = Release(id="R5", build="B5", env="A=1")
        theirs = Release(id="R6", build="B5", env="A=1\nTHEIRS=x")
        rack.on("GET", RELEASES, [base])  # the read: newest is R5
        rack.on("GET", f"{RELEASES}/R5", base)
        rack.on("POST", RELEASES, created("R7"), created("R8"))
        rack.on("GET", f"{RELEASES}/R6", theirs)
        listings = iter(
            [
                [theirs, Release(id="R7"), base],  # R6 is newest (created after ours)
                [Release(id="R8"), theirs, Release(id="R7"), base],
            ]
        )

        def listing(sent: Sent) -> list[Release]:
            if sent.query.get("limit") == "1":
                return [base]
            return next(listings)

        rack._answers[("GET", RELEASES)] = [listing]

        result = env(rack).set("myapp", {"MINE": "y"}, on_event=rack.event, promote=False)

        assert result.id == "R8"
        creates = rack.requests("POST", RELEASES)
        assert creates[0].form == {"env": "A=1\nMINE=y", "parent-release": "R5"}
        assert creates[1].form == {"env": "A=1\nMINE=y\nTHEIRS=x", "parent-release": "R6"}
        conflict = rack.events_of(EnvironmentConflict)
        assert conflict == [EnvironmentConflict("myapp", 1, "R7", "R6", ("MINE",))]

    def test_a_later_writer_that_built_on_our_release_needs_no_merge(self, rack: FakeRack) -> None:
        base = Release(id="R5", env="A=1")
        later = Release(id="R7", env="A=1\nMINE=y\nLATER=z")

        def listing(sent: Sent) -> list[Release]:
            if sent.query.get("limit") == "1":
                return [base]
            return [later, Release(id="R6"), base]

        rack.on("GET", RELEASES, listing)
        rack.on("GET", f"{RELEASES}/R5", base)
        rack.on("GET", f"{RELEASES}/R7", later)
        rack.on("POST", RELEASES, created("R6"))

        assert env(rack).set("myapp", {"MINE": "y"}, promote=False).id == "R7"
        assert len(rack.requests("POST", RELEASES)) == 1

    def test_a_writer_we_overwrote_gets_our_change_merged_on_top_of_theirs(
        self, rack: FakeRack
    ) -> None:
        # We read R5; another writer (maybe without this check) created R6; ours, R7, forked
        # from R5 by parent-release, is newest and lacks R6's change: apply ours on R6.
        base = Release(id="R5", build="B5", env="A=1")
        theirs = Release(id="R6", build="B6", env="A=1\nTHEIRS=x")
        listings = iter(
            [
                [Release(id="R7"), theirs, base],
                [Release(id="R8"), Release(id="R7"), theirs, base],
            ]
        )

        def listing(sent: Sent) -> list[Release]:
            return [base] if sent.query.get("limit") == "1" else next(listings)

        rack.on("GET", RELEASES, listing)
        rack.on("GET", f"{RELEASES}/R5", base)
        rack.on("GET", f"{RELEASES}/R6", theirs)
        rack.on("POST", RELEASES, created("R7"), created("R8"))

        assert env(rack).set("myapp", {"MINE": "y"}, promote=False).id == "R8"
        second = rack.requests("POST", RELEASES)[1]
        assert second.form == {"env": "A=1\nMINE=y\nTHEIRS=x", "parent-release": "R6"}

    def test_an_in_between_release_we_already_contain_needs_no_merge(self, rack: FakeRack) -> None:
        base = Release(id="R5", build="B1", env="A=1")
        same = Release(id="R6", build="B1", env="A=1")  # e.g. a copy, nothing of its own

        def listing(sent: Sent) -> list[Release]:
            return [base] if sent.query.get("limit") == "1" else [Release(id="R7"), same, base]

        rack.on("GET", RELEASES, listing)
        rack.on("GET", f"{RELEASES}/R5", base)
        rack.on("GET", f"{RELEASES}/R6", same)
        rack.on("POST", RELEASES, created("R7"))

        assert env(rack).set("myapp", {"MINE": "y"}, promote=False).id == "R7"
        assert len(rack.requests("POST", RELEASES)) == 1

    def test_gives_up_after_max_attempts(self, rack: FakeRack) -> None:
        base = Release(id="R5", env="A=1")
        counter = iter(range(100))

        def listing(sent: Sent) -> list[Release]:
            if sent.query.get("limit") == "1":
                return [base]
            return [Release(id=f"X{next(counter)}", env="A=other"), base]

        def newest_other(sent: Sent) -> Release:
            return Release(id=sent.path.rsplit("/", 1)[1], env="A=other")

        rack.on("GET", RELEASES, listing)
        rack.on("GET", f"{RELEASES}/R5", base)
        for number in range(10):
            rack.on("GET", f"{RELEASES}/X{number}", newest_other)
        rack.on("POST", RELEASES, created("RN"))

        with pytest.raises(ConvoxWorkflowError, match="3 attempts"):
            env(rack).set("myapp", {"A": "mine"}, max_attempts=3, promote=False)
        assert len(rack.requests("POST", RELEASES)) == 3
