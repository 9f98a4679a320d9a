"""Property tests: parse(serialize(frame)) == frame, and chunking never changes the result."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from ieum_chat.stomp import HEARTBEAT, Frame, FrameParser, Heartbeat, serialize_frame
from ieum_chat.stomp._frame import CLIENT_COMMANDS, RAW_HEADER_COMMANDS, SERVER_COMMANDS

COMMANDS = sorted(CLIENT_COMMANDS | SERVER_COMMANDS)
LIMIT = 1 << 20


def _text(excluded: str, *, min_size: int = 0) -> st.SearchStrategy[str]:
    # Surrogates cannot be UTF-8 encoded; NUL never belongs in a header.
    chars = st.characters(exclude_categories=["Cs"], exclude_characters="\0" + excluded)
    return st.text(chars, min_size=min_size, max_size=12)


def _headers(version: str, command: str) -> st.SearchStrategy[tuple[tuple[str, str], ...]]:
    if version == "1.0" or command in RAW_HEADER_COMMANDS:
        names, values = _text("\r\n:", min_size=1), _text("\r\n")
    elif version == "1.1":
        names, values = _text("\r", min_size=1), _text("\r")
    else:
        names, values = _text("", min_size=1), _text("")
    pair = st.tuples(names.filter(lambda name: name != "content-length"), values)
    return st.lists(pair, max_size=6).map(tuple)


@st.composite
def frames(draw: st.DrawFn, version: str) -> Frame:
    command = draw(st.sampled_from(COMMANDS))
    headers = draw(_headers(version, command))
    body = draw(st.binary(max_size=64))
    return Frame(command, headers, body)


def _expected(frame: Frame) -> Frame:
    # serialize_frame adds content-length for a non-empty body.
    if not frame.body:
        return frame
    length = (("content-length", str(len(frame.body))),)
    return Frame(frame.command, frame.headers + length, frame.body)


def _parse(pieces: list[bytes], version: str) -> list[Frame | Heartbeat]:
    parser = FrameParser(version=version, max_frame_size=LIMIT)
    items: list[Frame | Heartbeat] = []
    for piece in pieces:
        parser.receive_data(piece)
        while (item := parser.next_frame()) is not None:
            items.append(item)
    assert parser.buffered == 0
    return items


versions = st.sampled_from(["1.0", "1.1", "1.2"])


@settings(max_examples=300, deadline=None)
@given(st.data(), versions)
def test_parse_serialize_round_trip(data: st.DataObject, version: str) -> None:
    frame = data.draw(frames(version))
    assert _parse([serialize_frame(frame, version)], version) == [_expected(frame)]


@settings(max_examples=200, deadline=None)
@given(st.data(), versions)
def test_any_split_of_a_stream_gives_the_same_frames(data: st.DataObject, version: str) -> None:
    items = data.draw(
        st.lists(st.one_of(frames(version), st.sampled_from([b"\n", b"\r\n"])), max_size=6)
    )
    stream = b"".join(
        item if isinstance(item, bytes) else serialize_frame(item, version) for item in items
    )
    expected = [HEARTBEAT if isinstance(item, bytes) else _expected(item) for item in items]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    bounds = [0, *cuts, len(stream)]
    pieces = [stream[start:end] for start, end in pairwise(bounds)]
    assert _parse(pieces, version) == expected
    assert _parse([stream], version) == expected
