"""A subscription delivers chat messages in seq order, each once, across replays and gaps."""

from __future__ import annotations

import uuid
from typing import Any

from ieum_chat.gateway.connection import MAX_HELD, _Subscription


class Recorder:
    """Stands in for the connection: records what the subscription asks of it."""

    def __init__(self) -> None:
        self.pushed: list[bytes] = []
        self.catch_ups = 0
        self.overflows = 0

    def push_message(self, destination: str, sub_id: str, body: bytes) -> None:
        self.pushed.append(body)

    def catch_up(self, sub: Any) -> None:
        self.catch_ups += 1
        sub.catching_up = True

    def overflow(self) -> None:
        self.overflows += 1


def make(last_seq: int = 0) -> tuple[_Subscription, Recorder]:
    conn = Recorder()
    sub = _Subscription(conn, "s1", "/topic/couple/x", uuid.uuid4())  # type: ignore[arg-type]
    sub.last_seq = last_seq
    sub.catching_up = False
    return sub, conn


def body(seq: int) -> bytes:
    return b"m%d" % seq


def test_in_order_messages_pass_and_duplicates_drop() -> None:
    sub, conn = make(last_seq=4)
    for seq in (5, 6, 6, 3, 7):
        sub.deliver(seq, body(seq))
    assert conn.pushed == [b"m5", b"m6", b"m7"]
    assert sub.last_seq == 7


def test_events_without_seq_always_pass() -> None:
    sub, conn = make(last_seq=2)
    sub.deliver(0, b"typing")
    sub.deliver(0, b"typing")
    assert conn.pushed == [b"typing", b"typing"]


def test_a_gap_holds_and_asks_for_a_catch_up() -> None:
    sub, conn = make(last_seq=1)
    sub.deliver(3, body(3))
    assert conn.pushed == []
    assert conn.catch_ups == 1
    sub.deliver(2, body(2))  # arrives while catching up: held too
    assert sub.held == [(3, b"m3"), (2, b"m2")]


def test_release_after_catch_up_skips_what_the_replay_delivered() -> None:
    sub, conn = make(last_seq=1)
    sub.deliver(3, body(3))
    # The replay (database) delivered 2 and 3; the held 3 must not repeat.
    sub.last_seq = 3
    sub.catching_up = False
    held, sub.held = sub.held, []
    for seq, data in held:
        sub.deliver(seq, data)
    assert conn.pushed == []
    sub.deliver(4, body(4))
    assert conn.pushed == [b"m4"]


def test_held_messages_are_bounded() -> None:
    sub, conn = make()
    sub.catching_up = True
    for seq in range(MAX_HELD + 5):
        sub.deliver(seq + 1, body(seq + 1))
    assert len(sub.held) == MAX_HELD
    assert conn.overflows == 5
