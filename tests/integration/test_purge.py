"""Erasure after a couple ends, with real server processes on SQLite and PostgreSQL: a couple
chats (texts, an edit, a reaction, read marks, an uploaded image), is dissolved through the
service API, and once the retention period is over the purge leaves no trace of it in any
table or upload (the local folder, or an S3 bucket), and nothing of another couple goes with
it. ``ieum-chat purge --dry-run``
lists and erases nothing; ``ieum-chat purge`` erases; and servers run it on their own
schedule, one node at a time.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from ieum_chat.store import normalize_url
from ieum_chat.store.schema import metadata
from tests.support.fixtures import FAKE_KEY_ID, FAKE_SECRET, SERVER_ENV
from tests.support.server import Cli, ServerProcess
from tests.support.uploads import png_bytes

KEY = "p" * 32
# A real PNG (the upload is decoded); the marker after its end is kept with it.
PNG = png_bytes()
Couple = dict[str, str]

pytestmark = pytest.mark.server_env({"IEUM_ADMIN_API_KEYS": KEY})


@pytest.fixture
def nodes(
    cli: Cli, uploads_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[ServerProcess]]:
    """Two nodes that purge every second with no retention: each purge is theirs to run.
    Stopped after the test that asks for them: left running, they erased a couple another
    test dissolved (3 s after, their IEUM_UPLOAD_TTL) before that test's own purge ran."""
    env = {
        **SERVER_ENV,
        "IEUM_ADMIN_API_KEYS": KEY,
        "IEUM_UPLOAD_DIR": str(uploads_dir),
        "IEUM_PURGE_INTERVAL": "1",
        "IEUM_DISSOLVED_RETENTION_DAYS": "0",
        "IEUM_UPLOAD_TTL": "3",  # the purge waits for the couple's upload URLs to expire
    }
    logs = tmp_path_factory.mktemp("logs")
    started: list[ServerProcess] = []
    try:
        for name in ("one", "two"):
            started.append(ServerProcess(cli, logs / f"{name}.log", extra_env=env).start())
        yield started
    finally:
        for node in started:
            node.stop()


async def chat_and_upload(http: httpx.AsyncClient, couple: Couple, secret: str) -> str:
    """Messages, a change of each kind and an uploaded image; the image's bytes' marker."""
    room = f"/chat/rooms/{couple['couple']}"
    ta = {"Authorization": f"Bearer {couple['ta']}"}
    tb = {"Authorization": f"Bearer {couple['tb']}"}
    sent = await http.post(f"{room}/messages", json={"type": "TEXT", "content": secret}, headers=ta)
    assert sent.status_code == 201, sent.text
    message_id = sent.json()["id"]
    edit = await http.patch(
        f"{room}/messages/{message_id}", json={"content": secret + "!"}, headers=ta
    )
    assert edit.status_code == 200
    assert (
        await http.post(f"{room}/messages/{message_id}/reactions/❤️", headers=tb)
    ).status_code == 200
    assert (await http.post(f"{room}/read", json={"upToSeq": 10}, headers=tb)).status_code == 200
    assert (await http.delete(f"{room}/messages/{message_id}", headers=tb)).status_code == 204
    marker = f"{secret}-image".encode()
    image = PNG + marker
    ticket = await http.post(
        f"{room}/uploads", json={"contentType": "image/png", "size": len(image)}, headers=ta
    )
    put = await http.put(
        ticket.json()["uploadUrl"], content=image, headers=ticket.json()["headers"]
    )
    assert put.status_code == 201, put.text
    photo = {"type": "IMAGE", "imageUrl": ticket.json()["imageUrl"], "content": secret}
    assert (await http.post(f"{room}/messages", json=photo, headers=ta)).status_code == 201
    return marker.decode()


async def traces(database_url: str, uploads_dir: Path, needle: str) -> list[str]:
    """Where ``needle`` (a text, or an id with or without dashes) is still found: every row of
    every table, every file under the uploads folder (names and bytes)."""
    forms = {needle, needle.replace("-", "")}
    found: list[str] = []
    engine = create_async_engine(normalize_url(database_url))
    try:
        async with engine.connect() as conn:
            for table in metadata.sorted_tables:
                for row in await conn.execute(select(table)):
                    text = " ".join(str(v) for v in row) + " ".join(
                        v.hex for v in row if isinstance(v, uuid.UUID)
                    )
                    if any(f in text for f in forms) and table.name != "directory_changes":
                        found.append(f"{table.name}: {text[:120]}")
    finally:
        await engine.dispose()
    return found + await asyncio.to_thread(_files_holding, uploads_dir, forms)


def _files_holding(folder: Path, forms: set[str]) -> list[str]:
    return [
        str(path)
        for path in folder.rglob("*")
        if any(f in str(path) for f in forms)
        or (path.is_file() and any(f.encode() in path.read_bytes() for f in forms))
    ]


async def dissolve(http: httpx.AsyncClient, couple_id: str) -> None:
    answer = await http.post(
        f"/admin/v1/couples/{couple_id}/dissolve", headers={"Authorization": f"Bearer {KEY}"}
    )
    assert answer.status_code == 200, answer.text


async def test_the_cli_purge_erases_every_trace_and_nothing_else(
    server: ServerProcess,
    http: httpx.AsyncClient,
    cli: Cli,
    database_url: str,
    uploads_dir: Path,
) -> None:
    gone, kept = cli.seed(2)
    secret, other = f"비밀-{uuid.uuid4().hex}", f"남의-{uuid.uuid4().hex}"
    marker = await chat_and_upload(http, gone, secret)
    await chat_and_upload(http, kept, other)
    assert await traces(database_url, uploads_dir, secret)  # the needle is findable

    purge = Cli({**cli.env, "IEUM_UPLOAD_DIR": str(uploads_dir)})
    # Not dissolved yet: nothing to purge, even with no retention at all.
    now = Cli({**purge.env, "IEUM_DISSOLVED_RETENTION_DAYS": "0", "IEUM_UPLOAD_TTL": "1"})
    assert "would erase 0 couples and 0 accounts" in now.run("purge", "--dry-run").stdout

    await dissolve(http, gone["couple"])
    # Within the retention period (30 days by default) nothing goes, nor while an upload
    # URL handed out before the dissolution may still be used (IEUM_UPLOAD_TTL).
    assert (
        "would erase 0 couples"
        in Cli({**now.env, "IEUM_UPLOAD_TTL": "900"}).run("purge", "--dry-run").stdout
    )
    await asyncio.sleep(1.1)
    assert "erased 0 couples" in purge.run("purge").stdout
    dry = now.run("purge", "--dry-run").stdout
    assert f"would erase couple {gone['couple']}" in dry
    assert "2 messages, 3 events, 1 hides" in dry
    assert await traces(database_url, uploads_dir, secret)  # a dry run erases nothing

    done = now.run("purge").stdout
    assert f"erased couple {gone['couple']}" in done
    assert "2 files" in done  # the image and its thumbnail
    for needle in (secret, marker, gone["couple"]):
        assert await traces(database_url, uploads_dir, needle) == [], needle
    # The members' accounts were not deleted: they stay (and may pair again).
    assert cli.run("token", gone["a"]).returncode == 0

    # The other couple is whole.
    history = await http.get(
        f"/chat/rooms/{kept['couple']}/messages",
        headers={"Authorization": f"Bearer {kept['ta']}"},
    )
    contents = [m["content"] for m in history.json()["messages"]]
    assert sorted(contents) == sorted([other, other + "!"])  # the IMAGE's caption, the edit
    assert len(await traces(database_url, uploads_dir, other)) >= 3


async def test_servers_purge_on_their_schedule_one_node_at_a_time(
    nodes: list[ServerProcess], cli: Cli, database_url: str, uploads_dir: Path
) -> None:
    [couple] = cli.seed(1)
    secret = f"곧-지워질-{uuid.uuid4().hex}"
    async with httpx.AsyncClient(base_url=nodes[0].http_url, timeout=10) as http:
        marker = await chat_and_upload(http, couple, secret)
        await dissolve(http, couple["couple"])
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while await traces(database_url, uploads_dir, secret):
        assert loop.time() < deadline, "the purge did not run"
        await asyncio.sleep(0.5)
    assert await traces(database_url, uploads_dir, marker) == []
    purged: list[Any] = []
    async with httpx.AsyncClient(timeout=10) as http:
        for node in nodes:
            text = (await http.get(node.http_url + "/metrics")).text
            purged += [
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith('ieum_purged_total{kind="couples"}')
            ]
    assert sum(purged) == 1.0  # erased once, by one of the two


async def test_the_purge_erases_a_couples_files_in_s3(
    server: ServerProcess,
    http: httpx.AsyncClient,
    cli: Cli,
    s3_server: str,
    fake_aws: None,
) -> None:
    """The same purge with the S3 backend (moto's S3 server, over HTTP): the dissolved
    couple's objects go, another couple's and anything not ours stay."""
    import boto3

    gone, kept = cli.seed(2)
    bucket = f"ieum-purge-{uuid.uuid4().hex[:12]}"
    s3 = boto3.session.Session().client("s3", region_name="us-east-1", endpoint_url=s3_server)
    s3.create_bucket(Bucket=bucket)
    keys = {
        "gone": [f"{gone['couple']}/{uuid.uuid4().hex}.png" for _ in range(3)],
        "kept": [f"{kept['couple']}/{uuid.uuid4().hex}.png"],
        "foreign": [f"{gone['couple']}/notes.txt"],  # not a key this server makes
    }
    for key in (k for group in keys.values() for k in group):
        s3.put_object(Bucket=bucket, Key=key, Body=PNG)
    await dissolve(http, gone["couple"])

    purge = Cli(
        {
            **cli.env,
            "IEUM_S3_BUCKET": bucket,
            "IEUM_S3_ENDPOINT_URL": s3_server,
            "IEUM_S3_REGION": "us-east-1",
            "IEUM_DISSOLVED_RETENTION_DAYS": "0",
            "IEUM_UPLOAD_TTL": "1",
            "AWS_ACCESS_KEY_ID": FAKE_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    await asyncio.sleep(1.1)  # the upload URLs handed out before the dissolution expired
    done = purge.run("purge").stdout
    assert f"erased couple {gone['couple']}" in done
    assert "3 files" in done
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert sorted(o["Key"] for o in listed) == sorted(keys["kept"] + keys["foreign"])
