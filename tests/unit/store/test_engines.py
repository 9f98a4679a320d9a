"""The dialect policies' choices that need no database: the append pool's connect arguments."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import create_async_engine

from ieum_chat.store.engines import PostgresEngine, SqliteEngine, normalize_url


async def test_append_connect_args_follow_the_url() -> None:
    url = normalize_url(
        "postgres://chat:p%40ss%3Aword@db.example:5433/ieum?ssl=require"
        "&prepared_statement_cache_size=50"
    )
    engine = create_async_engine(url)
    try:
        args = PostgresEngine().append_connect_args(engine)
    finally:
        await engine.dispose()
    assert args == {
        "host": "db.example",
        "port": 5433,
        "user": "chat",
        "password": "p@ss:word",
        "database": "ieum",
        "ssl": "require",
        # as the engine's own connections (PostgresEngine.engine_kwargs)
        "timeout": 5,
        "command_timeout": 30,
        "server_settings": {
            "application_name": "ieum-chat",
            "default_transaction_isolation": "read committed",
        },
    }


async def test_append_connect_args_unix_socket() -> None:
    engine = create_async_engine(normalize_url("postgresql://chat@/ieum?host=/run/postgresql"))
    try:
        args = PostgresEngine().append_connect_args(engine)
    finally:
        await engine.dispose()
    assert (args["host"], args["user"], args["database"]) == ("/run/postgresql", "chat", "ieum")
    assert "port" not in args


async def test_sqlite_has_no_append_pool(tmp_path: Path) -> None:
    engine = create_async_engine(normalize_url(f"sqlite:///{tmp_path}/x.db"))
    try:
        assert SqliteEngine().append_pool(engine, pool_size=10) is None
    finally:
        await engine.dispose()


async def test_append_pool_size_is_bounded() -> None:
    engine = create_async_engine(normalize_url("postgresql://chat@localhost/ieum"))
    try:
        small = PostgresEngine().append_pool(engine, pool_size=2)
        large = PostgresEngine().append_pool(engine, pool_size=50)
    finally:
        await engine.dispose()
    assert (small.size, large.size) == (2, 4)
