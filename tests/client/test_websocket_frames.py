"""The rack's stream format, decoded without sockets (docs/rack-api.md §6.3-§6.6)."""

from __future__ import annotations

import pytest
from websockets.frames import Opcode

from convox_provider.client._frames import EXIT_MARKER, LineDecoder, StreamDecoder
from convox_provider.client.errors import ConvoxConnectionError, ConvoxStreamError

TEXT, BINARY, CONT, PING = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PING


def decode(
    frames: list[tuple[Opcode, bytes] | tuple[Opcode, bytes, bool]], *, exit_code: bool = False
):
    decoder = StreamDecoder(exit_code=exit_code)
    out = b""
    for frame in frames:
        out += decoder.feed(*frame)
    return decoder, out


def test_text_frames_are_raw_bytes_until_the_empty_binary_frame() -> None:
    decoder, out = decode([(TEXT, b"line one\nli"), (TEXT, b"ne two\n"), (BINARY, b"")])
    assert out == b"line one\nline two\n"
    assert decoder.done
    assert decoder.received == len(out)
    decoder.check()


def test_invalid_utf8_and_split_characters_pass_through_untouched() -> None:
    snowman = "☃".encode()
    _, out = decode(
        [(TEXT, b"\xff\xfe binary " + snowman[:1]), (TEXT, snowman[1:] + b"\n"), (BINARY, b"")]
    )
    assert out == b"\xff\xfe binary " + snowman + b"\n"


def test_empty_text_frame_is_output_not_the_end() -> None:
    decoder, out = decode([(TEXT, b"a"), (TEXT, b""), (TEXT, b"b")])
    assert out == b"ab"
    assert not decoder.done
    decoder.feed(BINARY, b"")
    assert decoder.done


def test_frames_after_the_end_are_ignored() -> None:
    _, out = decode([(TEXT, b"a"), (BINARY, b""), (TEXT, b"late")])
    assert out == b"a"


def test_error_frame_last_before_the_end_is_the_servers_error() -> None:
    decoder, out = decode([(TEXT, b"output\n"), (TEXT, b"ERROR: app not found\n"), (BINARY, b"")])
    assert out == b"output\n"
    assert decoder.error == "app not found"
    with pytest.raises(ConvoxStreamError, match=r"^app not found$"):
        decoder.check()


def test_error_frame_followed_by_more_output_is_ordinary_output() -> None:
    frames = [(TEXT, b"ERROR: something in the app log\n"), (TEXT, b"more\n"), (BINARY, b"")]
    decoder, out = decode(frames)
    assert out == b"ERROR: something in the app log\nmore\n"
    assert decoder.error is None
    decoder.check()


def test_error_frame_is_held_back_until_the_next_frame_decides() -> None:
    decoder = StreamDecoder()
    assert decoder.feed(TEXT, b"ERROR: maybe\n") == b""
    assert decoder.feed(TEXT, b"x") == b"ERROR: maybe\nx"


def test_error_only_counts_at_the_start_of_a_frame() -> None:
    decoder, out = decode([(TEXT, b"line\nERROR: not a frame start\n"), (BINARY, b"")])
    assert out == b"line\nERROR: not a frame start\n"
    assert decoder.error is None


def test_fragmented_error_message_is_recognised() -> None:
    decoder, out = decode(
        [(TEXT, b"ERR", False), (CONT, b"OR: denied", False), (CONT, b"\n", True)]
    )
    assert out == b""
    decoder.feed(BINARY, b"")
    assert decoder.error == "denied"


def test_fragmented_message_that_is_not_an_error_is_released() -> None:
    _, out = decode([(TEXT, b"ERR", False), (CONT, b"ands done", False), (CONT, b"!\n", True)])
    assert out == b"ERRands done!\n"


def test_control_frames_carry_no_output() -> None:
    _, out = decode([(TEXT, b"a"), (PING, b"p"), (BINARY, b"")])
    assert out == b"a"


def test_exit_code_marker_in_the_middle_of_a_chunk() -> None:
    decoder, out = decode(
        [(TEXT, b"hello\n" + EXIT_MARKER + b"3\n"), (BINARY, b"")], exit_code=True
    )
    assert out == b"hello\n"
    assert decoder.exit_code == 3
    decoder.check()


def test_exit_code_marker_split_across_frames() -> None:
    frames = [
        (TEXT, b"out" + EXIT_MARKER[:5]),
        (TEXT, EXIT_MARKER[5:20]),
        (TEXT, EXIT_MARKER[20:] + b"12"),
        (TEXT, b"7\n"),
        (BINARY, b""),
    ]
    decoder, out = decode(frames, exit_code=True)
    assert out == b"out"
    assert decoder.exit_code == 127


def test_a_marker_prefix_that_does_not_complete_is_output() -> None:
    decoder, out = decode(
        [(TEXT, b"x" + EXIT_MARKER[:10]), (TEXT, b"y"), (BINARY, b"")], exit_code=True
    )
    assert out == b"x" + EXIT_MARKER[:10] + b"y"
    assert decoder.exit_code is None
    _, out2 = decode([(TEXT, b"x" + EXIT_MARKER[:10]), (BINARY, b"")], exit_code=True)
    assert out2 == b"x" + EXIT_MARKER[:10]


def test_marker_is_not_parsed_in_log_streams() -> None:
    decoder, out = decode([(TEXT, EXIT_MARKER + b"3\n"), (BINARY, b"")])
    assert out == EXIT_MARKER + b"3\n"
    assert decoder.exit_code is None


def test_marker_then_error_frame_means_error_even_with_code_zero() -> None:
    frames = [(TEXT, EXIT_MARKER + b"0\n"), (TEXT, b"ERROR: exec failed: no such container\n")]
    decoder, out = decode([*frames, (BINARY, b"")], exit_code=True)
    assert out == b""
    assert decoder.exit_code == 0
    with pytest.raises(ConvoxStreamError, match="no such container"):
        decoder.check()


def test_marker_without_trailing_newline_at_the_end() -> None:
    decoder, _ = decode([(TEXT, EXIT_MARKER + b"42"), (BINARY, b"")], exit_code=True)
    assert decoder.exit_code == 42


def test_truncated_stream_is_a_connection_error() -> None:
    decoder, out = decode([(TEXT, b"partial")])
    assert out == b"partial"
    with pytest.raises(ConvoxConnectionError, match="stream ended without its end marker"):
        decoder.connection_lost()


def test_closing_after_the_end_frame_is_fine() -> None:
    decoder, _ = decode([(TEXT, b"x"), (BINARY, b"")])
    decoder.connection_lost()


def test_lines_join_split_lines_and_characters() -> None:
    lines = LineDecoder()
    euro = "€".encode()
    assert lines.feed(b"first li") == []
    assert lines.feed(b"ne\r\nsecond " + euro[:2]) == ["first line"]
    assert lines.feed(euro[2:] + b"\nthird") == ["second €"]
    assert lines.flush() == ["third"]
    assert lines.flush() == []


def test_lines_replace_invalid_bytes() -> None:
    lines = LineDecoder()
    assert lines.feed(b"bad \xff byte\n") == ["bad \ufffd byte"]
    assert lines.feed(b"\xe2\x82") == []
    assert lines.flush() == ["\ufffd"]
