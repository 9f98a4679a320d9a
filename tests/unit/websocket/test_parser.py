"""FrameParser: every rule of RFC 6455 §5 with its close code; input whole, byte by byte, and
with the next frame's first bytes behind it."""

from __future__ import annotations

import pytest

from ieum_chat.websocket import (
    BinaryMessage,
    CloseCode,
    CloseReceived,
    FrameParser,
    Ping,
    Pong,
    ProtocolError,
    TextMessage,
)
from ieum_chat.websocket import _parser as parser_module
from ieum_chat.websocket._mask import xor_mask

from ._support import (
    BINARY,
    CHUNKINGS,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    chunked,
    client_frame,
    drain,
    parse,
    parse_error,
)

PROTOCOL_ERROR = CloseCode.PROTOCOL_ERROR
# §5.7: a single-frame masked text message "Hello", and a masked Pong answering a Ping "Hello".
RFC_MASKED_HELLO = bytes.fromhex("818537fa213d7f9f4d5158")
RFC_MASKED_PONG = bytes.fromhex("8a8537fa213d7f9f4d5158")


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


@pytest.mark.parametrize("chunk", CHUNKINGS)
def test_rfc_examples(chunk: int | None) -> None:
    assert parse(RFC_MASKED_HELLO + RFC_MASKED_PONG, chunk) == [
        TextMessage(b"Hello"),
        Pong(b"Hello"),
    ]


@pytest.mark.parametrize("chunk", CHUNKINGS)
def test_every_kind_of_frame(chunk: int | None) -> None:
    data = b"".join(
        [
            client_frame(TEXT, "안녕".encode()),
            client_frame(BINARY, b"\x00\xff\x80"),
            client_frame(PING, b"p"),
            client_frame(PONG),
            client_frame(TEXT),
            client_frame(BINARY),
            client_frame(CLOSE, close_payload(1000, "잘 가".encode())),
        ]
    )
    assert parse(data, chunk) == [
        TextMessage("안녕".encode()),
        BinaryMessage(b"\x00\xff\x80"),
        Ping(b"p"),
        Pong(b""),
        TextMessage(b""),
        BinaryMessage(b""),
        CloseReceived(1000, "잘 가"),
    ]


def test_frames_are_unmasked_with_their_own_key() -> None:
    data = client_frame(TEXT, b"abcdefgh", mask=b"\x00\x00\x00\x00") + client_frame(
        BINARY, b"abcdefgh", mask=b"\xff\x01\x80\x7f"
    )
    assert parse(data) == [TextMessage(b"abcdefgh"), BinaryMessage(b"abcdefgh")]


def test_the_pure_python_unmask_gives_the_same_events(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parser_module, "unmask", xor_mask)
    assert parse(RFC_MASKED_HELLO + client_frame(BINARY, bytes(range(256)) * 3)) == [
        TextMessage(b"Hello"),
        BinaryMessage(bytes(range(256)) * 3),
    ]


# -- lengths (§5.2) -----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536])
@pytest.mark.parametrize("chunk", [None, 1, 1000])
def test_length_boundaries(size: int, chunk: int | None) -> None:
    payload = bytes(index % 251 for index in range(size))
    assert parse(client_frame(BINARY, payload), chunk) == [BinaryMessage(payload)]


@pytest.mark.parametrize(("size", "width"), [(0, 16), (125, 16), (125, 64), (65535, 64)])
def test_non_minimal_length_is_refused(size: int, width: int) -> None:
    # §5.2: "the minimal number of bytes MUST be used to encode the length".
    error = parse_error(client_frame(BINARY, bytes(size), width=width))
    assert error.code == PROTOCOL_ERROR


@pytest.mark.parametrize("chunk", CHUNKINGS)
def test_64_bit_length_with_the_top_bit_set(chunk: int | None) -> None:
    head = client_frame(BINARY, length=1 << 63, width=64)
    assert parse_error(head, chunk, max_message_size=1 << 62).code == PROTOCOL_ERROR


# -- masking, reserved bits, opcodes ------------------------------------------------------------


@pytest.mark.parametrize("chunk", CHUNKINGS)
@pytest.mark.parametrize("opcode", [TEXT, BINARY, PING, CLOSE])
def test_unmasked_client_frame(opcode: int, chunk: int | None) -> None:
    # §5.1: "The server MUST close the connection upon receiving a frame that is not masked."
    assert parse_error(client_frame(opcode, b"hi", mask=None), chunk).code == PROTOCOL_ERROR


@pytest.mark.parametrize("rsv", [1, 2, 4, 7])
@pytest.mark.parametrize("opcode", [TEXT, PING])
def test_reserved_bits(rsv: int, opcode: int) -> None:
    assert parse_error(client_frame(opcode, b"x", rsv=rsv)).code == PROTOCOL_ERROR


@pytest.mark.parametrize("payload", [b"", b"x", close_payload(1000)])
@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_reserved_opcodes(opcode: int, payload: bytes) -> None:
    # Payloads a data, ping or close frame could carry: none of them may be taken for one.
    assert parse_error(client_frame(opcode, payload)).code == PROTOCOL_ERROR


@pytest.mark.parametrize("opcode", [3, 0xB])
def test_reserved_opcode_is_refused_from_the_first_two_bytes(opcode: int) -> None:
    parser = FrameParser(max_message_size=100)
    parser.receive_data(client_frame(opcode, length=70000)[:2])
    with pytest.raises(ProtocolError) as info:
        parser.next_event()
    assert info.value.code == PROTOCOL_ERROR


# -- control frames (§5.5) ----------------------------------------------------------------------


@pytest.mark.parametrize("opcode", [CLOSE, PING, PONG])
def test_fragmented_control_frame(opcode: int) -> None:
    assert parse_error(client_frame(opcode, b"", fin=False)).code == PROTOCOL_ERROR


@pytest.mark.parametrize("opcode", [CLOSE, PING, PONG])
def test_control_payload_of_125_bytes_is_accepted(opcode: int) -> None:
    payload = close_payload(1000, b"r" * 123) if opcode == CLOSE else b"p" * 125
    events = parse(client_frame(opcode, payload))
    assert len(events) == 1
    if opcode == CLOSE:
        assert events == [CloseReceived(1000, "r" * 123)]


@pytest.mark.parametrize("opcode", [CLOSE, PING, PONG])
def test_control_payload_over_125_bytes(opcode: int) -> None:
    assert parse_error(client_frame(opcode, b"p" * 126)).code == PROTOCOL_ERROR


# -- fragmentation (§5.4) -----------------------------------------------------------------------


@pytest.mark.parametrize("chunk", CHUNKINGS)
def test_fragmented_message_with_interleaved_control_frames(chunk: int | None) -> None:
    data = b"".join(
        [
            client_frame(TEXT, b"Hel", fin=False),
            client_frame(PING, b"1"),
            client_frame(CONTINUATION, b"", fin=False),
            client_frame(PONG, b"2"),
            client_frame(PING),
            client_frame(CONTINUATION, b"lo"),
            client_frame(BINARY, b"a", fin=False),
            client_frame(CONTINUATION, b"b"),
        ]
    )
    assert parse(data, chunk) == [
        Ping(b"1"),
        Pong(b"2"),
        Ping(b""),
        TextMessage(b"Hello"),
        BinaryMessage(b"ab"),
    ]


def test_close_inside_a_fragmented_message_ends_it() -> None:
    data = client_frame(TEXT, b"half", fin=False) + client_frame(CLOSE, close_payload(1001))
    assert parse(data) == [CloseReceived(1001, "")]


@pytest.mark.parametrize("chunk", CHUNKINGS)
def test_utf8_character_split_across_fragments(chunk: int | None) -> None:
    encoded = "한".encode()
    data = client_frame(TEXT, encoded[:1], fin=False) + client_frame(CONTINUATION, encoded[1:])
    assert parse(data, chunk) == [TextMessage(encoded)]


def test_continuation_without_a_message() -> None:
    assert parse_error(client_frame(CONTINUATION, b"x")).code == PROTOCOL_ERROR


def test_continuation_after_the_message_ended() -> None:
    data = client_frame(TEXT, b"a", fin=False) + client_frame(CONTINUATION, b"b")
    data += client_frame(CONTINUATION, b"c")
    assert parse_error(data).code == PROTOCOL_ERROR


@pytest.mark.parametrize("second", [TEXT, BINARY])
@pytest.mark.parametrize("first", [TEXT, BINARY])
def test_new_message_while_one_is_open(first: int, second: int) -> None:
    data = client_frame(first, b"a", fin=False) + client_frame(second, b"b")
    assert parse_error(data).code == PROTOCOL_ERROR


# -- size limit ---------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", CHUNKINGS)
def test_message_of_exactly_the_limit(chunk: int | None) -> None:
    data = client_frame(TEXT, b"a" * 60, fin=False) + client_frame(CONTINUATION, b"b" * 40)
    assert parse(data, chunk, max_message_size=100) == [TextMessage(b"a" * 60 + b"b" * 40)]


@pytest.mark.parametrize(("size", "width"), [(101, 7), (1000, 16), (1 << 40, 64)])
def test_too_big_is_decided_from_the_header_alone(size: int, width: int) -> None:
    parser = FrameParser(max_message_size=100)
    head = client_frame(BINARY, length=size, width=width)
    parser.receive_data(head)
    with pytest.raises(ProtocolError) as info:
        parser.next_event()
    assert info.value.code == CloseCode.MESSAGE_TOO_BIG
    assert parser.buffered == 0


def test_sum_of_fragments_over_the_limit() -> None:
    first = client_frame(TEXT, b"a" * 60, fin=False)
    second_head = client_frame(CONTINUATION, b"b" * 41, fin=False)[:6]
    parser = FrameParser(max_message_size=100)
    assert drain(parser, [first]) == []
    assert parser.buffered == 60
    parser.receive_data(second_head)
    with pytest.raises(ProtocolError) as info:
        parser.next_event()
    assert info.value.code == CloseCode.MESSAGE_TOO_BIG


@pytest.mark.parametrize("chunk", [None, 1])
def test_every_fragment_counts_towards_the_limit(chunk: int | None) -> None:
    data = client_frame(BINARY, b"a" * 40, fin=False)
    data += client_frame(CONTINUATION, b"b" * 40, fin=False)
    assert parse(data + client_frame(CONTINUATION, b"c" * 20), chunk, max_message_size=100) == [
        BinaryMessage(b"a" * 40 + b"b" * 40 + b"c" * 20)
    ]
    error = parse_error(data + client_frame(CONTINUATION, b"c" * 21), chunk, max_message_size=100)
    assert error.code == CloseCode.MESSAGE_TOO_BIG


def test_buffered_counts_the_fragments_held() -> None:
    parser = FrameParser(max_message_size=100)
    parser.receive_data(client_frame(TEXT, b"a" * 30, fin=False) + b"\x00")
    assert parser.next_event() is None
    assert parser.buffered == 31
    parser.receive_data(client_frame(CONTINUATION, b"b" * 5, fin=False)[1:])
    assert parser.next_event() is None
    assert parser.buffered == 35


def test_control_frames_do_not_count_towards_the_limit() -> None:
    data = client_frame(TEXT, b"a" * 10, fin=False) + client_frame(PING, b"p" * 125)
    data += client_frame(CONTINUATION, b"b" * 10)
    assert parse(data, max_message_size=20) == [
        Ping(b"p" * 125),
        TextMessage(b"a" * 10 + b"b" * 10),
    ]


@pytest.mark.parametrize("chunk", [1000, 4096, 70000])
def test_the_buffer_stays_within_one_message_and_one_header(chunk: int) -> None:
    limit = 65536
    stream = b"".join(
        client_frame(BINARY, bytes([n]) * size) for n, size in enumerate([limit, 10, limit, 0])
    )
    parser = FrameParser(max_message_size=limit)
    events = []
    for piece in chunked(stream, chunk):
        events += drain(parser, [piece])
        assert parser.buffered <= limit + 14
    assert [len(event.data) for event in events if isinstance(event, BinaryMessage)] == [
        limit,
        10,
        limit,
        0,
    ]


def test_zero_limit_allows_only_empty_messages() -> None:
    assert parse(client_frame(TEXT), max_message_size=0) == [TextMessage(b"")]
    assert parse_error(client_frame(TEXT, b"a"), max_message_size=0).code == 1009


def test_negative_limit_is_a_bug() -> None:
    with pytest.raises(ValueError, match="max_message_size"):
        FrameParser(max_message_size=-1)


# -- UTF-8 (§8.1) -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [b"\xff", b"\xc3", b"caf\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"ok\x80"],
)
@pytest.mark.parametrize("chunk", [None, 1])
def test_text_that_is_not_utf8(payload: bytes, chunk: int | None) -> None:
    assert parse_error(client_frame(TEXT, payload), chunk).code == CloseCode.INVALID_DATA


def test_fragmented_text_is_validated_as_a_whole() -> None:
    data = client_frame(TEXT, b"ok", fin=False) + client_frame(CONTINUATION, b"\xe2\x82")
    assert parse_error(data).code == CloseCode.INVALID_DATA


def test_binary_is_not_validated() -> None:
    assert parse(client_frame(BINARY, b"\xff\xfe")) == [BinaryMessage(b"\xff\xfe")]


# -- close (§5.5.1, §7.4) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999]
)
def test_close_codes_allowed_on_the_wire(code: int) -> None:
    assert parse(client_frame(CLOSE, close_payload(code, b"bye"))) == [CloseReceived(code, "bye")]


@pytest.mark.parametrize(
    "code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]
)
def test_close_codes_not_allowed_on_the_wire(code: int) -> None:
    assert parse_error(client_frame(CLOSE, close_payload(code))).code == PROTOCOL_ERROR


def test_close_without_payload() -> None:
    assert parse(client_frame(CLOSE)) == [CloseReceived(None, "")]


def test_close_payload_of_one_byte() -> None:
    assert parse_error(client_frame(CLOSE, b"\x03")).code == PROTOCOL_ERROR


def test_close_reason_not_utf8() -> None:
    error = parse_error(client_frame(CLOSE, close_payload(1000, b"\xff")))
    assert error.code == CloseCode.INVALID_DATA


@pytest.mark.parametrize("chunk", CHUNKINGS)
def test_nothing_after_close(chunk: int | None) -> None:
    parser = FrameParser(max_message_size=100)
    data = client_frame(CLOSE, close_payload(1000)) + client_frame(TEXT, b"late") + b"\xff\x00"
    assert drain(parser, chunked(data, chunk)) == [CloseReceived(1000, "")]
    parser.receive_data(client_frame(TEXT, b"later"))
    assert parser.next_event() is None
    assert parser.buffered == 0


def test_nothing_after_a_protocol_error() -> None:
    parser = FrameParser(max_message_size=100)
    parser.receive_data(client_frame(TEXT, b"x", mask=None) + client_frame(TEXT, b"y"))
    with pytest.raises(ProtocolError):
        parser.next_event()
    parser.receive_data(client_frame(TEXT, b"z"))
    assert parser.next_event() is None
    assert parser.next_event() is None


# -- buffering ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [1, 2, 5, 6, 7])
def test_trailing_data_waits_for_the_rest(cut: int) -> None:
    second = client_frame(BINARY, b"second frame")
    parser = FrameParser(max_message_size=100)
    parser.receive_data(client_frame(TEXT, b"first") + second[:cut])
    assert parser.next_event() == TextMessage(b"first")
    assert parser.next_event() is None
    assert parser.buffered == cut
    parser.receive_data(second[cut:])
    assert parser.next_event() == BinaryMessage(b"second frame")
    assert parser.next_event() is None
    assert parser.buffered == 0


def test_a_shell_that_does_not_drain_still_gets_every_event() -> None:
    first, second = client_frame(BINARY, b"a" * 500), client_frame(TEXT, b"b")
    parser = FrameParser(max_message_size=1000)
    parser.receive_data(first[:100])
    assert parser.next_event() is None
    parser.receive_data(first[100:] + second[:3])
    assert parser.next_event() == BinaryMessage(b"a" * 500)
    parser.receive_data(second[3:])
    parser.receive_data(b"")
    assert parser.next_event() == TextMessage(b"b")
    assert parser.next_event() is None


def test_idle_parser_holds_nothing() -> None:
    parser = FrameParser(max_message_size=1 << 20)
    parser.receive_data(b"")
    assert parser.next_event() is None
    assert parser.buffered == 0
    assert not hasattr(parser, "__dict__")


@pytest.mark.timeout(15)
def test_a_large_frame_byte_by_byte_is_linear() -> None:
    # Re-joining the buffer on every byte would copy ~5e11 bytes here (~40 s), past the timeout.
    payload = bytes(range(256)) * 4096
    assert parse(client_frame(BINARY, payload), 1, max_message_size=len(payload)) == [
        BinaryMessage(payload)
    ]
