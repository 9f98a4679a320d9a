"""Bytes in, frames out: an incremental STOMP frame parser with a bounded receive buffer.

Like h11's receive buffer, every search resumes where the previous one stopped, so a frame that
arrives one byte at a time costs O(n), not O(n^2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import islice
from typing import Final, Literal

from ._errors import FRAME_TOO_LARGE, LocalProtocolError, RemoteProtocolError
from ._escape import UNESCAPERS, Escaper
from ._frame import (
    CLIENT_COMMANDS,
    HEARTBEAT,
    RAW_HEADER_COMMANDS,
    VERSIONS,
    Frame,
    Heartbeat,
    is_valid_command,
)

__all__ = ["FrameParser"]

# The blank line that ends the headers, CR optional on both lines (STOMP 1.2 "Augmented BNF").
_HEAD_END: Final = re.compile(rb"\r?\n\r?\n")
# Its longest form is 4 bytes: a failed search resumes 3 bytes before the end.
_HEAD_END_OVERLAP: Final = 3
_LEADING_EOLS: Final = re.compile(rb"(?:\r?\n)*")
# int() of a 4300+ digit string raises ValueError; anything this long is over the limit anyway.
_MAX_LENGTH_DIGITS: Final = 18


@dataclass(init=False, slots=True, unsafe_hash=True)
class _Head:
    """A frame's command and headers, parsed before its body has all arrived. Its
    ``__init__`` written out, since every message makes one (see ``ieum_chat._build``)."""

    command: Final[str]
    headers: Final[tuple[tuple[str, str], ...]]
    body_start: Final[int]
    content_length: Final[int | None]

    def __init__(
        self,
        command: str,
        headers: tuple[tuple[str, str], ...],
        body_start: int,
        content_length: int | None,
    ) -> None:
        self.command = command
        self.headers = headers
        self.body_start = body_start
        self.content_length = content_length


class FrameParser:
    """Turns a STOMP byte stream into `Frame`s and `HEARTBEAT`s.

    Call `receive_data()` with whatever arrived, then `next_frame()` until it returns None. Once
    a RemoteProtocolError was raised the parser is dead: every later call raises it again.
    """

    __slots__ = (
        "_buffer",
        "_error",
        "_head",
        "_max_frame_size",
        "_max_headers",
        "_scan",
        "_unescape",
        "_version",
    )

    def __init__(
        self, *, max_frame_size: int = 65536, max_headers: int = 64, version: str = "1.2"
    ) -> None:
        if max_frame_size < 1 or max_headers < 0:
            raise LocalProtocolError("max_frame_size must be positive, max_headers non-negative")
        self._max_frame_size = max_frame_size
        self._max_headers = max_headers
        # None while empty, which an idle connection's parser is nearly always: an empty
        # bytearray kept per connection is 56 bytes.
        self._buffer: bytearray | None = None
        # Nothing before this offset needs searching again: no head end and no NUL for the
        # current frame's head, no NUL for its body when it has no content-length.
        self._scan = 0
        self._head: _Head | None = None
        self._error: RemoteProtocolError | None = None
        self._version = "1.2"
        self._unescape: Escaper | None = UNESCAPERS["1.2"]
        self.version = version

    @property
    def version(self) -> str:
        """The version whose escaping applies to the headers of the next frames."""
        return self._version

    @version.setter
    def version(self, version: str) -> None:
        if version not in VERSIONS:
            raise LocalProtocolError(f"unknown STOMP version {version!r}")
        self._version = version
        self._unescape = UNESCAPERS[version]

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as a frame or heart-beat."""
        return len(self._buffer) if self._buffer is not None else 0

    def receive_data(self, data: bytes) -> None:
        """Buffers `data`; raises RemoteProtocolError as soon as the frame being received
        cannot fit (max_frame_size bytes of it buffered and still no NUL), or when more than
        max_frame_size bytes of heart-beat EOLs wait. A content-length over the limit is refused
        by next_frame() as soon as the headers are complete, before the body arrives.
        """
        if self._error is not None:
            raise self._dead()
        buffer = self._buffer
        if buffer is None:
            buffer = self._buffer = bytearray(data)
        else:
            buffer += data
        if len(buffer) >= self._max_frame_size:
            try:
                self._check_incomplete_frame()
            except RemoteProtocolError as exc:
                self._error = exc
                raise

    def next_frame(self) -> Frame | Literal[Heartbeat.HEARTBEAT] | None:
        """The next frame, HEARTBEAT for a bare EOL, or None when more data is needed."""
        if self._error is not None:
            raise self._dead()
        try:
            head = self._head
            if head is None:
                parsed = self._parse_head()
                if parsed is None or parsed is HEARTBEAT:
                    return parsed
                head = self._head = parsed
            return self._parse_body(head)
        except RemoteProtocolError as exc:
            self._error = exc
            raise

    def _dead(self) -> RemoteProtocolError:
        assert self._error is not None
        return RemoteProtocolError(self._error.message, code=self._error.code)

    def _too_large(self) -> RemoteProtocolError:
        return RemoteProtocolError(
            f"frame exceeds the {self._max_frame_size} byte limit", code=FRAME_TOO_LARGE
        )

    def _check_incomplete_frame(self) -> None:
        # Every frame ends with a NUL: when the first `limit` bytes of the current frame hold
        # none, the frame is too large, whatever its headers say. Called only once the buffer
        # reaches the limit, so a peer cannot make us hold a huge partial frame.
        buffer = self._buffer
        assert buffer is not None  # called with data just received
        limit = self._max_frame_size
        head = self._head
        if head is None:
            eols = _LEADING_EOLS.match(buffer)
            start = 0 if eols is None else eols.end()
            if start > limit:
                raise RemoteProtocolError("too many heart-beats buffered")
        elif head.content_length is not None:
            return  # already checked against the limit when the head was parsed
        else:
            start = 0
        window_full = len(buffer) - start >= limit
        if window_full and buffer.find(b"\0", max(start, self._scan), start + limit) == -1:
            raise self._too_large()

    def _parse_head(self) -> _Head | Literal[Heartbeat.HEARTBEAT] | None:
        buffer = self._buffer
        if not buffer:
            self._buffer = None
            return None
        first = buffer[0]
        if first == 0x0A:
            del buffer[:1]
            return HEARTBEAT
        if first == 0x0D:
            if len(buffer) == 1:
                return None
            if buffer[1] == 0x0A:
                del buffer[:2]
                return HEARTBEAT
            raise RemoteProtocolError("CR not followed by LF")

        scan = self._scan
        blank = _blank_line(buffer, scan)
        head_end = len(buffer) if blank is None else blank[0]
        if buffer.find(b"\0", scan, head_end) != -1:
            raise RemoteProtocolError("frame ended before the end of its headers")
        if blank is None:
            # The frame is at least its partial head plus a NUL.
            if len(buffer) >= self._max_frame_size:
                raise self._too_large()
            self._scan = max(0, len(buffer) - _HEAD_END_OVERLAP)
            return None
        body_start = blank[1]
        if body_start >= self._max_frame_size:
            raise self._too_large()

        try:
            text = buffer[:head_end].decode()
        except UnicodeDecodeError:
            raise RemoteProtocolError("frame headers are not valid UTF-8") from None
        if "\r" in text:
            text = text.replace("\r\n", "\n")
            if "\r" in text:
                raise RemoteProtocolError("CR not followed by LF in frame headers")
        lines = text.split("\n")
        command = lines[0]
        if command not in CLIENT_COMMANDS and not is_valid_command(command):
            raise RemoteProtocolError("invalid command")
        if len(lines) - 1 > self._max_headers:
            raise RemoteProtocolError(f"more than {self._max_headers} headers")

        unescape = self._unescape
        if unescape is None or "\\" not in text or command in RAW_HEADER_COMMANDS:
            unescape = None
        headers: list[tuple[str, str]] = []
        content_length: int | None = None
        seen_length = False
        for line in islice(lines, 1, None):
            name, colon, value = line.partition(":")
            if not colon:
                raise RemoteProtocolError("header line without ':'")
            if not name:
                raise RemoteProtocolError("header with an empty name")
            if unescape is not None:
                name = unescape(name)
                value = unescape(value)
            headers.append((name, value))
            if name == "content-length" and not seen_length:
                seen_length = True
                content_length = self._parse_content_length(value, body_start)
        self._scan = body_start
        return _Head(command, tuple(headers), body_start, content_length)

    def _parse_content_length(self, value: str, body_start: int) -> int:
        if not (value.isascii() and value.isdigit()):
            raise RemoteProtocolError("content-length is not a non-negative integer")
        if len(value) > _MAX_LENGTH_DIGITS or body_start + int(value) >= self._max_frame_size:
            raise self._too_large()
        return int(value)

    def _parse_body(self, head: _Head) -> Frame | None:
        buffer = self._buffer
        assert buffer is not None  # it holds the head
        start = head.body_start
        length = head.content_length
        if length is not None:
            end = start + length
            if len(buffer) <= end:
                return None
            if buffer[end] != 0:
                raise RemoteProtocolError("frame body not followed by NUL")
        else:
            end = buffer.find(b"\0", self._scan)
            if end == -1:
                if len(buffer) >= self._max_frame_size:
                    raise self._too_large()
                self._scan = len(buffer)
                return None
            if end >= self._max_frame_size:
                raise self._too_large()
        body = bytes(buffer[start:end])
        del buffer[: end + 1]
        self._head = None
        self._scan = 0
        return Frame(head.command, head.headers, body)


def _blank_line(buffer: bytearray, scan: int) -> tuple[int, int] | None:
    """Where the first blank line from ``scan`` on starts and where the body after it starts:
    ``_HEAD_END``'s leftmost match. Most heads end their lines with LF alone, and then two
    searches for bytes find it; the pattern tries every position of the head, at a few times
    their cost per frame received."""
    end = buffer.find(b"\n\n", scan)
    if end != -1 and buffer.find(b"\r", scan, end) == -1:
        # No CR before it, so no match of the pattern starts earlier (each holds "\n\n" or a CR).
        return end, end + 2
    match = _HEAD_END.search(buffer, scan)
    return None if match is None else (match.start(), match.end())
