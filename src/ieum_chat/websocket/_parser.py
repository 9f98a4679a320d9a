"""Bytes in, events out: an incremental parser of the frames a client sends (RFC 6455 §5).

The common case is a whole frame in one chunk: the chunk becomes the buffer without a copy, the
payload is sliced once and unmasked once, and the buffer is dropped. A frame that trickles in is
kept as a list of chunks and joined only once enough bytes are there to make progress, so a
payload that arrives one byte at a time still costs O(n).

Everything a peer can make it hold is bounded: the message by `max_message_size` bytes and by
`max_fragments` frames (empty continuation frames cost no bytes but still cost a list entry and
a loop turn each), and the work of one `next_event()` call by `quota` frames.
"""

from __future__ import annotations

from typing import Final

from ._close import CloseCode, is_wire_code
from ._errors import ProtocolError
from ._events import BinaryMessage, CloseReceived, Event, Ping, Pong, TextMessage
from ._mask import unmask

__all__ = ["FrameParser"]

_CONTINUATION: Final = 0x0
_TEXT: Final = 0x1
_BINARY: Final = 0x2
_PING: Final = 0x9
_PONG: Final = 0xA

_FIN: Final = 0x80
_RSV: Final = 0x70
_OPCODE: Final = 0x0F
_CONTROL: Final = 0x08
_MASKED: Final = 0x80
_LENGTH: Final = 0x7F
_MAX_CONTROL_PAYLOAD: Final = 125

_EMPTY: Final = b""
# Browsers never fragment; a generous bound for clients that stream a message in pieces.
DEFAULT_MAX_FRAGMENTS: Final = 1024
_UNLIMITED: Final = 1 << 62
_PROTOCOL_ERROR: Final = CloseCode.PROTOCOL_ERROR


class FrameParser:
    """Turns the client's byte stream into `Event`s.

    After each `receive_data()`, call `next_event()` until it returns None. A ProtocolError means
    the connection must be failed with a Close frame carrying its `code` (§7.1.7). After it, or
    after a CloseReceived, the parser is done: input is dropped and `next_event()` returns None.
    """

    __slots__ = (
        "_buffer",
        "_chunks",
        "_done",
        "_fragments",
        "_max_fragments",
        "_max_message_size",
        "_message_size",
        "_need",
        "_opcode",
        "_pos",
        "_size",
        "quota",
    )

    def __init__(
        self, *, max_message_size: int, max_fragments: int = DEFAULT_MAX_FRAGMENTS
    ) -> None:
        if max_message_size < 0:
            raise ValueError("max_message_size must not be negative")
        if max_fragments < 1:
            raise ValueError("max_fragments must be at least 1")
        self._max_message_size = max_message_size
        self._max_fragments = max_fragments
        # How many more frames `next_event()` may consume before it returns None with input
        # left; the caller refills it once per turn to bound the work one peer can cause.
        self.quota = _UNLIMITED
        # The stream is `_buffer[_pos:]` followed by every chunk of `_chunks` (None when there
        # are none); `_size` counts it all. `_need` is how many bytes the frame at `_pos` needs
        # before parsing it can get further.
        self._buffer = _EMPTY
        self._pos = 0
        self._chunks: list[bytes] | None = None
        self._size = 0
        self._need = 0
        # The fragments of a message whose final frame has not come yet (§5.4), its opcode and
        # length so far; None, 0, 0 between messages.
        self._fragments: list[bytes] | None = None
        self._opcode = 0
        self._message_size = 0
        self._done = False

    @property
    def starved(self) -> bool:
        """Whether `next_event()` stopped for want of `quota` with a frame header buffered."""
        return not self.quota and not self._done and self._size >= max(2, self._need)

    @property
    def buffered(self) -> int:
        """Bytes held: input not yet parsed, plus the fragments of an unfinished message."""
        return self._size + self._message_size

    def receive_data(self, data: bytes) -> None:
        """Takes the next bytes of the stream; never parses, so it never raises."""
        if self._done or not data:
            return
        if not self._size:
            self._buffer = data
            self._pos = 0
        elif self._chunks is None:
            self._chunks = [data]
        else:
            self._chunks.append(data)
        self._size += len(data)

    def next_event(self) -> Event | None:
        """The next message or control frame, or None until more bytes arrive.

        Data frames that do not end their message produce no event; their payload is kept until
        the final fragment. Raises ProtocolError as soon as a frame header shows a rule is
        broken, before its payload is waited for.
        """
        if self._done:
            return None
        try:
            return self._next_event()
        except ProtocolError:
            self._finish()
            raise

    def _next_event(self) -> Event | None:
        while True:
            if self._chunks is not None:
                if self._size < self._need:
                    return None
                self._join()
            if not self.quota:
                return None
            buffer = self._buffer
            pos = self._pos
            available = len(buffer) - pos
            if available < 2:
                self._wait(2)
                return None

            # §5.2 base framing: FIN, RSV1-3, opcode | MASK, payload length.
            first = buffer[pos]
            second = buffer[pos + 1]
            if first & _RSV:
                raise ProtocolError(_PROTOCOL_ERROR, "RSV bits set without a negotiated extension")
            if not second & _MASKED:
                raise ProtocolError(_PROTOCOL_ERROR, "client frame is not masked")  # §5.1
            opcode = first & _OPCODE
            length = second & _LENGTH
            fragments = self._fragments
            if opcode & _CONTROL:
                if opcode > _PONG:
                    raise ProtocolError(_PROTOCOL_ERROR, "reserved control opcode")
                # §5.5: control frames are never fragmented and carry at most 125 bytes.
                if not first & _FIN:
                    raise ProtocolError(_PROTOCOL_ERROR, "fragmented control frame")
                if length > _MAX_CONTROL_PAYLOAD:
                    raise ProtocolError(_PROTOCOL_ERROR, "control frame payload over 125 bytes")
            elif opcode == _CONTINUATION:
                if fragments is None:
                    raise ProtocolError(_PROTOCOL_ERROR, "continuation frame with no message")
                if len(fragments) >= self._max_fragments:
                    raise ProtocolError(
                        CloseCode.POLICY_VIOLATION,
                        f"message in more than {self._max_fragments} fragments",
                    )
            elif opcode > _BINARY:
                raise ProtocolError(_PROTOCOL_ERROR, "reserved data opcode")
            elif fragments is not None:
                # §5.4: fragments of one message are not interleaved with another message.
                raise ProtocolError(_PROTOCOL_ERROR, "new message before the last one ended")

            if length < 126:
                head = 6
            elif length == 126:
                head = 8
                if available < 8:
                    self._wait(8)
                    return None
                length = buffer[pos + 2] << 8 | buffer[pos + 3]
                if length < 126:
                    raise ProtocolError(_PROTOCOL_ERROR, "payload length not minimally encoded")
            else:
                head = 14
                if available < 14:
                    self._wait(14)
                    return None
                length = int.from_bytes(buffer[pos + 2 : pos + 10], "big")
                if length >> 63:
                    raise ProtocolError(_PROTOCOL_ERROR, "payload length has its top bit set")
                if length < 65536:
                    raise ProtocolError(_PROTOCOL_ERROR, "payload length not minimally encoded")
            # Refused from the header alone, so a too-big payload is never buffered (§10.4).
            if not opcode & _CONTROL and self._message_size + length > self._max_message_size:
                raise ProtocolError(
                    CloseCode.MESSAGE_TOO_BIG, f"message larger than {self._max_message_size} bytes"
                )

            end = pos + head + length
            if end > len(buffer):
                self._wait(head + length)
                return None
            if length:
                payload = unmask(buffer[pos + head : end], buffer[pos + head - 4 : pos + head])
            else:
                payload = _EMPTY
            if end == len(buffer):
                self._buffer = _EMPTY
                self._pos = 0
            else:
                self._pos = end
            self._size -= head + length
            self._need = 0
            self.quota -= 1

            if opcode & _CONTROL:
                if opcode == _PING:
                    return Ping(payload)
                if opcode == _PONG:
                    return Pong(payload)
                event = _close_received(payload)  # the one control opcode left
                self._finish()
                return event
            if opcode == _CONTINUATION:
                assert fragments is not None
                fragments.append(payload)
                if first & _FIN:
                    self._fragments = None
                    self._message_size = 0
                    return _message(self._opcode, _EMPTY.join(fragments))
                self._message_size += length
            elif first & _FIN:
                return _message(opcode, payload)
            else:
                self._fragments = [payload]
                self._opcode = opcode
                self._message_size = length

    def _join(self) -> None:
        chunks = self._chunks
        assert chunks is not None
        buffer = self._buffer
        if self._pos:
            buffer = buffer[self._pos :]
        self._buffer = _EMPTY.join([buffer, *chunks])
        self._pos = 0
        self._chunks = None

    def _wait(self, need: int) -> None:
        # Drop what was consumed: an incomplete frame is all that is held between two reads.
        if self._pos:
            self._buffer = self._buffer[self._pos :]
            self._pos = 0
        self._need = need

    def _finish(self) -> None:
        self._done = True
        self._buffer = _EMPTY
        self._pos = 0
        self._chunks = None
        self._size = 0
        self._need = 0
        self._fragments = None
        self._message_size = 0


def _message(opcode: int, data: bytes) -> TextMessage | BinaryMessage:
    if opcode == _BINARY:
        return BinaryMessage(data)
    if not data.isascii():
        try:
            data.decode()
        except UnicodeDecodeError:
            raise ProtocolError(CloseCode.INVALID_DATA, "text message is not valid UTF-8") from None
    return TextMessage(data)


def _close_received(payload: bytes) -> CloseReceived:
    # §5.5.1: an empty body, or a 2-byte code followed by a UTF-8 reason.
    if not payload:
        return CloseReceived(None, "")
    if len(payload) == 1:
        raise ProtocolError(_PROTOCOL_ERROR, "close frame body of one byte")
    code = payload[0] << 8 | payload[1]
    if not is_wire_code(code):
        raise ProtocolError(_PROTOCOL_ERROR, f"close code {code} may not be sent")
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError:
        raise ProtocolError(CloseCode.INVALID_DATA, "close reason is not valid UTF-8") from None
    return CloseReceived(code, reason)
