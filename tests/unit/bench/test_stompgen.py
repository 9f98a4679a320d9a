"""The second generator's hand-made STOMP framing: what it sends is what the project's own
parser reads, and it takes whole frames off a buffer that heart-beats and split reads cut up."""

from __future__ import annotations

from bench.stompgen import frame, frames

from ieum_chat.stomp import Frame, FrameParser


def test_a_frame_it_sends_is_read_by_the_servers_parser() -> None:
    body = b'{"type":"TEXT","content":"1 a:b x"}'
    sent = frame("SEND", {"destination": "/app/chat/c", "receipt": "r0"}, body)
    parser = FrameParser()
    parser.receive_data(sent)
    parsed = parser.next_frame()
    assert isinstance(parsed, Frame)
    assert parser.next_frame() is None
    assert parsed.command == "SEND"
    assert dict(parsed.headers) == {"destination": "/app/chat/c", "receipt": "r0"}
    assert parsed.body == body


def test_whole_frames_come_off_the_buffer_and_a_partial_one_waits() -> None:
    buffer = bytearray(b"\nRECEIPT\nreceipt-id:r0\n\n\x00\r\nMESSAGE\nsubscription:0\n\n{}\x00MESS")
    assert frames(buffer) == [
        ("RECEIPT", {"receipt-id": "r0"}, b""),
        ("MESSAGE", {"subscription": "0"}, b"{}"),
    ]
    assert buffer == bytearray(b"MESS")
    buffer.extend(b"AGE\nk:v\nk:w\n\nx\x00")
    assert frames(buffer) == [("MESSAGE", {"k": "v"}, b"x")]  # the first of a repeated header
    assert buffer == bytearray()
