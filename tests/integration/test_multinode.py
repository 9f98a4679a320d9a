"""Three ``ieum-chat serve`` nodes sharing PostgreSQL and Redis, with real nginx in front
(configured with the shipped deploy/nginx/ieum-chat.conf): members connected to different
nodes chat, over raw WebSocket and SockJS xhr-streaming, exactly as on one node."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.support.chat import both_send_at_once, text
from tests.support.fixtures import SERVER_ENV
from tests.support.nginx import Cluster, running_cluster
from tests.support.polling import eventually
from tests.support.stomp_client import StompTestClient

pytestmark = pytest.mark.postgres

Couple = dict[str, str]
# Every test uses a fresh couple, so "everything after seq 0" is "everything from now on",
# without racing the first SEND against the start of the subscription.
RESUME_ALL = {"x-resume-after-seq": "0"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    workdir: Path = tmp_path_factory.mktemp("multinode")
    with running_cluster(workdir, env={**SERVER_ENV, "IEUM_PRESENCE_TTL": "2"}) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def couples(cluster: Cluster) -> Iterator[Couple]:
    return iter(cluster.cli.seed(20))


@pytest.fixture
def couple(couples: Iterator[Couple]) -> Couple:
    return next(couples)


async def test_members_on_different_nodes_chat_through_nginx(
    cluster: Cluster, couple: Couple
) -> None:
    a, node_a = await cluster.connect(couple["ta"])
    b, node_b = await cluster.connect(couple["tb"], avoid={node_a})
    assert node_a != node_b
    topic = f"/topic/couple/{couple['couple']}"
    for client in (a, b):
        await client.subscribe(topic, RESUME_ALL)
    dest = f"/app/chat/{couple['couple']}"
    for i in range(50):  # pipelined: receipts come back in order once each is committed
        await a.send("SEND", {"destination": dest, "receipt": f"r{i}"}, text(f"a{i}"))
    early = await a.receipt("r49")  # the messages a read while waiting for its receipts
    got = [await b.expect_message() for _ in range(50)]
    assert [m["seq"] for m in got] == list(range(1, 51))
    assert [m["content"] for m in got] == [f"a{i}" for i in range(50)]
    await b.send("SEND", {"destination": dest, "receipt": "rb"}, text("from b"))
    reply = await b.receipt("rb")
    mine = early + await a.messages_until(lambda m: m.get("content") == "from b")
    assert [m["seq"] for m in mine] == list(range(1, 52))  # a sees its own too, once each
    if not reply:
        reply = await b.messages_until(lambda m: m.get("content") == "from b")
    assert [m["seq"] for m in reply] == [51]

    # Typing and read receipts cross nodes too.
    await b.send("SEND", {"destination": f"{dest}/typing"}, {"typing": True})
    typing = await a.expect_message()
    assert (typing["event"], typing["userId"], typing["typing"]) == ("TYPING", couple["b"], True)
    await a.send("SEND", {"destination": f"{dest}/read", "receipt": "rr"}, {"upToSeq": 51})
    seen = await b.messages_until(lambda m: m.get("type") == "READ_RECEIPT")
    assert seen[-1]["readerId"] == couple["a"]
    assert seen[-1]["seqs"] == [51]
    seen = await a.receipt("rr")
    if not seen:
        seen = await a.messages_until(lambda m: m.get("type") == "READ_RECEIPT")
    assert seen[-1]["type"] == "READ_RECEIPT"
    await a.assert_silent(0.3)
    await b.assert_silent(0.3)
    await a.close()
    await b.close()


async def test_both_members_sending_at_once_from_two_nodes(
    cluster: Cluster, couple: Couple
) -> None:
    """Two nodes commit messages of one couple concurrently: every subscriber still gets
    every seq once, in order (the gateway reorders what crosses nodes out of order)."""
    a, node_a = await cluster.connect(couple["ta"])
    b, _ = await cluster.connect(couple["tb"], avoid={node_a})
    await both_send_at_once(a, b, couple["couple"])
    await a.close()
    await b.close()


async def test_presence_is_announced_once_across_nodes(cluster: Cluster, couple: Couple) -> None:
    b, node_b = await cluster.connect(couple["tb"])
    b.ignore_presence = False
    await b.subscribe(f"/topic/couple/{couple['couple']}", RESUME_ALL)
    phone, node_phone = await cluster.connect(couple["ta"], avoid={node_b})
    event = await b.expect_message()
    assert (event["event"], event["userId"]) == ("USER_CONNECTED", couple["a"])
    browser, node_browser = await cluster.connect(couple["ta"], avoid={node_phone})
    assert len({node_b, node_phone, node_browser}) >= 2
    await b.assert_silent(0.5)  # online already, through another node
    await phone.close()
    await b.assert_silent(0.5)  # still online through the browser's node
    await browser.close()
    event = await b.expect_message()
    assert (event["event"], event["userId"]) == ("USER_DISCONNECTED", couple["a"])
    await b.assert_silent(0.5)
    await b.close()


# -- SockJS xhr-streaming through nginx --------------------------------------------------------


class XhrStreamingClient:
    """A SockJS 0.3 client on the xhr_streaming transport: frames arrive on one long POST,
    and each frame sent is a POST to xhr_send; both must reach the node holding the session,
    which is what the nginx config's session hashing is for."""

    def __init__(self, base: str) -> None:
        self.base = f"{base}/ws/chat/{uuid.uuid4().int % 1000:03d}/{uuid.uuid4().hex}"
        self.http = httpx.AsyncClient(timeout=10)
        self.parser_buffer = b""
        self.frames: asyncio.Queue[str] = asyncio.Queue()
        self.opened = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self._task = asyncio.create_task(self._stream())
        async with asyncio.timeout(5):
            await self.opened.wait()

    async def _stream(self) -> None:
        async with self.http.stream("POST", f"{self.base}/xhr_streaming") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("application/javascript")
            async for line in response.aiter_lines():
                if line == "o":
                    self.opened.set()
                elif line.startswith("a"):
                    for message in orjson.loads(line[1:]):
                        await self.frames.put(message)
                elif line.startswith("c"):
                    return

    async def send(self, command: str, headers: dict[str, str], body: Any = None) -> None:
        raw = b"" if body is None else orjson.dumps(body)
        head = "".join(f"{k}:{v}\n" for k, v in headers.items())
        frame = f"{command}\n{head}\n{raw.decode()}\x00"
        response = await self.http.post(f"{self.base}/xhr_send", content=orjson.dumps([frame]))
        assert response.status_code == 204, response.text

    async def expect(self, command: str, timeout: float = 5.0) -> tuple[dict[str, str], str]:
        while True:
            frame = await asyncio.wait_for(self.frames.get(), timeout)
            if frame.strip("\n") == "":
                continue  # a STOMP heart-beat
            head, _, body = frame.partition("\n\n")
            lines = head.lstrip("\n").split("\n")
            if lines[0] == "MESSAGE" and '"event":"USER_' in body:
                continue  # presence races the test's own traffic
            assert lines[0] == command, frame
            headers = dict(line.split(":", 1) for line in lines[1:])
            return headers, body.rstrip("\x00")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.http.aclose()


async def test_sockjs_xhr_streaming_member_chats_with_a_websocket_member(
    cluster: Cluster, couple: Couple
) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        info = await http.get(f"{cluster.proxy.http_url}/ws/chat/info")
    assert info.status_code == 200
    assert orjson.loads(info.content)["websocket"] is True
    a, _ = await cluster.connect(couple["ta"])
    topic = f"/topic/couple/{couple['couple']}"
    await a.subscribe(topic, RESUME_ALL)
    # Several SockJS sessions: every one needs its xhr_send to reach its stream's node.
    for round_ in range(4):
        b = XhrStreamingClient(cluster.proxy.http_url)
        try:
            await b.open()
            await b.send(
                "CONNECT",
                {"accept-version": "1.2", "heart-beat": "0,0", "passcode": couple["tb"]},
            )
            headers, _ = await b.expect("CONNECTED")
            session = headers["session"]
            await asyncio.to_thread(cluster.node_of, session)
            await b.send(
                "SUBSCRIBE",
                {
                    "id": "s",
                    "destination": topic,
                    "receipt": "sub",
                    "x-resume-after-seq": str(2 * round_),  # two messages a round
                },
            )
            headers, _ = await b.expect("RECEIPT")
            assert headers["receipt-id"] == "sub"
            dest = f"/app/chat/{couple['couple']}"
            await a.send("SEND", {"destination": dest}, text(f"to sockjs {round_}"))
            _, body = await b.expect("MESSAGE")
            assert orjson.loads(body)["content"] == f"to sockjs {round_}"
            await b.send("SEND", {"destination": dest, "receipt": "x"}, text(f"from {round_}"))
            got = await a.messages_until(lambda m, r=round_: m.get("content") == f"from {r}")
            assert got[-1]["senderId"] == couple["b"]
        finally:
            await b.close()
    await a.close()


# -- the proxy itself -----------------------------------------------------------------------


async def test_requests_without_a_sockjs_session_are_spread_over_the_nodes(
    cluster: Cluster,
) -> None:
    marker = uuid.uuid4().hex
    async with httpx.AsyncClient(base_url=cluster.proxy.http_url, timeout=5) as http:
        assert (await http.get("/metrics")).status_code == 403  # scraped per node, not here
        for _ in range(6):
            assert (await http.get("/healthz", headers={"user-agent": marker})).status_code == 200
    log = cluster.proxy.access_log
    await eventually(lambda: log.read_text().count(marker) == 6)
    upstreams = re.findall(rf"{marker}\" upstream=(\S+)", log.read_text())
    assert len(set(upstreams)) == 3  # round-robin: an empty hash key is not one node


async def test_access_log_never_holds_a_token(cluster: Cluster, couple: Couple) -> None:
    client, _ = await cluster.connect(couple["ta"])
    await client.close()
    log = cluster.proxy.access_log

    def logged() -> str:
        return log.read_text() if log.exists() else ""

    await eventually(lambda: "/ws/chat " in logged())
    text_ = logged()
    assert "GET /ws/chat HTTP/1.1" in text_
    assert re.search(r"upstream=127\.0\.0\.1:\d+", text_)
    for secret in (couple["ta"], couple["tb"], "token=", couple["ta"].split(".")[1]):
        assert secret not in text_


async def test_changes_cross_nodes_and_a_hide_reaches_only_its_members_sessions(
    cluster: Cluster, couple: Couple
) -> None:
    """Edits and reactions reach every node once, with their seq; a message one member hid
    for themselves is told to that member's sessions on every node, never to the partner's."""
    a, node_a = await cluster.connect(couple["ta"])
    b_phone, node_b = await cluster.connect(couple["tb"], avoid={node_a})
    b_browser, _ = await cluster.connect(couple["tb"], avoid={node_b})
    topic = f"/topic/couple/{couple['couple']}"
    for client in (a, b_phone, b_browser):
        await client.subscribe("/user/queue/events")
        await client.subscribe(topic, RESUME_ALL)
    dest = f"/app/chat/{couple['couple']}"
    seen: dict[StompTestClient, list[Any]] = {a: [], b_phone: [], b_browser: []}
    await a.send("SEND", {"destination": dest, "receipt": "m"}, text("hello"))
    seen[a] += await a.receipt("m")
    message = (seen[a] or [await a.expect_message()])[0]
    seen[a] = seen[a][1:]
    edit = {"messageId": message["id"], "content": "hello!", "tempId": "e"}
    await a.send("SEND", {"destination": f"{dest}/edit", "receipt": "e"}, edit)
    seen[a] += await a.receipt("e")
    react = {"messageId": message["id"], "emoji": "🫶", "op": "add"}
    await b_phone.send("SEND", {"destination": f"{dest}/react", "receipt": "r"}, react)
    seen[b_phone] += await b_phone.receipt("r")
    for client, read in seen.items():
        if not any(m.get("type") == "REACTION" for m in read):
            read.extend(await client.messages_until(lambda m: m.get("type") == "REACTION"))
        stream = [(m.get("type"), m.get("seq")) for m in read if m.get("type") != "TEXT"]
        assert stream == [("MESSAGE_EDITED", 2), ("REACTION", 3)]
    hide = {"messageId": message["id"]}
    await b_phone.send("SEND", {"destination": f"{dest}/delete", "receipt": "d"}, hide)
    await b_phone.receipt("d")
    for client in (b_phone, b_browser):
        deleted = await client.expect_message()
        assert (deleted["type"], deleted["messageId"]) == ("MESSAGE_DELETED", message["id"])
    await a.assert_silent(0.5)
    for client in (a, b_phone, b_browser):
        await client.close()
