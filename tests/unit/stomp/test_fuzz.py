"""Runs the fuzz target (tests/fuzz/fuzz_stomp_parser.py) under hypothesis, so CI covers it
without atheris: random bytes, and valid conversations with bytes flipped, cut and inserted."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ieum_chat.stomp import RemoteProtocolError, SessionState, StompSession
from tests.fuzz import fuzz_stomp_parser as fuzz_module
from tests.fuzz.fuzz_stomp_parser import fuzz_one

CONNECTING = SessionState.CONNECTING


def _conversation(version: str) -> bytes:
    ack_id = "id" if version == "1.2" else "message-id"
    return (
        f"CONNECT\naccept-version:{version}\nhost:h\nheart-beat:500,500\n\n\0\n"
        "SUBSCRIBE\nid:0\ndestination:/topic/couple/1\nack:client\nreceipt:r0\n\n\0"
        "SEND\ndestination:/app/chat/1\ncontent-type:application/json\n"
        'content-length:14\nreceipt:r1\n\n{"a":"\\u0000"}\0\r\n'
        f"ACK\n{ack_id}:m-1\n\n\0"
        + ("" if version == "1.0" else f"NACK\n{ack_id}:m\\c2\n\n\0")
        + "UNSUBSCRIBE\nid:0\n\n\0SEND\ndestination:/x/reject\n\nno\0"
        "DISCONNECT\nreceipt:bye\n\n\0"
    ).encode()


SEEDS = [_conversation(version) for version in ("1.0", "1.1", "1.2")] + [
    b"STOMP\naccept-version:1.2\n\n\0BEGIN\ntransaction:t\n\n\0",
    b"CONNECT\n\n\0SUBSCRIBE\ndestination:/a\n\n\0UNSUBSCRIBE\ndestination:/a\n\n\0",
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        position = draw(st.integers(0, len(data)))
        operation = draw(st.sampled_from(["flip", "delete", "insert", "duplicate"]))
        if operation == "flip" and position < len(data):
            data[position] = draw(st.sampled_from(b"\0\n\r:\\ ctnrA9\xff"))
        elif operation == "delete":
            del data[position : position + draw(st.integers(1, 8))]
        elif operation == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        else:
            data[position:position] = data[position : position + draw(st.integers(1, 40))]
    return bytes(data)


control = st.integers(0, 255).map(lambda byte: bytes([byte]))
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(control, st.binary(max_size=300))
def test_random_bytes(first: bytes, payload: bytes) -> None:
    fuzz_one(first + payload)


@FUZZ
@given(control, mutated())
@example(b"\x80", SEEDS[0])
@example(b"\x81", SEEDS[1])
@example(b"\x02", SEEDS[2])
@example(b"\x80", b"\n" * 3000)
@example(b"\x80", b"SEND\n\n" + b"x" * 3000)
def test_mutated_conversations(first: bytes, payload: bytes) -> None:
    fuzz_one(first + payload)


def _events(data: bytes) -> list[str]:
    session = StompSession(now=0.0)
    session.receive_data(data, 0.0)
    names = []
    try:
        while (event := session.next_event()) is not None or session.state is CONNECTING:
            if event is None:
                session.accept(0.0)
            else:
                names.append(type(event).__name__)
    except RemoteProtocolError as error:
        names.append(error.message)
    return names


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_seed_conversations_reach_every_event(version: str) -> None:
    # Mutations start from these: they have to be valid to lead the fuzzer past CONNECT.
    expected = ["ConnectRequested", "Subscribe", "Send", "Ack", "Nack", "Unsubscribe"]
    expected += ["Send", "Disconnect"]
    if version == "1.0":
        expected.remove("Nack")
    assert _events(_conversation(version)) == expected


def test_fuzz_one_catches_what_it_should() -> None:
    # The harness must not swallow everything: a broken invariant surfaces as AssertionError.
    with pytest.raises(AssertionError):
        fuzz_module._check_error(RemoteProtocolError(""))
    fuzz_one(b"")
