"""Against independent client implementations: the sans-IO client of `websockets` (handshake and
frames both ways) and the frame encoder of `websocket-client`."""

from __future__ import annotations

import pytest
from websocket import ABNF
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from ieum_chat.websocket import (
    BinaryMessage,
    CloseReceived,
    FrameParser,
    Ping,
    TextMessage,
    accept_response,
    binary_frame,
    close_frame,
    head_length,
    parse_request,
    ping_frame,
    text_frame,
    validate_upgrade,
)

from ._support import chunked, drain


def open_client(subprotocols: list[str]) -> ClientProtocol:
    client = ClientProtocol(
        parse_uri("ws://chat.example.com/ws/chat?token=abc"),
        subprotocols=[Subprotocol(name) for name in subprotocols],
    )
    client.send_request(client.connect())
    data = b"".join(client.data_to_send())
    length = head_length(data)
    assert length == len(data)
    request = parse_request(data[:length])
    assert (request.path, request.query) == ("/ws/chat", "token=abc")
    assert request.subprotocols == subprotocols
    key = validate_upgrade(request)
    client.receive_data(accept_response(key, subprotocols[0] if subprotocols else None))
    assert client.state is State.OPEN, client.handshake_exc
    (response,) = client.events_received()
    assert isinstance(response, Response)
    assert response.status_code == 101
    return client


@pytest.mark.parametrize("subprotocols", [[], ["v12.stomp", "v11.stomp"]])
def test_websockets_client_accepts_our_handshake(subprotocols: list[str]) -> None:
    client = open_client(subprotocols)
    assert client.subprotocol == (subprotocols[0] if subprotocols else None)


@pytest.mark.parametrize("chunk", [None, 1, 1000])
def test_websockets_client_frames_parse(chunk: int | None) -> None:
    client = open_client([])
    client.send_text("안녕하세요".encode())
    client.send_binary(b"\x00" * 70000)
    client.send_text(b"frag", fin=False)
    client.send_ping(b"ping")
    client.send_continuation("mented 한".encode(), fin=True)
    client.send_close(1001, "bye")
    stream = b"".join(client.data_to_send())
    parser = FrameParser(max_message_size=1 << 20)
    assert drain(parser, chunked(stream, chunk)) == [
        TextMessage("안녕하세요".encode()),
        BinaryMessage(b"\x00" * 70000),
        Ping(b"ping"),
        TextMessage("fragmented 한".encode()),
        CloseReceived(1001, "bye"),
    ]


def test_websockets_client_reads_our_frames() -> None:
    client = open_client([])
    client.receive_data(
        text_frame("안녕".encode())
        + binary_frame(b"\xff" * 65536)
        + ping_frame(b"are you there")
        + close_frame(1000, "done")
    )
    received = client.events_received()
    assert all(isinstance(frame, Frame) for frame in received)
    frames = [(frame.opcode, bytes(frame.data)) for frame in received if isinstance(frame, Frame)]
    assert frames == [
        (Opcode.TEXT, "안녕".encode()),
        (Opcode.BINARY, b"\xff" * 65536),
        (Opcode.PING, b"are you there"),
        (Opcode.CLOSE, b"\x03\xe8done"),
    ]
    assert client.state is State.CLOSING


def test_websocket_client_frames_parse() -> None:
    stream = b"".join(
        [
            ABNF.create_frame("héllo", ABNF.OPCODE_TEXT).format(),
            ABNF(fin=0, opcode=ABNF.OPCODE_BINARY, data=b"ab").format(),
            ABNF.create_frame(b"x" * 300, ABNF.OPCODE_CONT).format(),
            ABNF.create_frame(b"\x03\xe8", ABNF.OPCODE_CLOSE).format(),
        ]
    )
    assert drain(FrameParser(max_message_size=1000), [stream]) == [
        TextMessage("héllo".encode()),
        BinaryMessage(b"ab" + b"x" * 300),
        CloseReceived(1000, ""),
    ]
