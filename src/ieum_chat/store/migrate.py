"""Schema migrations (Alembic), configured in code: no ``alembic.ini`` is needed at runtime."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.util import CommandError

from ieum_chat.errors import StoreError
from ieum_chat.store.driver_errors import map_driver_errors
from ieum_chat.store.engines import engine_for_url, normalize_url

__all__ = ["MIGRATIONS_DIR", "alembic_config", "upgrade_schema"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    """An Alembic config whose ``env.py`` migrates ``url`` (passed as an attribute, so a ``%``
    in a password needs no ini escaping)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["url"] = normalize_url(url)
    return config


def upgrade_schema(url: str) -> None:
    """Run every migration up to head on ``url``; a database already at head is left as is.

    Synchronous. ``env.py`` drives an async engine with its own event loop, so when called
    from inside a running loop this runs on a worker thread (and blocks the caller meanwhile).
    ValueError for an unusable URL, StoreUnavailable if unreachable, StoreError otherwise.
    """
    config = alembic_config(url)
    policy = engine_for_url(url)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        _upgrade(config, policy.is_unavailable)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ieum-migrate") as pool:
        pool.submit(_upgrade, config, policy.is_unavailable).result()


def _upgrade(config: Config, is_unavailable: Callable[[BaseException], bool]) -> None:
    try:
        with map_driver_errors("migrate", is_unavailable):
            command.upgrade(config, "head")
    except CommandError as error:
        raise StoreError(f"migrate failed: {error}") from error
