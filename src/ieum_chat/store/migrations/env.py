"""Alembic environment: migrations run on an async engine through ``connection.run_sync``.

The URL comes from ``config.attributes["url"]`` (set by ``ieum_chat.store.upgrade_schema``) or,
for developers running the ``alembic`` command, from ``sqlalchemy.url`` / ``IEUM_DATABASE_URL``.
All pending revisions run in one transaction, on SQLite too (our engine emits BEGIN itself, so
SQLite's transactional DDL is real): a failed upgrade leaves the database as it was.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from ieum_chat.store.engines import create_engine
from ieum_chat.store.schema import metadata

config = context.config


def _url() -> str:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    url = url or os.environ.get("IEUM_DATABASE_URL")
    if not url:
        raise RuntimeError("no database URL: use ieum_chat.store.upgrade_schema(url)")
    return str(url)


def _run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,
        transactional_ddl=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    policy, engine = create_engine(_url(), for_migrations=True)
    try:
        async with engine.connect() as connection:
            await connection.execution_options(**policy.write_options())
            await connection.run_sync(_run_migrations)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    # Revision 0001 inspects the live database, so there is no SQL script to print.
    raise RuntimeError("offline (--sql) migrations are not supported; run them online")
asyncio.run(_run_online())
