"""Threat: taking over another user's SockJS session. A SockJS session is addressed by the ids
in its URL (``/ws/chat/{server}/{session}/xhr``); whoever knew them could post STOMP frames
into it (stored as messages of the session's user) and read its frames, with no token, a
forged one or their own. Session ids also went to the access log, where anyone reading logs
could pick them up.

Refused by: each session is bound to its user, the one of the creating request's token or,
when that came without one, the one of the STOMP CONNECT. Every later request of the session
(``gateway.sockjs``, through the SockJS app's per-session check) must carry credentials of
that user; one that does not is answered 404, as if the session did not exist (Spring does
the same). A session created without a token keeps taking token-less requests (sockjs-client
repeats the URL it was given), but never another user's token. Session ids are redacted from
every log line.
"""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest

from ieum_chat.observability.logging import redact
from ieum_chat.sockjs import Channel, SessionInfo, SockJSApp
from tests.support.sockjs_polling import PollingStomp, connect_frame, stomp
from tests.unit.api.conftest import Api


def text(couple: str, content: str) -> str:
    body = json.dumps({"type": "TEXT", "content": content, "tempId": content})
    return stomp("SEND", {"destination": f"/app/chat/{couple}", "receipt": content}, body)


async def connected(api: Api, session: str, query: str, token: str | None = None) -> PollingStomp:
    client = PollingStomp(api.client, session, query)
    assert (await client.open()).text == "o\n"
    assert (await client.send(connect_frame(token))).status_code == 204
    assert (await client.frame()).command == "CONNECTED"
    return client


async def test_a_session_created_with_a_token_takes_only_that_users_requests(api: Api) -> None:
    owner = await connected(api, "s-token", f"?token={api.token(api.a)}")
    couple = str(api.couple.id)
    for query in ("", "?token=forged", f"?token={api.token(api.b)}"):
        refused = await owner.send(text(couple, f"intruder{len(query)}"), query=query)
        assert refused.status_code == 404, query
        assert (await owner.poll(query=query)).status_code == 404, query
    headers = {"Authorization": f"Bearer {api.token(api.b)}"}
    url = f"{owner.url}/xhr_send"
    refused = await api.client.post(url, content=json.dumps([text(couple, "h")]), headers=headers)
    assert refused.status_code == 404
    assert await api.db.get_messages(api.couple.id) == []
    # The owner, with the token of the URL it was given, goes on as before.
    assert (await owner.send(text(couple, "mine"))).status_code == 204
    assert (await owner.frame()).command == "RECEIPT"
    [stored] = await api.db.get_messages(api.couple.id)
    assert (stored.sender_id, stored.content) == (api.a.id, "mine")


async def test_a_session_created_without_a_token_belongs_to_its_connect_user(api: Api) -> None:
    owner = await connected(api, "s-connect", "", token=api.token(api.a))
    couple = str(api.couple.id)
    for query in ("?token=forged", f"?token={api.token(api.b)}"):
        assert (await owner.send(text(couple, "intruder"), query=query)).status_code == 404
        assert (await owner.poll(query=query)).status_code == 404
    mine = await owner.send(text(couple, "mine"), query=f"?token={api.token(api.a)}")
    assert mine.status_code == 204
    assert (await owner.frame()).command == "RECEIPT"  # the token-less URL polls on
    [stored] = await api.db.get_messages(api.couple.id)
    assert (stored.sender_id, stored.content) == (api.a.id, "mine")


async def test_racing_creators_with_two_users_tokens_get_one_session(api: Api) -> None:
    url = "/ws/chat/000/s-race/xhr"
    responses = await asyncio.gather(
        api.client.post(f"{url}?token={api.token(api.a)}"),
        api.client.post(f"{url}?token={api.token(api.b)}"),
    )
    assert sorted(r.status_code for r in responses) == [200, 404]


@pytest.mark.parametrize(
    "line",
    [
        '127.0.0.1:5 - "POST /ws/chat/000/Secret-Sid_1/xhr_send?t=1 HTTP/1.1" 204',
        '127.0.0.1:5 - "POST /ws/chat/123/Secret-Sid_1/xhr HTTP/1.1" 200',
        '127.0.0.1:5 - "GET /ws/chat/000/Secret-Sid_1/eventsource HTTP/1.1" 200',
        '127.0.0.1:5 - "GET /ws/chat/000/Secret-Sid_1/jsonp?c=cb HTTP/1.1" 200',
        '127.0.0.1:5 - "WebSocket /ws/chat/000/Secret-Sid_1/websocket" [accepted]',
    ],
)
def test_access_lines_never_hold_a_session_id(line: str) -> None:
    cleaned = redact(line)
    assert "Secret-Sid_1" not in cleaned
    assert "[REDACTED]" in cleaned
    raw = '127.0.0.1:5 - "WebSocket /ws/chat/websocket" [accepted]'
    assert redact(raw) == raw


async def test_the_sockjs_component_never_logs_a_session_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(channel: Channel) -> None:
        raise RuntimeError("the application failed")

    async def endpoint(info: SessionInfo) -> object:
        return broken

    app = SockJSApp(endpoint, prefix="/s")  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app)
    with caplog.at_level(logging.INFO, logger="ieum_chat.sockjs"):
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.post("/s/000/Secret-Sid_2/xhr")).text == "o\n"
            closed = await client.post("/s/000/Secret-Sid_2/xhr")
            assert closed.text.startswith("c[1011")
        await app.aclose()
    assert "handler failed" in caplog.text
    assert "Secret-Sid_2" not in caplog.text
