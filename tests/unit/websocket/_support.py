"""Test-side RFC 6455 codecs, written independently of the code under test: a builder of masked
client frames (any header bits, any length encoding) and a decoder of server frames."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

import pytest

from ieum_chat.websocket import Event, FrameParser, ProtocolError
from tests.support.ws_frames import (
    BINARY,
    CLOSE,
    CONTINUATION,
    MASK,
    PING,
    PONG,
    TEXT,
    client_frame,
)

__all__ = [
    "BINARY",
    "CHUNKINGS",
    "CLOSE",
    "CONTINUATION",
    "MASK",
    "PING",
    "PONG",
    "TEXT",
    "ServerFrame",
    "chunked",
    "client_frame",
    "decode_server_frames",
    "drain",
    "parse",
    "parse_error",
]

# None: the whole input at once; otherwise the size of every chunk.
CHUNKINGS = [None, 1, 2, 7]


@dataclass(frozen=True)
class ServerFrame:
    fin: bool
    rsv: int
    opcode: int
    payload: bytes
    width: int  # the length encoding used: 7, 16 or 64 bits


def decode_server_frames(data: bytes) -> list[ServerFrame]:
    """Every frame of `data`; asserts they are unmasked and that `data` ends on a frame boundary."""
    frames: list[ServerFrame] = []
    pos = 0
    while pos < len(data):
        first, second = data[pos], data[pos + 1]
        assert not second & 0x80, "server frames are never masked"
        length = second & 0x7F
        pos += 2
        width = 7
        if length == 126:
            (length,) = struct.unpack_from("!H", data, pos)
            pos, width = pos + 2, 16
        elif length == 127:
            (length,) = struct.unpack_from("!Q", data, pos)
            pos, width = pos + 8, 64
        payload = data[pos : pos + length]
        assert len(payload) == length, "truncated frame"
        pos += length
        frames.append(ServerFrame(bool(first & 0x80), first >> 4 & 7, first & 0xF, payload, width))
    return frames


def chunked(data: bytes, chunk: int | None) -> list[bytes]:
    if chunk is None:
        return [data]
    return [data[index : index + chunk] for index in range(0, len(data), chunk)]


def drain(parser: FrameParser, pieces: Iterable[bytes]) -> list[Event]:
    events: list[Event] = []
    for piece in pieces:
        parser.receive_data(piece)
        while (event := parser.next_event()) is not None:
            events.append(event)
    return events


def parse(data: bytes, chunk: int | None = None, *, max_message_size: int = 1 << 20) -> list[Event]:
    parser = FrameParser(max_message_size=max_message_size)
    events = drain(parser, chunked(data, chunk))
    assert parser.buffered == 0
    return events


def parse_error(
    data: bytes, chunk: int | None = None, *, max_message_size: int = 1 << 20
) -> ProtocolError:
    parser = FrameParser(max_message_size=max_message_size)
    with pytest.raises(ProtocolError) as info:
        drain(parser, chunked(data, chunk))
    assert parser.next_event() is None
    assert parser.buffered == 0
    return info.value
