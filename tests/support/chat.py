"""Chat traffic for tests that drive running servers: a TEXT message's body, and both members
of a couple sending at once."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from tests.support.stomp_client import StompTestClient

__all__ = ["both_send_at_once", "text"]


def text(content: str, temp_id: str | None = None) -> dict[str, Any]:
    return {"type": "TEXT", "content": content, "tempId": temp_id or uuid.uuid4().hex}


async def both_send_at_once(
    a: StompTestClient, b: StompTestClient, couple: str, count: int = 100
) -> None:
    """``a`` and ``b``, the members of ``couple``, subscribe to its topic from seq 0 and then
    send ``count`` messages each, both at once. Each of them must get all ``2 * count`` once:
    seqs 1 to ``2 * count`` in order, each sender's messages in the order sent, nothing more."""
    for client in (a, b):
        await client.subscribe(f"/topic/couple/{couple}", {"x-resume-after-seq": "0"})
    dest = f"/app/chat/{couple}"

    async def burst(client: StompTestClient, name: str) -> None:
        for i in range(count):
            await client.send("SEND", {"destination": dest}, text(f"{name}{i}"))

    await asyncio.gather(burst(a, "a"), burst(b, "b"))
    for client in (a, b):
        got = [await client.expect_message(timeout=10) for _ in range(2 * count)]
        assert [m["seq"] for m in got] == list(range(1, 2 * count + 1))
        for name in ("a", "b"):
            assert [m["content"] for m in got if m["content"][0] == name] == [
                f"{name}{i}" for i in range(count)
            ]
        await client.assert_silent(0.3)
