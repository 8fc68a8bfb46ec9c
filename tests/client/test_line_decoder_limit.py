"""LineDecoder's bound on an unfinished line (what the triggers' build-output logger needs)."""

from __future__ import annotations

from convox_provider.client._frames import LineDecoder


def test_an_over_long_line_comes_in_pieces() -> None:
    lines = LineDecoder(max_line_chars=4)

    assert lines.feed(b"abcdefghij") == ["abcd", "efgh"]
    assert lines.feed(b"k\nxy") == ["ijk"]
    assert lines.flush() == ["xy"]


def test_a_line_of_exactly_the_limit_is_held_for_its_ending() -> None:
    lines = LineDecoder(max_line_chars=4)

    assert lines.feed(b"abcd") == []
    assert lines.feed(b"\r\n") == ["abcd"]


def test_pieces_never_split_a_character() -> None:
    lines = LineDecoder(max_line_chars=2)
    data = "aé€b".encode()

    out = [piece for i in range(len(data)) for piece in lines.feed(data[i : i + 1])]

    assert out == ["aé"]
    assert lines.flush() == ["€b"]


def test_without_a_limit_a_partial_line_is_held_whole() -> None:
    lines = LineDecoder()

    assert lines.feed(b"x" * 100_000) == []
    assert lines.flush() == ["x" * 100_000]
