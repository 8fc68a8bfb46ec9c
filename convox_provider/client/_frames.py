"""The rack's WebSocket stream format, without sockets (docs/rack-api.md §6.3-§6.6).

:class:`StreamDecoder` turns the frames of a log, build-log or exec stream into output bytes, an
exit code, or an error; :class:`LineDecoder` turns output bytes into text lines. Both are fed by
the sync and the async I/O loops in :mod:`convox_provider.client.websocket` alike.
"""

from __future__ import annotations

import codecs

from websockets.frames import Opcode

from convox_provider.client.errors import ConvoxConnectionError, ConvoxStreamError

__all__ = ["EXIT_MARKER", "LineDecoder", "StreamDecoder"]

EXIT_MARKER = b"F1E49A85-0AD7-4AEF-A618-C249C6E6568D:"
"""Written by the rack after an exec's output, followed by the exit code and ``\\n`` (§6.6)."""

_ERROR = b"ERROR: "


class StreamDecoder:
    """Decode one stream's frames; ``feed`` returns the output each frame releases.

    Rules (docs/rack-api.md §6.3, §6.5): text frames carry raw bytes, never decoded or validated;
    a binary frame (the rack sends an empty one) ends the stream; a text message starting with
    ``ERROR: `` is the server's error only when it is the last text message before that end
    frame, so such a message is held back until the next frame decides. With ``exit_code``
    (exec streams) the output is searched for :data:`EXIT_MARKER`, also across frame
    boundaries; output before it is data and the integer after it is the exit code. An error
    wins over an exit code, even 0 (the rack's "exec provider error" sequence).
    """

    def __init__(self, *, exit_code: bool = False) -> None:
        self._exec = exit_code
        self._command = exit_code  # an exec stream: opening it again runs the command again
        self.done = False
        self.exit_code: int | None = None
        self.error: str | None = None
        self.received = 0  # output bytes released, markers and the error excluded
        self._held: bytearray | None = None  # a text message that may be the server's error
        self._held_complete = False
        self._in_text = False  # inside a fragmented text message
        self._tail = b""  # exec: bytes that may be the start of a marker split across frames
        self._code: bytearray | None = None  # exec: digits after the marker, before "\n"

    def feed(self, opcode: Opcode, data: bytes, fin: bool = True) -> bytes:
        """Take one data frame (text, binary or continuation); return output released by it."""
        if (
            opcode is Opcode.TEXT
            and fin
            and self._held is None
            and not self._exec
            and not data.startswith(_ERROR)
            and not self.done
        ):  # the common case, a complete text frame of a log stream
            self.received += len(data)
            return data
        out = self._feed(opcode, data, fin)
        self.received += len(out)
        return out

    def _feed(self, opcode: Opcode, data: bytes, fin: bool) -> bytes:
        if self.done:
            return b""
        if opcode is Opcode.BINARY or (opcode is Opcode.CONT and not self._in_text):
            return self._end()
        if opcode is Opcode.TEXT:
            out = self._release_held()
            self._in_text = not fin
            if data.startswith(_ERROR) or (_ERROR.startswith(data) and not fin):
                self._held = bytearray(data)
                self._held_complete = fin
                return out
            return out + self._output(data)
        if opcode is Opcode.CONT:
            self._in_text = not fin
            if self._held is not None and not self._held_complete:
                self._held += data
                self._held_complete = fin
                if len(self._held) >= len(_ERROR) and not self._held.startswith(_ERROR):
                    held, self._held = bytes(self._held), None
                    return self._output(held)
                return b""
            return self._output(data)
        return b""  # control frames carry no output

    def _end(self) -> bytes:
        self.done = True
        out = b""
        if self._held is not None:
            held, self._held = bytes(self._held), None
            if held.startswith(_ERROR):
                self.error = held[len(_ERROR) :].rstrip(b"\r\n").decode("utf-8", "replace")
            else:
                out = self._output(held)
        out += self._tail
        self._tail = b""
        if self._code is not None:
            self._parse_code(bytes(self._code))
        return out

    def _release_held(self) -> bytes:
        if self._held is None:
            return b""
        held, self._held = bytes(self._held), None
        return self._output(held)

    def _output(self, data: bytes) -> bytes:
        if not self._exec:
            return data
        if self._code is not None:
            return self._after_marker(data)
        buf = self._tail + data if self._tail else data
        self._tail = b""
        index = buf.find(EXIT_MARKER)
        if index >= 0:
            self._code = bytearray()
            return buf[:index] + self._after_marker(buf[index + len(EXIT_MARKER) :])
        keep = _marker_prefix_length(buf)
        if keep:
            self._tail = buf[-keep:]
            return buf[:-keep]
        return buf

    def _after_marker(self, data: bytes) -> bytes:
        assert self._code is not None
        newline = data.find(b"\n")
        if newline < 0:
            self._code += data
            return b""
        self._code += data[:newline]
        self._parse_code(bytes(self._code))
        self._code = None
        self._exec = False  # one marker per stream: what follows is plain output
        return data[newline + 1 :]

    def _parse_code(self, digits: bytes) -> None:
        try:
            self.exit_code = int(digits.strip())
        except ValueError:
            self.error = f"unreadable exit code after the exit-code marker: {digits[:40]!r}"

    def connection_lost(self) -> None:
        """The connection closed: an error unless the end frame had already arrived."""
        if not self.done and self._command:
            raise ConvoxConnectionError(
                "the stream ended without its end marker (the connection was cut): the command "
                "may still be running or may have ended, and its exit code is lost. It was not "
                "run again: check its effect before repeating it"
            )
        if not self.done:
            raise ConvoxConnectionError(
                "the stream ended without its end marker (the connection was cut); "
                "open it again to continue"
            )

    def check(self) -> None:
        """Raise :class:`ConvoxStreamError` if the stream ended with the server's error."""
        if self.error is not None:
            raise ConvoxStreamError(self.error)


def _marker_prefix_length(buf: bytes) -> int:
    """Length of the longest suffix of ``buf`` that is a proper prefix of the marker."""
    first = EXIT_MARKER[0]
    start = max(0, len(buf) - len(EXIT_MARKER) + 1)
    index = buf.find(first, start)
    while index >= 0:
        if EXIT_MARKER.startswith(buf[index:]):
            return len(buf) - index
        index = buf.find(first, index + 1)
    return 0


class LineDecoder:
    """Split output bytes into text lines, across frame boundaries.

    UTF-8 characters split between chunks are joined; invalid bytes become U+FFFD. The line
    ending (``\\n``, or ``\\r\\n`` from a TTY) is removed. With ``max_line_chars``, no more
    than that many characters of an unfinished line are held: beyond that, it is returned in
    pieces of that length (output that never sends a line break cannot grow without bound).
    """

    def __init__(self, *, max_line_chars: int | None = None) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""
        self._limit = max_line_chars

    def feed(self, data: bytes) -> list[str]:
        """Return the lines that ``data`` completes (and pieces of an over-long line)."""
        text = self._partial + self._decoder.decode(data)
        lines = text.split("\n")
        rest = lines.pop()
        if self._limit is not None:
            while len(rest) > self._limit:
                lines.append(rest[: self._limit])
                rest = rest[self._limit :]
        self._partial = rest
        return [line[:-1] if line.endswith("\r") else line for line in lines]

    def flush(self) -> list[str]:
        """Return the last line if the output did not end with a line break."""
        rest = self._partial + self._decoder.decode(b"", final=True)
        self._partial = ""
        if not rest:
            return []
        return [rest[:-1] if rest.endswith("\r") else rest]
