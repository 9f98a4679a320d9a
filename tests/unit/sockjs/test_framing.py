"""SockJS 0.3 framing: server frames, the JSON escapes, and decoding client payloads."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ieum_chat.sockjs import FrameType, RemoteProtocolError, close_frame, message_frame
from ieum_chat.sockjs._framing import (
    BROKEN_JSON,
    BUSY_FRAME,
    HEARTBEAT_FRAME,
    NOT_STRINGS,
    OPEN_FRAME,
    PAYLOAD_EXPECTED,
    decode_messages,
    decode_websocket_messages,
    encode_json,
)

# The SockJS protocol suite's `escapable_by_server` set (sockjs-protocol.py, JSON Unicode
# Encoding): every one of these must reach the client as a \uXXXX escape.
SERVER_ESCAPES = re.compile("[\x00-\x1f\u200c-\u200f\u2028-\u202f\u2060-\u206f\ufff0-\uffff]")


def test_fixed_frames() -> None:
    assert OPEN_FRAME.data == "o"
    assert OPEN_FRAME.type is FrameType.OPEN
    assert HEARTBEAT_FRAME.data == "h"
    assert BUSY_FRAME.data == 'c[2010,"Another connection still open"]'
    assert BUSY_FRAME.close == (2010, "Another connection still open")


def test_message_and_close_frames_are_compact_json() -> None:
    frame = message_frame(["a", 'b"c', "안녕"])
    assert frame.data == 'a["a","b\\"c","안녕"]'
    assert frame.messages == ("a", 'b"c', "안녕")
    assert close_frame(3000, "Go away!").data == 'c[3000,"Go away!"]'


def test_server_escapes_exactly_the_protocol_set() -> None:
    # As the suite's JSONEncoding.test_xhr_server_encodes checks it: what comes back is the
    # escaped form of every escapable character at or above U+00FF, nothing else changed.
    chars = "".join(chr(i) for i in range(255, 65536) if SERVER_ESCAPES.match(chr(i)))
    expected = '"' + "".join(f"\\u{ord(c):04x}" for c in chars) + '"'
    assert encode_json(chars) == expected


def test_lone_surrogates_are_escaped_so_the_text_is_utf8() -> None:
    text = encode_json(["\ud800x\udfff"])
    assert text == '["\\ud800x\\udfff"]'
    text.encode("utf-8")


def test_control_characters_use_json_escapes() -> None:
    assert message_frame(["  \x00\n\r "]).data == 'a["  \\u0000\\n\\r "]'


@given(st.lists(st.text(max_size=20), max_size=8))
def test_encoded_messages_decode_back(messages: list[str]) -> None:
    frame = message_frame(messages)
    assert frame.data.startswith("a")
    assert json.loads(frame.data[1:]) == messages
    assert decode_messages(frame.data[1:].encode("utf-8")) == messages
    frame.data.encode("utf-8")  # never a lone surrogate on the wire


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", PAYLOAD_EXPECTED),
        (b'["x', BROKEN_JSON),
        (b"not json", BROKEN_JSON),
        (b"\xff\xfe[", BROKEN_JSON),
        (b"[" * 100_000, BROKEN_JSON),
        (b'"x"', NOT_STRINGS),
        (b"{}", NOT_STRINGS),
        (b"[1]", NOT_STRINGS),
        (b'["a", null]', NOT_STRINGS),
        (b'[["a"]]', NOT_STRINGS),
    ],
)
def test_bad_payloads(body: bytes, message: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_messages(body)
    assert info.value.message == message
    assert info.value.status == 500


def test_payloads() -> None:
    assert decode_messages(b"[]") == []
    assert decode_messages('["a","\\u2028"]') == ["a", "\u2028"]


def test_websocket_messages() -> None:
    assert decode_websocket_messages("") == []
    assert decode_websocket_messages("[]") == []
    assert decode_websocket_messages('"one"') == ["one"]
    assert decode_websocket_messages('["a","b"]') == ["a", "b"]
    for bad in ('["a', "[1]", "{}"):
        with pytest.raises(RemoteProtocolError):
            decode_websocket_messages(bad)


@given(st.binary(max_size=200))
def test_any_body_decodes_or_is_refused_cleanly(body: bytes) -> None:
    outcome: object
    try:
        outcome = decode_messages(body)
    except RemoteProtocolError as exc:
        outcome = exc.message
    if isinstance(outcome, list):
        assert all(isinstance(m, str) for m in outcome)
    else:
        assert outcome in (PAYLOAD_EXPECTED, BROKEN_JSON, NOT_STRINGS)
