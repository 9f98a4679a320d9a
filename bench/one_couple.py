"""Rough throughput of one couple: member A pipelines N messages (a window of W awaiting their
RECEIPT), member B counts deliveries. Prints messages/s from A's first SEND to B's last
delivery, and checks that B saw every seq once, in order.

    python -m bench.one_couple --url ws://127.0.0.1:8080/ws/chat --seed seed.json -n 5000
(``seed.json`` is the output of ``ieum-chat seed --couples 1``.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid

import orjson
from websockets.asyncio.client import ClientConnection, connect

from ieum_chat.stomp import HEARTBEAT, Frame, FrameParser, serialize_frame


async def open_member(url: str, token: str, couple: str) -> tuple[ClientConnection, FrameParser]:
    ws = await connect(f"{url}?token={token}", subprotocols=["v12.stomp"], max_size=None)  # type: ignore[list-item]
    parser = FrameParser(max_frame_size=1 << 20)
    for frame in (
        Frame("CONNECT", (("accept-version", "1.2"), ("heart-beat", "0,0"))),
        Frame(
            "SUBSCRIBE",
            (("id", "0"), ("destination", f"/topic/couple/{couple}"), ("receipt", "sub")),
        ),
    ):
        await ws.send(serialize_frame(frame).decode())
    seen = 0
    while seen < 2:
        parser.receive_data((await ws.recv()).encode())  # type: ignore[union-attr]
        while (item := parser.next_frame()) is not None:
            if item is not HEARTBEAT:
                seen += 1
    return ws, parser


async def run(url: str, row: dict[str, str], count: int, window: int) -> dict[str, float]:
    couple = row["couple"]
    a, a_parser = await open_member(url, row["ta"], couple)
    b, b_parser = await open_member(url, row["tb"], couple)
    done = asyncio.Event()
    seqs: list[int] = []

    async def read_b() -> None:
        while len(seqs) < count:
            b_parser.receive_data((await b.recv()).encode())  # type: ignore[union-attr]
            while (item := b_parser.next_frame()) is not None:
                if isinstance(item, Frame) and item.command == "MESSAGE":
                    body = orjson.loads(item.body)
                    if "seq" in body:
                        seqs.append(body["seq"])
        done.set()

    credits = asyncio.Semaphore(window)

    async def read_a() -> None:
        while not done.is_set():
            a_parser.receive_data((await a.recv()).encode())  # type: ignore[union-attr]
            while (item := a_parser.next_frame()) is not None:
                if isinstance(item, Frame) and item.command == "RECEIPT":
                    credits.release()

    reader_b = asyncio.create_task(read_b())
    reader_a = asyncio.create_task(read_a())
    started = time.perf_counter()
    dest = f"/app/chat/{couple}"
    run_id = uuid.uuid4().hex[:8]
    for i in range(count):
        await credits.acquire()
        body = orjson.dumps({"type": "TEXT", "content": f"bench {i}", "tempId": f"{run_id}-{i}"})
        frame = Frame("SEND", (("destination", dest), ("receipt", str(i))), body)
        await a.send(serialize_frame(frame).decode())
    await asyncio.wait_for(done.wait(), 120)
    elapsed = time.perf_counter() - started
    reader_a.cancel()
    await reader_b
    await a.close()
    await b.close()
    ordered = seqs == sorted(seqs) and len(set(seqs)) == len(seqs) == count
    return {
        "messages": count,
        "seconds": round(elapsed, 3),
        "messages_per_s": round(count / elapsed),
        "in_order_once": ordered,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="ws://127.0.0.1:8080/ws/chat")
    parser.add_argument("--seed", required=True, help="JSON from `ieum-chat seed --couples 1`")
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("--window", type=int, default=32, help="SENDs awaiting RECEIPT")
    args = parser.parse_args()
    with open(args.seed) as fh:
        row = json.load(fh)[0]
    print(json.dumps(asyncio.run(run(args.url, row, args.n, args.window))))


if __name__ == "__main__":
    main()
