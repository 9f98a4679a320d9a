"""Server frames (RFC 6455 §5.2): unmasked, final, minimal length encoding; close bodies §5.5.1."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ieum_chat.websocket import (
    CloseCode,
    binary_frame,
    close_frame,
    ping_frame,
    pong_frame,
    text_frame,
)

from ._support import BINARY, CLOSE, PING, PONG, TEXT, ServerFrame, decode_server_frames


def only_frame(data: bytes) -> ServerFrame:
    (frame,) = decode_server_frames(data)
    return frame


def test_rfc_unmasked_hello() -> None:
    # §5.7: "A single-frame unmasked text message".
    assert text_frame(b"Hello") == bytes.fromhex("810548656c6c6f")


@pytest.mark.parametrize(
    ("size", "head"),
    [
        (0, b"\x82\x00"),
        (125, b"\x82\x7d"),
        (126, b"\x82\x7e\x00\x7e"),
        (65535, b"\x82\x7e\xff\xff"),
        (65536, b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
    ],
)
def test_length_boundaries(size: int, head: bytes) -> None:
    payload = bytes(index % 253 for index in range(size))
    assert binary_frame(payload) == head + payload


@pytest.mark.parametrize(
    ("build", "opcode"),
    [(text_frame, TEXT), (binary_frame, BINARY), (ping_frame, PING), (pong_frame, PONG)],
)
def test_each_builder_sets_its_opcode(build: Callable[[bytes], bytes], opcode: int) -> None:
    assert only_frame(build(b"abc")) == ServerFrame(True, 0, opcode, b"abc", 7)


@pytest.mark.parametrize("build", [ping_frame, pong_frame])
def test_control_payload_limit(build: Callable[[bytes], bytes]) -> None:
    assert only_frame(build(b"x" * 125)).payload == b"x" * 125
    with pytest.raises(ValueError, match="125"):
        build(b"x" * 126)


def test_close_without_code() -> None:
    assert close_frame() == b"\x88\x00"


def test_close_with_code_and_reason() -> None:
    assert close_frame(CloseCode.NORMAL, "bye") == b"\x88\x05\x03\xe8bye"
    assert close_frame(4000) == b"\x88\x02\x0f\xa0"


def test_reason_without_code_is_a_bug() -> None:
    with pytest.raises(ValueError, match="code"):
        close_frame(None, "why")


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000])
def test_close_code_that_may_not_be_sent(code: int) -> None:
    with pytest.raises(ValueError, match=str(code)):
        close_frame(code)


def _close_body(data: bytes) -> tuple[int, bytes]:
    frame = only_frame(data)
    assert frame.opcode == CLOSE
    assert frame.fin
    return int.from_bytes(frame.payload[:2], "big"), frame.payload[2:]


def test_reason_of_123_ascii_bytes_is_kept_and_124_is_cut() -> None:
    assert _close_body(close_frame(1000, "a" * 123)) == (1000, b"a" * 123)
    assert _close_body(close_frame(1000, "a" * 124)) == (1000, b"a" * 123)


@pytest.mark.parametrize("prefix", [0, 1, 2, 3])
def test_reason_is_cut_between_characters(prefix: int) -> None:
    reason = "a" * prefix + "한" * 60  # 3-byte characters straddling byte 123 at every offset
    _, raw = _close_body(close_frame(1001, reason))
    assert len(raw) == prefix + (123 - prefix) // 3 * 3
    assert reason.startswith(raw.decode())


def test_reason_with_a_lone_surrogate_is_still_sent() -> None:
    _, raw = _close_body(close_frame(1000, "a\ud800b"))
    assert raw == b"a?b"


@given(st.integers(0, 5), st.text(max_size=80))
def test_any_reason_fits_and_keeps_the_longest_prefix(padding: int, text: str) -> None:
    reason = "é" * padding + text.encode("utf-8", "replace").decode()
    code, raw = _close_body(close_frame(CloseCode.GOING_AWAY, reason))
    assert code == 1001
    assert len(raw) <= 123
    kept = raw.decode()
    assert reason.startswith(kept)
    if kept != reason:
        assert len(reason[: len(kept) + 1].encode()) > 123


@given(st.sampled_from([0, 1, 125, 126, 127, 65535, 65536, 70000]), st.binary(max_size=8))
def test_round_trip_through_a_decoder(size: int, tail: bytes) -> None:
    payload = (tail * size)[:size] if tail else bytes(size)
    for build, opcode in ((text_frame, TEXT), (binary_frame, BINARY)):
        frame = only_frame(build(payload))
        width = 7 if size < 126 else 16 if size < 65536 else 64
        assert frame == ServerFrame(True, 0, opcode, payload, width)


def test_frames_concatenate_into_one_stream() -> None:
    stream = text_frame(b"a") + binary_frame(b"b" * 300) + ping_frame(b"") + close_frame(1000)
    assert [(frame.opcode, frame.payload) for frame in decode_server_frames(stream)] == [
        (TEXT, b"a"),
        (BINARY, b"b" * 300),
        (PING, b""),
        (CLOSE, b"\x03\xe8"),
    ]
