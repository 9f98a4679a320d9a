"""FrameParser: whole input, byte by byte, and with trailing data (STOMP 1.2 "Frames")."""

from __future__ import annotations

import pytest

from ieum_chat.stomp import HEARTBEAT, Frame, FrameParser, Heartbeat, LocalProtocolError
from ieum_chat.stomp import RemoteProtocolError as Remote

Item = Frame | Heartbeat

# None: the whole input at once; otherwise the size of every chunk.
CHUNKINGS = [None, 1, 2, 7]


def parse(data: bytes, chunk: int | None = None, **kwargs: object) -> list[Item]:
    parser = FrameParser(**kwargs)  # type: ignore[arg-type]
    pieces = [data] if chunk is None else [data[i : i + chunk] for i in range(0, len(data), chunk)]
    items: list[Item] = []
    for piece in pieces:
        parser.receive_data(piece)
        while (item := parser.next_frame()) is not None:
            items.append(item)
    assert parser.buffered == 0
    return items


def parse_error(data: bytes, chunk: int | None = None, **kwargs: object) -> str:
    with pytest.raises(Remote) as info:
        parse(data, chunk, **kwargs)
    return info.value.message


@pytest.mark.parametrize("chunk", CHUNKINGS)
def test_simple_frame(chunk: int | None) -> None:
    data = b"SEND\ndestination:/app/chat/1\ncontent-type:application/json\n\n{}\0"
    assert parse(data, chunk) == [
        Frame(
            "SEND",
            (("destination", "/app/chat/1"), ("content-type", "application/json")),
            b"{}",
        )
    ]


@pytest.mark.parametrize("chunk", CHUNKINGS)
def test_frame_without_headers_or_body(chunk: int | None) -> None:
    assert parse(b"DISCONNECT\n\n\0", chunk) == [Frame("DISCONNECT")]


@pytest.mark.parametrize("chunk", CHUNKINGS)
def test_crlf_line_endings(chunk: int | None) -> None:
    data = b"SEND\r\ndestination:/a\r\nreceipt:1\r\n\r\nhi\0\r\n"
    assert parse(data, chunk) == [
        Frame("SEND", (("destination", "/a"), ("receipt", "1")), b"hi"),
        HEARTBEAT,
    ]


@pytest.mark.parametrize("chunk", CHUNKINGS)
@pytest.mark.parametrize("blank", [b"\n\r\n", b"\r\n\n", b"\r\n\r\n"])
def test_the_first_blank_line_ends_the_head_whatever_its_eols(
    blank: bytes, chunk: int | None
) -> None:
    # The body holds an LF LF of its own: the head ends at the first blank line, CR or not.
    data = b"SEND\ndestination:/a" + blank + b"x\n\ny\0"
    assert parse(data, chunk) == [Frame("SEND", (("destination", "/a"),), b"x\n\ny")]


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_crlf_is_accepted_in_every_version(version: str) -> None:
    assert parse(b"ACK\r\nid:1\r\n\r\n\0", version=version) == [Frame("ACK", (("id", "1"),))]


@pytest.mark.parametrize("chunk", CHUNKINGS)
def test_heartbeats_between_frames(chunk: int | None) -> None:
    data = b"\n\r\nACK\nid:1\n\n\0\n\n\r\nNACK\nid:2\n\n\0\n"
    assert parse(data, chunk) == [
        HEARTBEAT,
        HEARTBEAT,
        Frame("ACK", (("id", "1"),)),
        HEARTBEAT,
        HEARTBEAT,
        HEARTBEAT,
        Frame("NACK", (("id", "2"),)),
        HEARTBEAT,
    ]


def test_lone_cr_waits_for_lf() -> None:
    parser = FrameParser()
    parser.receive_data(b"\r")
    assert parser.next_frame() is None
    parser.receive_data(b"\n")
    assert parser.next_frame() is HEARTBEAT
    assert parser.next_frame() is None


@pytest.mark.parametrize("chunk", CHUNKINGS)
def test_content_length_body_may_hold_nul(chunk: int | None) -> None:
    body = b"\0a\0\0b\0"
    data = b"SEND\ndestination:/a\ncontent-length:6\n\n" + body + b"\0"
    assert parse(data, chunk) == [
        Frame("SEND", (("destination", "/a"), ("content-length", "6")), body)
    ]


@pytest.mark.parametrize("chunk", CHUNKINGS)
def test_content_length_zero(chunk: int | None) -> None:
    frames = parse(b"SEND\ncontent-length:0\n\n\0", chunk)
    assert frames == [Frame("SEND", (("content-length", "0"),))]


@pytest.mark.parametrize("chunk", CHUNKINGS)
def test_without_content_length_body_ends_at_first_nul(chunk: int | None) -> None:
    data = b"SEND\n\nab\0ACK\nid:x\n\n\0"
    assert parse(data, chunk) == [Frame("SEND", (), b"ab"), Frame("ACK", (("id", "x"),))]


def test_repeated_headers_are_kept_and_the_first_wins() -> None:
    (frame,) = parse(b"MESSAGE\nfoo:World\nfoo:I am\n\n\0")
    assert isinstance(frame, Frame)
    assert frame.headers == (("foo", "World"), ("foo", "I am"))
    assert frame.get("foo") == "World"
    assert frame.get("bar") is None
    assert frame.get("bar", "x") == "x"


def test_first_content_length_wins() -> None:
    (frame,) = parse(b"SEND\ncontent-length:2\ncontent-length:5\n\na\0\0")
    assert isinstance(frame, Frame)
    assert frame.body == b"a\0"


def test_colon_in_value_is_kept() -> None:
    (frame,) = parse(b"SEND\ndestination:/a:b\n\n\0", version="1.0")
    assert isinstance(frame, Frame)
    assert frame.get("destination") == "/a:b"


def test_utf8_headers() -> None:
    (frame,) = parse("SEND\ndestination:/방/채팅\n\n\0".encode())
    assert isinstance(frame, Frame)
    assert frame.get("destination") == "/방/채팅"


@pytest.mark.parametrize("chunk", [None, 1])
def test_trailing_data_stays_buffered(chunk: int | None) -> None:
    parser = FrameParser()
    data = b"ACK\nid:1\n\n\0SEND\ndestin"
    pieces = [data] if chunk is None else [data[i : i + 1] for i in range(len(data))]
    frames = []
    for piece in pieces:
        parser.receive_data(piece)
        while (item := parser.next_frame()) is not None:
            frames.append(item)
    assert frames == [Frame("ACK", (("id", "1"),))]
    assert parser.buffered == len(b"SEND\ndestin")
    parser.receive_data(b"ation:/a\n\nx\0")
    assert parser.next_frame() == Frame("SEND", (("destination", "/a"),), b"x")


# -- escaping (STOMP 1.2 "Value Encoding") ---------------------------------------------------


def test_unescape_12() -> None:
    data = b"MESSAGE\na\\cb:c\\\\d\\ne\\rf\n\n\0"
    assert parse(data, version="1.2") == [Frame("MESSAGE", (("a:b", "c\\d\ne\rf"),))]


def test_unescape_11() -> None:
    data = b"MESSAGE\na\\cb:c\\\\d\\ne\n\n\0"
    assert parse(data, version="1.1") == [Frame("MESSAGE", (("a:b", "c\\d\ne"),))]


def test_no_unescape_in_10() -> None:
    data = b"MESSAGE\na\\cb:c\\\\d\\ne\\t\n\n\0"
    assert parse(data, version="1.0") == [Frame("MESSAGE", (("a\\cb", "c\\\\d\\ne\\t"),))]


@pytest.mark.parametrize("command", [b"CONNECT", b"STOMP", b"CONNECTED"])
@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_connect_frames_are_never_unescaped(command: bytes, version: str) -> None:
    data = command + b"\npasscode:a\\tb\\c\n\n\0"
    (frame,) = parse(data, version=version)
    assert isinstance(frame, Frame)
    assert frame.get("passcode") == "a\\tb\\c"


@pytest.mark.parametrize(
    ("version", "line"),
    [
        ("1.2", b"a:\\t"),
        ("1.2", b"a:b\\"),
        ("1.2", b"\\x:b"),
        ("1.1", b"a:\\r"),
        ("1.1", b"a:\\t"),
        ("1.1", b"a:end\\"),
    ],
)
def test_invalid_escape(version: str, line: bytes) -> None:
    message = parse_error(b"SEND\n" + line + b"\n\n\0", version=version)
    assert message == "invalid escape sequence in a header"


def test_version_is_settable() -> None:
    parser = FrameParser(version="1.0")
    parser.receive_data(b"SEND\na:\\n\n\n\0")
    assert parser.next_frame() == Frame("SEND", (("a", "\\n"),))
    parser.version = "1.2"
    assert parser.version == "1.2"
    parser.receive_data(b"SEND\na:\\n\n\n\0")
    assert parser.next_frame() == Frame("SEND", (("a", "\n"),))
    with pytest.raises(LocalProtocolError):
        parser.version = "2.0"


@pytest.mark.parametrize("kwargs", [{"max_frame_size": 0}, {"max_headers": -1}, {"version": "1.3"}])
def test_constructor_rejects_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(LocalProtocolError):
        FrameParser(**kwargs)  # type: ignore[arg-type]


# -- malformed input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"SEND\ndestination\n\n\0", "header line without ':'"),
        (b"SEND\n:value\n\n\0", "header with an empty name"),
        (b"SEND\ncontent-length:abc\n\n\0", "content-length is not a non-negative integer"),
        (b"SEND\ncontent-length:-1\n\n\0", "content-length is not a non-negative integer"),
        (b"SEND\ncontent-length:+1\n\nx\0", "content-length is not a non-negative integer"),
        (b"SEND\ncontent-length: 1\n\nx\0", "content-length is not a non-negative integer"),
        (b"SEND\ncontent-length:1.0\n\nx\0", "content-length is not a non-negative integer"),
        (b"SEND\ncontent-length:\n\n\0", "content-length is not a non-negative integer"),
        (
            "SEND\ncontent-length:\u0663\n\nxyz\0".encode(),
            "content-length is not a non-negative integer",
        ),
        (b"SEND\ncontent-length:1\n\nxy\0", "frame body not followed by NUL"),
        (b"send\n\n\0", "invalid command"),
        (b"SE ND\n\n\0", "invalid command"),
        (b"SEND1\n\n\0", "invalid command"),
        (b":\n\n\0", "invalid command"),
        (b"A" * 33 + b"\n\n\0", "invalid command"),
        (b"SEND\n\0", "frame ended before the end of its headers"),
        (b"SEND\nfoo:b\0r\n\n\0", "frame ended before the end of its headers"),
        (b"\0", "frame ended before the end of its headers"),
        (b"\rX", "CR not followed by LF"),
        (b"SEND\nfoo:a\rb\n\n\0", "CR not followed by LF in frame headers"),
        (b"SEND\nfoo:\xff\n\n\0", "frame headers are not valid UTF-8"),
    ],
)
@pytest.mark.parametrize("chunk", [None, 1])
def test_malformed(data: bytes, message: str, chunk: int | None) -> None:
    assert parse_error(data, chunk) == message


def test_too_many_headers() -> None:
    headers = b"".join(b"h%d:v\n" % i for i in range(5))
    assert parse(b"SEND\n" + headers + b"\n\0", max_headers=5)[0] != HEARTBEAT
    message = parse_error(b"SEND\n" + headers + b"x:y\n\n\0", max_headers=5)
    assert message == "more than 5 headers"


def test_huge_content_length_digits() -> None:
    # int() refuses strings over 4300 digits; the parser must answer with a protocol error.
    assert "limit" in parse_error(b"SEND\ncontent-length:" + b"9" * 5000 + b"\n\n\0")


def test_errors_are_sticky() -> None:
    parser = FrameParser()
    parser.receive_data(b"SEND\nbad\n\n\0ACK\nid:1\n\n\0")
    with pytest.raises(Remote, match="without ':'"):
        parser.next_frame()
    with pytest.raises(Remote, match="without ':'"):
        parser.next_frame()
    with pytest.raises(Remote, match="without ':'"):
        parser.receive_data(b"\n")


# -- the frame size limit --------------------------------------------------------------------


def _frame_of_size(size: int, *, content_length: bool) -> bytes:
    # A SEND frame of exactly `size` bytes, NUL included.
    if content_length:
        head = b"SEND\ncontent-length:%05d\n\n" % 0
        body_size = size - len(head) - 1
        head = b"SEND\ncontent-length:%05d\n\n" % body_size
    else:
        head = b"SEND\n\n"
        body_size = size - len(head) - 1
    return head + b"x" * body_size + b"\0"


@pytest.mark.parametrize("content_length", [True, False])
def test_frame_of_exactly_the_limit_is_accepted(content_length: bool) -> None:
    data = _frame_of_size(65536, content_length=content_length)
    assert len(data) == 65536
    (frame,) = parse(data)
    assert isinstance(frame, Frame)
    assert len(frame.body) == len(data) - data.index(b"\n\n") - 3


@pytest.mark.parametrize("content_length", [True, False])
@pytest.mark.parametrize("chunk", [None, 4096])
def test_frame_over_the_limit_is_refused(content_length: bool, chunk: int | None) -> None:
    data = _frame_of_size(65537, content_length=content_length)
    assert parse_error(data, chunk) == "frame exceeds the 65536 byte limit"


def test_content_length_over_the_limit_is_refused_before_the_body() -> None:
    parser = FrameParser(max_frame_size=1000)
    parser.receive_data(b"SEND\ncontent-length:990\n\n")
    with pytest.raises(Remote, match="frame exceeds the 1000 byte limit"):
        parser.next_frame()


def test_body_over_the_limit_is_refused_before_the_nul_arrives() -> None:
    parser = FrameParser(max_frame_size=100)
    parser.receive_data(b"SEND\n\n")
    assert parser.next_frame() is None
    for _ in range(100 - 7):
        parser.receive_data(b"x")
        assert parser.next_frame() is None
    # 99 bytes buffered, no NUL yet: the frame can still fit. One more byte and it cannot.
    with pytest.raises(Remote, match="frame exceeds the 100 byte limit"):
        parser.receive_data(b"x")


def test_receive_data_alone_detects_an_oversized_frame() -> None:
    # A shell that has not called next_frame yet still gets the error from receive_data.
    parser = FrameParser(max_frame_size=100)
    with pytest.raises(Remote, match="limit"):
        parser.receive_data(b"SEND\n\n" + b"x" * 200)


def test_head_over_the_limit_is_refused_before_it_ends() -> None:
    parser = FrameParser(max_frame_size=100)
    parser.receive_data(b"SEND\n" + b"h:v\n" * 23)
    assert parser.next_frame() is None
    with pytest.raises(Remote, match="limit"):
        parser.receive_data(b"h:v\n")


def test_complete_frames_beyond_the_limit_in_one_chunk_are_fine() -> None:
    frame = b"ACK\nid:1\n\n\0"
    items = parse(frame * 50, max_frame_size=len(frame))
    assert items == [Frame("ACK", (("id", "1"),))] * 50


def test_heartbeats_are_bounded() -> None:
    assert parse(b"\n" * 100, max_frame_size=100) == [HEARTBEAT] * 100
    assert parse_error(b"\n" * 101, max_frame_size=100) == "too many heart-beats buffered"


def test_leading_heartbeats_do_not_count_towards_the_frame() -> None:
    data = b"\r\n" * 30 + _frame_of_size(100, content_length=False)
    assert parse(data, max_frame_size=100)[-1] != HEARTBEAT
