"""Threat: secrets and private messages in the server's logs, which operators ship to log
stores that many people read. With ``IEUM_LOG_LEVEL=DEBUG`` on SQLite the database drivers
logged every INSERT with its parameters (the chat text); a token sent as ``?%74oken=<jwt>``
(which the server decodes to ``token``) or with its dots written ``%2E`` was accepted and
logged whole.

Refused by: ``observability.logging`` redacts every record after percent-decoding it (tokens
in any query parameter spelling, JWTs however their dots are encoded), and pins the loggers
of the database drivers above the level at which they log statements and parameters, at any
``IEUM_LOG_LEVEL``: message content is never logged.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest

from ieum_chat.observability.logging import redact
from tests.support.server import ServerProcess
from tests.support.stomp_client import StompTestClient

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwiZXhwIjoxOTk5OTk5OTk5fQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PARTS = JWT.split(".")


def encoded(token: str, dot: str) -> str:
    return token.replace(".", dot)


@pytest.mark.parametrize(
    "line",
    [
        f'127.0.0.1:5 - "GET /ws/chat?%74oken={JWT} HTTP/1.1" 101',
        f'"GET /ws/chat?%74%6F%6B%65%6E={JWT} HTTP/1.1"',
        f'"GET /ws/chat?token={encoded(JWT, "%2E")} HTTP/1.1"',
        f'"GET /ws/chat?x=1&t%6Fken={encoded(JWT, "%2e")}"',
        f'"GET /ws/chat?token={encoded(JWT, "%252E")}"',
        f"Authorization: Bearer%20{JWT}",
        f"passcode:{JWT}",
        # A header JSON that starts '{ "' (base64 'eyAi') is a JWT all the same.
        "eyAiYWxnIjoiSFMyNTYiIH0.eyJzdWIiOiIxIiwiZXhwIjoxfQ.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg",
    ],
)
def test_tokens_are_redacted_however_they_are_encoded(line: str) -> None:
    cleaned = redact(line)
    assert "[REDACTED]" in cleaned
    for part in (*PARTS, "c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"):
        assert part not in cleaned


@pytest.mark.parametrize(
    "line",
    [
        "sqlalchemy.exc.IntegrityError: (sqlite3.IntegrityError) UNIQUE constraint failed\n"
        "[SQL: INSERT INTO messages (id, content) VALUES (?, ?)]\n"
        "[parameters: ('0b1c', 'private words')]\n"
        "(Background on this error at: https://sqlalche.me/e/20/gkpj)",
        "StoreError: append failed: DataError: invalid input for query argument $4: "
        "'private words' (expected str, got int)",
    ],
)
def test_driver_errors_lose_their_parameters(line: str) -> None:
    cleaned = redact(line)
    assert "private words" not in cleaned
    assert "[REDACTED]" in cleaned


def test_plain_lines_keep_their_meaning() -> None:
    line = '127.0.0.1:5 - "GET /chat/rooms/abc/messages?limit=10&before=4 HTTP/1.1" 200'
    assert redact(line) == line
    assert redact("cdn.example.com served a.b.c") == "cdn.example.com served a.b.c"


# SQLite: its drivers are the ones that logged parameters.
pytestmark = [pytest.mark.backends("sqlite"), pytest.mark.server_env({"IEUM_LOG_LEVEL": "DEBUG"})]


async def test_debug_logs_hold_no_message_text_and_no_token(
    server: ServerProcess, couple: dict[str, str]
) -> None:
    texts = [f"private-{uuid.uuid4().hex}" for _ in range(2)]
    async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as http:
        response = await http.post(
            f"/chat/rooms/{couple['couple']}/messages",
            json={"type": "TEXT", "content": texts[0], "tempId": "rest-1"},
            headers={"Authorization": f"Bearer {couple['ta']}"},
        )
        assert response.status_code == 201, response.text
    for url in (
        f"{server.ws_url}?%74oken={couple['tb']}",
        f"{server.ws_url}?token={encoded(couple['tb'], '%2E')}",
    ):
        client = await StompTestClient.open(url)
        await client.send("CONNECT", {"accept-version": "1.2", "host": "ieum"})
        await client.expect("CONNECTED")  # the handshake's token was taken
        await client.close()
    client = await StompTestClient.connected(server.ws_url, couple["tb"])
    body = json.dumps({"type": "TEXT", "content": texts[1], "tempId": "ws-1"})
    destination = f"/app/chat/{couple['couple']}"
    await client.send("SEND", {"destination": destination, "receipt": "r"}, body)
    await client.receipt("r")
    await client.close()
    session = f"sid-{uuid.uuid4().hex}"
    async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as http:
        assert (await http.post(f"/ws/chat/000/{session}/xhr")).text == "o\n"
        sent = await http.post(f"/ws/chat/000/{session}/xhr_send", content=b'["\\n"]')
        assert sent.status_code == 204
    await asyncio.sleep(0.3)
    log_text = server.log_text()
    assert " DEBUG " in log_text  # the level did take
    assert "/ws/chat/000/[REDACTED]/xhr_send" in log_text  # the access log did run
    assert session not in log_text
    for text in texts:
        assert text not in log_text
    for token in (couple["ta"], couple["tb"]):
        for part in token.split("."):
            assert part not in log_text
