"""Webhooks to the app's backend, with a real server and a real HTTP receiver: every change
of a couple's stream (message.created, message.edited, message.unsent, message.read) in seq
order, then couple.dissolved; user.erased for a deleted account; each signed, each with an id
that a retry repeats; a receiver that is down or answers 500 gets everything afterwards, in
order; a server killed with events owed sends them after it starts again."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.fixtures import SERVER_ENV
from tests.support.server import Cli, ServerProcess
from tests.support.webhook_receiver import WebhookReceiver, verify_signature

SECRET = "whsec-test-0123456789abcdef"
ADMIN_KEY = "backend:admin-key-0123456789abcdef"
Couple = dict[str, str]


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    hooks = WebhookReceiver().up()
    try:
        yield hooks
    finally:
        hooks.down()


def webhook_env(receiver: WebhookReceiver) -> dict[str, str]:
    return {
        **SERVER_ENV,
        "IEUM_WEBHOOK_URL": receiver.url,
        "IEUM_WEBHOOK_SECRET": SECRET,
        "IEUM_DELIVERY_RETRY_MAX": "0.5",
        "IEUM_ADMIN_API_KEYS": ADMIN_KEY,
    }


@pytest.fixture(scope="module")
def hooked(
    cli: Cli, receiver: WebhookReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("log") / "server.log"
    proc = ServerProcess(cli, log, extra_env=webhook_env(receiver)).start()
    try:
        yield proc
    finally:
        proc.stop()


def of_couple(events: list[dict[str, Any]], couple: Couple) -> list[dict[str, Any]]:
    """The couple's events in the order they were first accepted (a retry repeats an id)."""
    seen: dict[str, dict[str, Any]] = {}
    for event in events:
        if event["data"].get("coupleId") == couple["couple"] and event["id"] not in seen:
            seen[event["id"]] = event
    return list(seen.values())


def rest(server: ServerProcess, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.http_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def send_texts(server: ServerProcess, couple: Couple, texts: list[str]) -> list[dict[str, Any]]:
    with rest(server, couple["ta"]) as http:
        sent = []
        for i, text in enumerate(texts):
            response = http.post(
                f"/chat/rooms/{couple['couple']}/messages",
                json={"type": "TEXT", "content": text, "tempId": f"t-{i}-{uuid.uuid4().hex[:6]}"},
            )
            assert response.status_code in (200, 201), response.text
            sent.append(response.json())
        return sent


def test_every_change_arrives_signed_in_seq_order(
    hooked: ServerProcess, receiver: WebhookReceiver, couple_pool: Iterator[Couple]
) -> None:
    couple = next(couple_pool)
    before = len({e["id"] for e in receiver.accepted()})
    first, second, third = send_texts(hooked, couple, ["one", "two", "three"])
    room = f"/chat/rooms/{couple['couple']}"
    with rest(hooked, couple["ta"]) as a, rest(hooked, couple["tb"]) as b:
        assert a.patch(f"{room}/messages/{first['id']}", json={"content": "uno"}).is_success
        assert b.post(f"{room}/read", json={"upToSeq": third["seq"]}).is_success
        assert a.post(f"{room}/messages/{second['id']}/unsend", json={}).is_success
        # a reaction is in the stream but not a webhook type
        assert b.post(f"{room}/messages/{first['id']}/reactions/❤️").is_success
    events = of_couple(receiver.wait_for(before + 6), couple)
    assert [e["type"] for e in events] == [
        "message.created",
        "message.created",
        "message.created",
        "message.edited",
        "message.read",
        "message.unsent",
    ]
    seqs = [e["data"]["seq"] for e in events]
    assert seqs == sorted(seqs)
    # a message is as it was read: its asOfSeq says which later changes it shows already
    created = [e["data"] for e in events[:3]]
    assert created[0]["content"] == ("uno" if created[0]["asOfSeq"] >= seqs[3] else "one")
    assert created[1]["content"] == (None if created[1]["asOfSeq"] >= seqs[5] else "two")
    assert created[2]["content"] == "three"
    assert events[3]["data"]["content"] == "uno"
    assert events[4]["data"]["readerId"] == couple["b"]
    assert events[5]["data"]["messageId"] == second["id"]
    assert len({e["id"] for e in events}) == 6
    ours = [r for r in receiver.received if r.event["data"].get("coupleId") == couple["couple"]]
    assert all(verify_signature(SECRET, r) for r in ours)
    assert all(r.headers["content-type"] == "application/json" for r in ours)
    assert not verify_signature("another-secret", ours[0])
    assert all(e["createdAt"] for e in events)


def test_a_receiver_answering_500_gets_everything_afterwards_in_order(
    hooked: ServerProcess, receiver: WebhookReceiver, couple_pool: Iterator[Couple]
) -> None:
    couple = next(couple_pool)
    before = len({e["id"] for e in receiver.accepted()})
    start = len(receiver.received)
    receiver.answer([500, 503, 500, 502])
    send_texts(hooked, couple, [f"m{i}" for i in range(5)])
    events = of_couple(receiver.wait_for(before + 5), couple)
    assert [e["data"]["content"] for e in events] == [f"m{i}" for i in range(5)]
    refused = [r for r in receiver.received[start:] if r.status >= 500]
    assert len(refused) == 4
    # a retry repeats the id it was refused with
    assert {r.event["id"] for r in refused} <= {e["id"] for e in events}


def test_a_receiver_that_was_down_gets_everything_when_back(
    hooked: ServerProcess, receiver: WebhookReceiver, couple_pool: Iterator[Couple]
) -> None:
    couple = next(couple_pool)
    before = len({e["id"] for e in receiver.accepted()})
    receiver.down()
    try:
        send_texts(hooked, couple, [f"while down {i}" for i in range(4)])
    finally:
        receiver.up()
    events = of_couple(receiver.wait_for(before + 4), couple)
    assert [e["data"]["content"] for e in events] == [f"while down {i}" for i in range(4)]


def test_dissolution_comes_after_the_couples_messages_and_deletion_is_told(
    hooked: ServerProcess, receiver: WebhookReceiver, couple_pool: Iterator[Couple]
) -> None:
    couple = next(couple_pool)
    other = next(couple_pool)
    before = len({e["id"] for e in receiver.accepted()})
    send_texts(hooked, couple, ["last words"])
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=hooked.http_url, headers=admin, timeout=10) as http:
        assert http.post(f"/admin/v1/couples/{couple['couple']}/dissolve").is_success
        assert http.delete(f"/admin/v1/users/{other['a']}").is_success
    events = receiver.wait_for(before + 4)
    ours = of_couple(events, couple)
    assert [e["type"] for e in ours] == ["message.created", "couple.dissolved"]
    assert sorted(ours[1]["data"]["userIds"]) == sorted([couple["a"], couple["b"]])
    theirs = of_couple(events, other)
    assert [e["type"] for e in theirs] == ["couple.dissolved"]
    told = [e for e in events if e["type"] == "user.erased" and e["data"]["userId"] == other["a"]]
    assert len({e["id"] for e in told}) == 1


def test_events_owed_when_the_server_is_killed_are_sent_after_it_restarts(
    cli: Cli,
    receiver: WebhookReceiver,
    couple_pool: Iterator[Couple],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    couple = next(couple_pool)
    log: Path = tmp_path_factory.mktemp("log") / "killed.log"
    env = webhook_env(receiver)
    before = len({e["id"] for e in receiver.accepted()})
    receiver.down()
    try:
        server = ServerProcess(cli, log, extra_env=env).start()
        send_texts(server, couple, ["owed 0", "owed 1"])
        server.stop(signal.SIGKILL)
    finally:
        receiver.up()
    again = ServerProcess(cli, log, extra_env=env).start()
    try:
        events = of_couple(receiver.wait_for(before + 2), couple)
        assert [e["data"]["content"] for e in events] == ["owed 0", "owed 1"]
    finally:
        again.stop()
