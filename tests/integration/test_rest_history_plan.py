"""A history page deep in 100,000 messages of one couple is an index range scan on both
databases: no sequential scan, no sort, no OFFSET; the plan reads about one page of rows.
The REST endpoint runs exactly this query (page size + 1, to tell whether more exist)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from bench.history import explain_page, seed_history

from ieum_chat.auth import issue_token
from ieum_chat.config import Settings
from ieum_chat.store import Couple, upgrade_schema
from tests.support.fixtures import SERVER_ENV
from tests.support.postgres import create_database, drop_database, require_postgres
from tests.support.server import TEST_SECRET, Cli, ServerProcess

MESSAGES = 100_000


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def big_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('big') / 'big.db'}"
        upgrade_schema(url)
        yield url
        return
    require_postgres()
    url = create_database()
    try:
        upgrade_schema(url)
        yield url
    finally:
        drop_database(url)


@pytest.fixture(scope="module")
def big_couple(big_url: str) -> Couple:
    return asyncio.run(seed_history(big_url, MESSAGES))


@pytest.mark.parametrize("before", [50, MESSAGES // 2, MESSAGES + 1])
async def test_a_page_anywhere_in_100k_messages_is_an_index_range_scan(
    big_url: str, big_couple: Couple, before: int
) -> None:
    plan = await explain_page(big_url, big_couple.id, before)
    print(f"\n{plan}")  # the plan, for the record (pytest -s)
    assert "Seq Scan" not in plan
    assert "SCAN messages" not in plan
    assert "Sort" not in plan
    assert "TEMP B-TREE" not in plan
    if big_url.startswith("postgresql"):
        assert "Index Scan Backward using uq_messages_couple_seq on messages" in plan
        rows = re.search(r"Index Scan Backward.*actual time=\S+ rows=(\d+)", plan)
        assert rows is not None
        assert int(rows.group(1)) <= 51  # one page read, however deep
    else:
        assert re.search(r"SEARCH messages USING INDEX \S+ \(couple_id=\? AND seq<\?\)", plan)


@pytest.fixture(scope="module")
def big_server(
    big_url: str, big_couple: Couple, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    cli = Cli.for_database(big_url)
    log_path: Path = tmp_path_factory.mktemp("log") / "server.log"
    proc = ServerProcess(cli, log_path, extra_env=SERVER_ENV).start()
    try:
        yield proc
    finally:
        proc.stop()


def test_rest_pages_walk_the_whole_history(big_server: ServerProcess, big_couple: Couple) -> None:
    token = issue_token(Settings(jwt_secret=TEST_SECRET), big_couple.user1_id)
    headers = {"Authorization": f"Bearer {token}"}
    path = f"/chat/rooms/{big_couple.id}/messages"
    with httpx.Client(base_url=big_server.http_url, headers=headers, timeout=10) as client:
        deep = client.get(path, params={"before": 101, "limit": 100}).json()
        assert [m["seq"] for m in deep["messages"]] == list(range(100, 0, -1))
        assert deep["hasMore"] is False
        newest = client.get(path, params={"limit": 50}).json()
        assert newest["messages"][0]["seq"] == MESSAGES
        assert newest["nextCursor"] == MESSAGES - 49
        started = time.perf_counter()
        cursor: int | None = newest["nextCursor"]
        pages = 0
        while cursor is not None and pages < 200:
            page = client.get(path, params={"before": cursor, "limit": 100}).json()
            assert page["messages"][0]["seq"] == cursor - 1
            cursor = page["nextCursor"]
            pages += 1
        elapsed = time.perf_counter() - started
    assert pages == 200
    assert elapsed < 20, f"200 pages took {elapsed:.1f} s"
