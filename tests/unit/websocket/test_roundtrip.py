"""Property tests: any messages, any fragmentation, any control frames between fragments, any
chunking of the byte stream -> the same events; and the serializer through our own parser."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from ieum_chat.websocket import (
    BinaryMessage,
    CloseReceived,
    Event,
    FrameParser,
    Ping,
    Pong,
    TextMessage,
    binary_frame,
    ping_frame,
    pong_frame,
    text_frame,
)
from ieum_chat.websocket._mask import xor_mask

from ._support import BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT, client_frame, drain

LIMIT = 4096


@dataclass(frozen=True)
class Piece:
    """Some frames of the stream and the event they complete, if any."""

    frames: bytes
    event: Event | None


masks = st.binary(min_size=4, max_size=4)
control_events = st.one_of(
    st.binary(max_size=125).map(Ping),
    st.binary(max_size=125).map(Pong),
)


@st.composite
def control_piece(draw: st.DrawFn) -> Piece:
    event = draw(control_events)
    opcode = PING if isinstance(event, Ping) else PONG
    return Piece(client_frame(opcode, event.payload, mask=draw(masks)), event)


@st.composite
def message_pieces(draw: st.DrawFn) -> list[Piece]:
    """One data message cut into fragments at arbitrary byte offsets (even inside a UTF-8
    character), with control frames between the fragments."""
    if draw(st.booleans()):
        data = draw(st.text(max_size=40)).encode()
        event: Event = TextMessage(data)
        opcode = TEXT
    else:
        data = draw(st.binary(max_size=300))
        event = BinaryMessage(data)
        opcode = BINARY
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=4)))
    bounds = [0, *cuts, len(data)]
    fragments = [data[start:end] for start, end in pairwise(bounds)]
    pieces: list[Piece] = []
    for index, fragment in enumerate(fragments):
        last = index == len(fragments) - 1
        frame = client_frame(
            opcode if index == 0 else CONTINUATION, fragment, fin=last, mask=draw(masks)
        )
        pieces.append(Piece(frame, event if last else None))
        if not last:
            pieces.extend(draw(st.lists(control_piece(), max_size=2)))
    return pieces


@st.composite
def conversations(draw: st.DrawFn) -> tuple[bytes, list[Event]]:
    pieces: list[Piece] = []
    for item in draw(st.lists(st.one_of(message_pieces(), control_piece().map(lambda p: [p])))):
        pieces.extend(item)
    if draw(st.booleans()):
        code = draw(st.sampled_from([1000, 1001, 1011, 3000, 4999]))
        reason = draw(st.text(max_size=30))  # at most 120 bytes of UTF-8
        payload = code.to_bytes(2, "big") + reason.encode()
        closed = CloseReceived(code, reason)
        pieces.append(Piece(client_frame(CLOSE, payload, mask=draw(masks)), closed))
    stream = b"".join(piece.frames for piece in pieces)
    return stream, [piece.event for piece in pieces if piece.event is not None]


def split(data: st.DataObject, stream: bytes) -> list[bytes]:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    bounds = [0, *cuts, len(stream)]
    return [stream[start:end] for start, end in pairwise(bounds)]


def events_of(pieces: list[bytes]) -> list[Event]:
    parser = FrameParser(max_message_size=LIMIT)
    events = drain(parser, pieces)
    assert parser.buffered == 0
    assert parser.next_event() is None
    return events


@settings(max_examples=300, deadline=None)
@given(st.data(), conversations())
def test_any_chunking_gives_the_same_events(
    data: st.DataObject, conversation: tuple[bytes, list[Event]]
) -> None:
    stream, expected = conversation
    assert events_of([stream]) == expected
    assert events_of(split(data, stream)) == expected


@settings(max_examples=50, deadline=None)
@given(conversations())
def test_byte_by_byte_gives_the_same_events(conversation: tuple[bytes, list[Event]]) -> None:
    stream, expected = conversation
    assert events_of([stream[index : index + 1] for index in range(len(stream))]) == expected


def mask_server_frame(frame: bytes, mask: bytes) -> bytes:
    # What a client-side proxy would forward: the same frame, masked (§5.3).
    length = frame[1]
    head = 2 + {126: 2, 127: 8}.get(length, 0)
    masked_head = frame[:1] + bytes([frame[1] | 0x80]) + frame[2:head]
    return masked_head + mask + xor_mask(frame[head:], mask)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=200).map(lambda text: TextMessage(text.encode())),
            st.binary(max_size=300).map(BinaryMessage),
            control_events,
        ),
        max_size=8,
    ),
    masks,
)
def test_serializer_output_masked_parses_back(events: list[Event], mask: bytes) -> None:
    stream = b""
    for event in events:
        if isinstance(event, TextMessage):
            frame = text_frame(event.data)
        elif isinstance(event, BinaryMessage):
            frame = binary_frame(event.data)
        elif isinstance(event, Ping):
            frame = ping_frame(event.payload)
        else:
            assert isinstance(event, Pong)
            frame = pong_frame(event.payload)
        stream += mask_server_frame(frame, mask)
    assert events_of([stream]) == events
