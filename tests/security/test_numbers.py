"""Threat: numbers a client chooses, out of any range the server can hold.

A resume header of 2**64 once reached the database driver as is: the driver raised, the socket
closed with a traceback in the log and no ERROR, and the client learnt nothing. Every number a
client sends (the ``x-resume-after-seq`` header, ``upToSeq`` in a read request, over STOMP and
REST) goes through one bounded non-negative integer parser and is refused as a clean error:
the client is told, the session goes on, nothing reaches the database.
"""

from __future__ import annotations

import json

import httpx
import pytest

from ieum_chat.chat.requests import MAX_SEQ, parse_seq
from ieum_chat.errors import SendFailed
from tests.support.server import ServerProcess
from tests.support.stomp_client import StompTestClient, frame_json

Couple = dict[str, str]

OUT_OF_RANGE = [
    str(2**64),  # the reported one: past every 64-bit integer
    str(MAX_SEQ + 1),  # one past a BIGINT
    "9" * 5000,  # longer than int() takes
    "-1",
    "+5",  # int() takes these; a header of digits does not
    " 5",
    "1_000",
    "\u0661\u0662",  # Arabic-Indic digits, which int() reads as 12
    "",
]


# -- the one parser ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", OUT_OF_RANGE)
def test_header_text_out_of_range_is_refused(value: str) -> None:
    with pytest.raises(SendFailed, match="'x' must be an integer from 0 to"):
        parse_seq(value, "x", header=True)


@pytest.mark.parametrize(
    "value", [2**64, MAX_SEQ + 1, -1, 1e300, 1.5, float("inf"), "12", True, None]
)
def test_json_values_out_of_range_are_refused(value: object) -> None:
    with pytest.raises(SendFailed, match="'x' must be an integer from 0 to"):
        parse_seq(value, "x")


@pytest.mark.parametrize(
    ("value", "header", "expected"),
    [
        ("0", True, 0),
        (str(MAX_SEQ), True, MAX_SEQ),
        ("007", True, 7),
        (17, False, 17),
        (17.0, False, 17),
    ],
)
def test_seqs_in_range(value: object, header: bool, expected: int) -> None:
    assert parse_seq(value, "x", header=header) == expected


# -- over real sockets and HTTP ------------------------------------------------------------


async def member(server: ServerProcess, couple: Couple) -> StompTestClient:
    client = await StompTestClient.connected(server.ws_url, couple["ta"])
    await client.subscribe("/user/queue/errors")
    return client


@pytest.mark.parametrize("value", OUT_OF_RANGE)
async def test_resume_header_out_of_range_is_a_clean_error(
    server: ServerProcess, couple: Couple, value: str
) -> None:
    client = await member(server, couple)
    await client.send(
        "SUBSCRIBE",
        {
            "id": "t",
            "destination": f"/topic/couple/{couple['couple']}",
            "x-resume-after-seq": value,
            "receipt": "sub",
        },
    )
    error = await client.expect("MESSAGE")
    payload = frame_json(error)
    assert payload["code"] == "SEND_FAILED"
    assert "x-resume-after-seq" in payload["detail"]
    await client.expect("RECEIPT")
    # The session goes on: a message still gets its RECEIPT and arrives on the topic.
    await client.send(
        "SEND",
        {"destination": f"/app/chat/{couple['couple']}", "receipt": "m"},
        {"type": "TEXT", "content": "still here"},
    )
    seen = await client.receipt("m")
    seen += [await client.expect_message()] if not seen else []
    assert [m["content"] for m in seen if m.get("type") == "TEXT"] == ["still here"]
    await client.close()


async def test_resume_header_at_the_largest_seq_is_accepted(
    server: ServerProcess, couple: Couple
) -> None:
    client = await member(server, couple)
    topic = f"/topic/couple/{couple['couple']}"
    resume = {"x-resume-after-seq": str(MAX_SEQ), "receipt": "max"}
    await client.send("SUBSCRIBE", {"id": "t", "destination": topic, **resume})
    assert (await client.expect("RECEIPT")).get("receipt-id") == "max"
    await client.assert_silent()
    await client.close()


@pytest.mark.parametrize("value", [2**64, MAX_SEQ + 1, -1, 1e300, 1.5, "12", True])
async def test_read_up_to_seq_out_of_range_is_a_clean_error(
    server: ServerProcess, couple: Couple, value: object
) -> None:
    client = await member(server, couple)
    await client.send(
        "SEND",
        {"destination": f"/app/chat/{couple['couple']}/read", "receipt": "rd"},
        json.dumps({"upToSeq": value}),  # orjson refuses to write 2**64
    )
    payload = await client.expect_message()
    assert payload["code"] == "SEND_FAILED"
    assert "upToSeq" in payload["detail"]
    async with httpx.AsyncClient(base_url=server.http_url) as rest:
        response = await rest.post(
            f"/chat/rooms/{couple['couple']}/read",
            json={"upToSeq": value},
            headers={"Authorization": f"Bearer {couple['ta']}"},
        )
    assert response.status_code == 400
    assert "upToSeq" in response.json()["detail"]
    await client.close()
