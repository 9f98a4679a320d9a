"""Threat: a user or a couple is deleted (an account closed, a couple split up, an abuser
removed by an operator), but the server keeps serving them from what it cached: their open
sessions keep reading and writing the couple's chat, and new ones are admitted for a while.

Every node follows the database's directory change feed (filled by triggers, so a change made
by SQL straight into the database counts as much as one made by the server), so within 2 s: the
open sessions of a deleted user get STOMP ERROR ``ACCOUNT_DELETED`` and close; sessions
subscribed to a deleted couple, or to one their user was taken out of, get a SYSTEM
``COUPLE_DISSOLVED`` event, then ERROR ``COUPLE_DISSOLVED``, and close; and a new CONNECT
(deleted user), SUBSCRIBE or SEND (deleted couple) is refused. Two server nodes share the
database, without Redis (the feed is read from the database itself); each member is on a
different one.

Refused by: the triggers of revision 0005 (``directory_changes``), ``chat.directory``
(``DirectoryWatcher``: reads the feed by position, drops the cached rows, reports a
``Revocation``) and ``Gateway.revoke`` (ends the matching sessions).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Uuid, bindparam, text
from sqlalchemy.ext.asyncio import create_async_engine

from ieum_chat.store import normalize_url
from tests.support.fixtures import SERVER_ENV
from tests.support.server import Cli, ServerProcess
from tests.support.stomp_client import StompTestClient, frame_json

Couple = dict[str, str]
PROMISE = 2.0  # seconds within which every node acts on a deletion


@pytest.fixture(scope="module")
def second(cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Another node on the same database."""
    log_path: Path = tmp_path_factory.mktemp("log") / "second.log"
    proc = ServerProcess(cli, log_path, extra_env=SERVER_ENV).start()
    try:
        yield proc
    finally:
        proc.stop()


async def sql(database_url: str, *statements: str, **ids: str) -> None:
    """Another process's SQL, in one transaction: no code of the server's runs."""
    engine = create_async_engine(normalize_url(database_url))
    values = {k: uuid.UUID(v) for k, v in ids.items()}
    try:
        async with engine.begin() as conn:
            for statement in statements:
                names = [k for k in values if f":{k}" in statement]
                query = text(statement).bindparams(*(bindparam(k, type_=Uuid()) for k in names))
                await conn.execute(query, {k: values[k] for k in names})
    finally:
        await engine.dispose()


async def member(url: str, token: str, couple: Couple) -> StompTestClient:
    """A connected member, subscribed to errors and the couple (its membership now cached)."""
    client = await StompTestClient.connected(url, token)
    await client.subscribe("/user/queue/errors")
    await client.subscribe(f"/topic/couple/{couple['couple']}")
    return client


async def ended_with(client: StompTestClient, code: str) -> None:
    """The session ends with ERROR ``code`` within the promise, after the SYSTEM event
    COUPLE_DISSOLVED when its couple went. Chat messages of the couple may come first: a
    member on another node (no broker between the two here) gets the message sent right
    after its SUBSCRIBE when its replay reads the history after it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PROMISE
    frame = await client.next_frame(timeout=PROMISE)
    while frame.command == "MESSAGE" and frame_json(frame).get("type") == "TEXT":
        frame = await client.next_frame(timeout=max(0.0, deadline - loop.time()))
    if code == "COUPLE_DISSOLVED":
        assert frame.command == "MESSAGE", frame
        assert frame_json(frame)["event"] == "COUPLE_DISSOLVED"
        frame = await client.next_frame(timeout=max(0.0, deadline - loop.time()))
    assert frame.command == "ERROR", frame
    assert frame.get("message") == code
    assert frame_json(frame)["code"] == code
    assert await client.closed()


def chat(content: str) -> dict[str, Any]:
    return {"type": "TEXT", "content": content, "tempId": uuid.uuid4().hex}


DELETE_COUPLE = (
    "DELETE FROM messages WHERE couple_id = :c",
    "DELETE FROM couples WHERE id = :c",
)


async def test_a_deleted_couple_loses_its_sessions_and_its_destinations(
    server: ServerProcess, second: ServerProcess, couple: Couple, database_url: str
) -> None:
    a = await member(server.ws_url, couple["ta"], couple)
    b = await member(second.ws_url, couple["tb"], couple)
    dest = f"/app/chat/{couple['couple']}"
    await a.send("SEND", {"destination": dest, "receipt": "before"}, chat("still a couple"))
    if not await a.receipt("before"):
        await a.expect_message()  # its own message, after the RECEIPT

    await sql(database_url, *DELETE_COUPLE, c=couple["couple"])
    await ended_with(a, "COUPLE_DISSOLVED")
    await ended_with(b, "COUPLE_DISSOLVED")

    # The users still exist: they may connect, but the couple's destinations are closed.
    again = await StompTestClient.connected(server.ws_url, couple["ta"])
    await again.subscribe("/user/queue/errors")
    await again.send(
        "SUBSCRIBE", {"id": "s", "destination": f"/topic/couple/{couple['couple']}", "receipt": "r"}
    )
    assert (await again.expect_message())["code"] == "UNAUTHORIZED"
    await again.send("SEND", {"destination": dest, "receipt": "after"}, chat("anyone there?"))
    assert (await again.expect_message())["code"] == "UNAUTHORIZED"
    await again.close()


async def test_a_deleted_user_loses_every_session_and_cannot_connect(
    server: ServerProcess, second: ServerProcess, couple: Couple, database_url: str
) -> None:
    a_here = await member(server.ws_url, couple["ta"], couple)
    a_there = await StompTestClient.connected(second.ws_url, couple["ta"])  # no subscription
    b = await member(second.ws_url, couple["tb"], couple)

    await sql(
        database_url,
        *DELETE_COUPLE,
        "DELETE FROM users WHERE id = :a",
        c=couple["couple"],
        a=couple["a"],
    )
    await ended_with(a_here, "ACCOUNT_DELETED")
    await ended_with(a_there, "ACCOUNT_DELETED")
    await ended_with(b, "COUPLE_DISSOLVED")

    for url in (server.ws_url, second.ws_url):
        client = await StompTestClient.open(url)
        await client.send(
            "CONNECT",
            {"accept-version": "1.2", "host": "ieum", "Authorization": f"Bearer {couple['ta']}"},
        )
        frame = await client.expect("ERROR")
        assert frame_json(frame)["code"] == "AUTH_FAILED"
        assert await client.closed()


async def test_a_member_taken_out_of_a_couple_loses_it_and_the_other_stays(
    server: ServerProcess, second: ServerProcess, cli: Cli, database_url: str
) -> None:
    [couple] = cli.seed(1)
    newcomer = cli.run("user", "add", "--name", "newcomer").stdout.strip()
    a = await member(server.ws_url, couple["ta"], couple)
    b = await member(second.ws_url, couple["tb"], couple)

    await sql(
        database_url,
        "UPDATE couples SET user1_id = :n WHERE id = :c",
        n=newcomer,
        c=couple["couple"],
    )
    await ended_with(a, "COUPLE_DISSOLVED")
    dest = f"/app/chat/{couple['couple']}"
    await b.send("SEND", {"destination": dest, "receipt": "still-here"}, chat("still here"))
    await b.receipt("still-here")
    await b.close()
