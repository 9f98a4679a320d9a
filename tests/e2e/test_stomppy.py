"""stomp.py 9 ``WSStompConnection`` (it opens with ``STOMP``, not ``CONNECT``)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import stomp

from tests.support.server import ServerProcess

Couple = dict[str, str]


class Collector(stomp.ConnectionListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.errors: list[Any] = []
        self.receipts: list[str] = []
        self.lock = threading.Lock()

    def on_message(self, frame: Any) -> None:
        with self.lock:
            self.messages.append(json.loads(frame.body))

    def on_error(self, frame: Any) -> None:
        with self.lock:
            self.errors.append(frame)

    def on_receipt(self, frame: Any) -> None:
        with self.lock:
            self.receipts.append(frame.headers["receipt-id"])

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for message in self.messages:
                    if predicate(message):
                        return message
            time.sleep(0.02)
        raise AssertionError(f"not seen in {timeout}s; saw {self.messages}")


def open_client(server: ServerProcess, token: str) -> tuple[Any, Collector]:
    conn = stomp.WSStompConnection([("127.0.0.1", server.port)], ws_path="/ws/chat")
    listener = Collector()
    conn.set_listener("collector", listener)
    conn.connect(headers={"Authorization": f"Bearer {token}"}, wait=True)
    return conn, listener


def test_stomppy_members_chat_and_outsider_is_refused(
    server: ServerProcess,
    couple: Couple,
    couple_pool: Any,
) -> None:
    topic = f"/topic/couple/{couple['couple']}"
    dest = f"/app/chat/{couple['couple']}"
    a, got_a = open_client(server, couple["ta"])
    b, got_b = open_client(server, couple["tb"])
    for i, conn in enumerate((a, b)):
        conn.subscribe("/user/queue/errors", id=f"e{i}")
        conn.subscribe(topic, id=f"t{i}", headers={"receipt": f"sub{i}"})
    deadline = time.monotonic() + 5
    while (len(got_a.receipts) < 1 or len(got_b.receipts) < 1) and time.monotonic() < deadline:
        time.sleep(0.02)

    a.send(
        dest,
        json.dumps({"type": "TEXT", "content": "안녕 from stomp.py", "tempId": "py-1"}),
        headers={"receipt": "send-1"},
    )
    msg = got_b.wait_for(lambda m: m.get("tempId") == "py-1")
    assert msg["content"] == "안녕 from stomp.py"
    assert msg["seq"] == 1
    b.send(dest + "/read", json.dumps({"messageIds": [msg["id"]]}))
    receipt = got_a.wait_for(lambda m: m.get("type") == "READ_RECEIPT")
    assert receipt["messageIds"] == [msg["id"]]
    b.send(dest + "/typing", json.dumps({"typing": True}))
    typing = got_a.wait_for(lambda m: m.get("event") == "TYPING")
    assert typing["userId"] == couple["b"]
    assert "send-1" in got_a.receipts

    other = next(couple_pool)
    c, got_c = open_client(server, other["ta"])
    c.subscribe("/user/queue/errors", id="e")
    c.subscribe(topic, id="spy")
    refused = got_c.wait_for(lambda m: m.get("code") == "UNAUTHORIZED")
    assert refused["type"] == "ERROR"
    c.send(dest, json.dumps({"type": "TEXT", "content": "x", "tempId": "py-c"}))
    got_c.wait_for(lambda m: m.get("tempId") == "py-c" and m.get("code") == "UNAUTHORIZED")
    for conn in (a, b, c):
        conn.disconnect()
    assert all(m.get("tempId") != "py-c" for m in got_a.messages)
