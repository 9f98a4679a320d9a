"""Edges of the shared validation that the REST API's fuzzing found: values the databases
cannot hold are refused as SEND_FAILED (on STOMP and REST alike), and integral JSON numbers
written with a fraction (``17.0``, what clients with only doubles send) are integers."""

from __future__ import annotations

import orjson
import pytest

from ieum_chat.chat.requests import MAX_SEQ, parse_read_request, parse_send_request
from ieum_chat.errors import SendFailed


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"type": "TEXT", "content": "a\x00b", "tempId": "t"}, "'content' must not contain NUL"),
        ({"type": "IMAGE", "imageUrl": "https://x/\x00", "tempId": "t"}, "'imageUrl'"),
        ({"type": "TEXT", "content": "ok", "tempId": "t\x00"}, "'tempId' must not contain NUL"),
    ],
)
def test_nul_characters_are_refused(body: dict[str, object], detail: str) -> None:
    with pytest.raises(SendFailed, match=detail):
        parse_send_request(orjson.dumps(body))


@pytest.mark.parametrize(
    "raw",
    [str(MAX_SEQ + 1), str(2**64), "1e30", "-1", "1.5", '"3"', "true", "null"],
)
def test_up_to_seq_outside_a_bigint_is_refused(raw: str) -> None:
    with pytest.raises(SendFailed):
        parse_read_request(b'{"upToSeq": ' + raw.encode() + b"}")


@pytest.mark.parametrize(("raw", "expected"), [(b"17.0", 17), (b"0.0", 0), (b"17", 17)])
def test_integral_numbers_are_integers(raw: bytes, expected: int) -> None:
    request = parse_read_request(b'{"upToSeq": ' + raw + b"}")
    assert request.up_to_seq == expected
    assert isinstance(request.up_to_seq, int)
    assert parse_read_request(orjson.dumps({"upToSeq": MAX_SEQ})).up_to_seq == MAX_SEQ
