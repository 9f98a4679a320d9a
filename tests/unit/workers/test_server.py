"""The server of one process, started in this one."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

from ieum_chat.config import Settings
from ieum_chat.workers import build_server
from tests.support.polling import eventually
from tests.support.server import TEST_SECRET, Cli, free_port


async def test_what_startup_made_is_frozen_out_of_the_cyclic_collector(tmp_path: Path) -> None:
    """A full collection walks every tracked object: the process's modules, app and pools
    made at startup are left out of it once the server accepts."""
    url = f"sqlite:///{tmp_path / 'chat.db'}"
    Cli.for_database(url).run("migrate")
    server = build_server(Settings(database_url=url, port=free_port(), jwt_secret=TEST_SECRET))
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    serving = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started or serving.done(), timeout=30)
        assert server.started
        frozen = gc.get_freeze_count()
        assert frozen > 10_000
        # What is still tracked is what came after: far less than what was frozen.
        assert len(gc.get_objects()) < frozen
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 30)
        gc.unfreeze()
