"""The one edge where database driver exceptions become ours.

Both connection pools (SQLAlchemy's, and the raw asyncpg connections of PostgreSQL's append
path, ``asyncpg_pool``) and the migration runner wrap their driver calls in
:func:`map_driver_errors`. Nothing above ``store`` sees a SQLAlchemy or driver exception:

- :class:`StoreUnavailable` when the database could not be reached (refused, lost, timed out,
  shutting down); which driver errors say so is the dialect's call (``engines``);
- :class:`StoreError` for any other failure of the driver or the server.

Our own ``ValueError`` (an argument the database cannot hold) and cancellation pass through.
The message names the operation and the driver's reason, cut to its first line: drivers may
quote a whole argument (a batch's contents), never a password (the URL is not in it). A
StoreError from an error reply of the server carries its SQLSTATE (``StoreError.sqlstate``),
for a caller that answers one of them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import exc

from ieum_chat.errors import StoreError, StoreUnavailable

__all__ = ["DRIVER_ERRORS", "map_driver_errors"]

# Everything a driver call may raise that is the database's failure and not ours.
DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    exc.SQLAlchemyError,  # SQLAlchemy, and every DBAPI error it wraps (its .orig)
    asyncpg.PostgresError,  # the raw pool: an error reply from the server
    asyncpg.InterfaceError,  # ... the driver refused the call (a closed connection, a bad setting)
    asyncpg.InternalClientError,  # ... the driver's own failure
    OSError,  # the socket: refused, reset
    TimeoutError,  # connect, statement or pool timeouts
)

# Characters of a driver's message that go into ours.
_REASON_MAX = 200


@contextlib.contextmanager
def map_driver_errors(desc: str, is_unavailable: Callable[[BaseException], bool]) -> Iterator[None]:
    """Run the block; a driver exception leaves it as StoreUnavailable (when
    ``is_unavailable`` says so) or StoreError, ``from`` the original. ``desc`` names the
    operation (``append_messages``, ``migrate``...) in the message."""
    try:
        yield
    except DRIVER_ERRORS as error:
        reason = _reason(error)
        if is_unavailable(error):
            raise StoreUnavailable(f"{desc}: database unreachable: {reason}") from error
        failure = StoreError(f"{desc} failed: {reason}")
        failure.sqlstate = _sqlstate(error)
        raise failure from error


def _sqlstate(error: BaseException) -> str | None:
    # asyncpg's error replies have it; SQLAlchemy's asyncpg adapter keeps it on .orig
    source = error.orig if isinstance(error, exc.DBAPIError) and error.orig else error
    code = getattr(source, "sqlstate", None)
    return code if isinstance(code, str) else None


def _reason(error: BaseException) -> str:
    # SQLAlchemy's own message adds the statement and its parameters: use the driver's.
    source = error.orig if isinstance(error, exc.DBAPIError) and error.orig else error
    lines = str(source).splitlines()
    first = lines[0] if lines else ""
    if len(first) > _REASON_MAX:
        first = first[: _REASON_MAX - 1] + "…"
    return f"{type(source).__name__}: {first}"
