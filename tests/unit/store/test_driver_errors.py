"""map_driver_errors: the one table that turns driver exceptions into StoreError or
StoreUnavailable, for SQLAlchemy's pool, the raw asyncpg pool and migrations alike."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import exc

from ieum_chat.errors import StoreError, StoreUnavailable
from ieum_chat.store.driver_errors import map_driver_errors
from ieum_chat.store.engines import PostgresEngine, SqliteEngine

POSTGRES = PostgresEngine().is_unavailable
SQLITE = SqliteEngine().is_unavailable


@pytest.mark.parametrize(
    ("error", "is_unavailable", "expected"),
    [
        (ConnectionRefusedError(111, "refused"), POSTGRES, StoreUnavailable),
        (TimeoutError(), SQLITE, StoreUnavailable),
        (asyncpg.AdminShutdownError("terminating"), POSTGRES, StoreUnavailable),
        (asyncpg.TooManyConnectionsError("too many"), POSTGRES, StoreUnavailable),
        (asyncpg.InterfaceError("connection is closed"), POSTGRES, StoreUnavailable),
        (asyncpg.UniqueViolationError("duplicate key"), POSTGRES, StoreError),
        (asyncpg.UndefinedFunctionError("no function"), POSTGRES, StoreError),
        (asyncpg.InternalClientError("bug"), POSTGRES, StoreError),
        (
            exc.OperationalError("SELECT 1", {}, Exception("unable to open database file")),
            SQLITE,
            StoreUnavailable,
        ),
        (
            exc.IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed")),
            SQLITE,
            StoreError,
        ),
        (exc.InterfaceError("SELECT 1", {}, Exception("closed")), POSTGRES, StoreUnavailable),
    ],
)
def test_each_driver_error_becomes_ours(
    error: BaseException,
    is_unavailable: Callable[[BaseException], bool],
    expected: type[StoreError],
) -> None:
    with pytest.raises(StoreError) as caught, map_driver_errors("op", is_unavailable):
        raise error
    assert type(caught.value) is expected
    assert caught.value.__cause__ is error
    prefix = "op: database unreachable: " if expected is StoreUnavailable else "op failed: "
    assert str(caught.value).startswith(prefix)


def test_the_reason_is_the_drivers_first_line_cut_short() -> None:
    wrapped = exc.IntegrityError(
        "INSERT INTO messages ...", {"content": "secret"}, ValueError("a\nb")
    )
    with pytest.raises(StoreError) as caught, map_driver_errors("append_messages", SQLITE):
        raise wrapped
    assert str(caught.value) == "append_messages failed: ValueError: a"
    with pytest.raises(StoreError) as caught, map_driver_errors("append_messages", POSTGRES):
        raise asyncpg.InternalClientError("x" * 10_000)
    assert len(str(caught.value)) < 300


@pytest.mark.parametrize("error", [ValueError("ours"), asyncio.CancelledError(), KeyError("bug")])
def test_other_exceptions_pass_through(error: BaseException) -> None:
    with pytest.raises(type(error)) as caught, map_driver_errors("op", POSTGRES):
        raise error
    assert caught.value is error


class _AdaptedError(Exception):
    """What SQLAlchemy's asyncpg adapter puts in ``.orig``: the reply's code as ``sqlstate``."""

    sqlstate = "IE002"


@pytest.mark.parametrize(
    ("error", "sqlstate"),
    [
        (asyncpg.UniqueViolationError("duplicate key"), "23505"),
        (asyncpg.RaiseError("a tempId of the batch is stored already"), "P0001"),
        (exc.DBAPIError("SELECT f()", {}, _AdaptedError("stored already")), "IE002"),
        (exc.IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed")), None),
        (asyncpg.InternalClientError("bug"), None),
    ],
)
def test_an_error_reply_keeps_its_sqlstate(error: BaseException, sqlstate: str | None) -> None:
    with pytest.raises(StoreError) as caught, map_driver_errors("op", POSTGRES):
        raise error
    assert type(caught.value) is StoreError
    assert caught.value.sqlstate == sqlstate
