"""Where a couple's stream and history are read: a PostgreSQL streaming replica when it has
replayed enough, else the primary.

A read that may go to the replica starts with a :class:`StreamMark` read on the primary (one
primary-key probe of ``couples`` and a count over the viewer's hides in the couple, on
``ix_message_hides_position``): the couple's ``last_seq`` and the viewer's hide count as
committed when the read begins. The read itself then runs on the replica in one transaction
that first reads the same mark there; it goes on only if the replica's ``last_seq`` is at least
the primary's and it holds at least as many of the viewer's hides. A standby replays the
primary's transactions whole and in commit order, and each statement of a READ COMMITTED
transaction sees at least what the one before saw, so such a read reflects every message,
change and hide the primary had when the read began: it answers what a read of the primary at
that moment would have, or later. Every change to a message bumps the couple's ``last_seq``
(its event's seq), so the mark covers edits, unsends, reactions and read marks too; hides,
the one change without a seq, are what the count is for.

The mark is read on the primary, not taken from what this node heard: a node learns seqs from
its own commits and the broker's payloads only for couples it listens to, and not those
committed before it began to listen (the very messages a resuming device asks for) or while
the broker was down. A watermark of heard seqs would let a lagging replica answer a resume
with a page that stops short, and the device would miss those messages until the next one
arrives.

Stream reads also check what came back: the stream is dense (every seq is a message, an
event, or in place of a message the viewer hid, its hide), so a page shorter than asked whose
last seq is below the mark is incomplete, and is read again on the primary.

A replica that lags, cannot be reached or fails a statement (a standby cancels queries that
conflict with recovery) never fails the read: it is answered by the primary, and
``ieum_replica_reads_total`` counts where each read went and why. After a failure to reach
the replica, reads skip it for :data:`RETRY_AFTER` seconds, so a replica that is down costs
one failed connection attempt per period, not one per read.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.engine import Connection

from ieum_chat.errors import StoreError, StoreUnavailable
from ieum_chat.observability import metrics
from ieum_chat.store.row_reads import rows_txn
from ieum_chat.store.schema import couples, message_hides

if TYPE_CHECKING:
    from ieum_chat.store.pool import DatabasePool

__all__ = ["RETRY_AFTER", "Reads", "StreamMark", "stream_mark_txn", "stream_position_txn"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# Seconds reads skip a replica that could not be reached.
RETRY_AFTER: Final = 5.0


@dataclass(frozen=True, slots=True)
class StreamMark:
    """How far a couple's stream is committed, as one member reads it."""

    couple_id: uuid.UUID
    viewer_id: uuid.UUID
    last_seq: int
    """The couple's last seq (a message's or a change's); 0 for none, or no such couple."""
    hides: int
    """How many messages of the couple the viewer has hidden."""

    def covered_by(self, other: StreamMark) -> bool:
        """Whether a database at ``other`` holds everything committed at this mark."""
        return other.last_seq >= self.last_seq and other.hides >= self.hides


# Built once, with the couple and viewer as parameters: every history page and stream read
# starts with one of them, and building it per call took about three quarters as long as
# executing it (py-spy).
_POSITION = select(couples.c.last_seq).where(couples.c.id == bindparam("couple_id"))
_MARK = select(
    _POSITION.scalar_subquery(),
    select(func.count())
    .select_from(message_hides)
    .where(
        message_hides.c.couple_id == bindparam("couple_id"),
        message_hides.c.user_id == bindparam("viewer_id"),
    )
    .scalar_subquery(),
)


@functools.cache
def _with_position(statement: Select[Any]) -> Select[Any]:
    """``statement`` with the couple's ``last_seq`` (``couple_id``'s) as its last column."""
    return statement.add_columns(_POSITION.scalar_subquery())


def stream_position_txn(conn: Connection, couple_id: uuid.UUID) -> int:
    """The last seq handed out in the couple's stream; 0 for none, or no such couple."""
    return int(conn.execute(_POSITION, {"couple_id": couple_id}).scalar_one_or_none() or 0)


def stream_mark_txn(conn: Connection, couple_id: uuid.UUID, viewer_id: uuid.UUID) -> StreamMark:
    row = conn.execute(_MARK, {"couple_id": couple_id, "viewer_id": viewer_id}).one()
    return StreamMark(couple_id, viewer_id, int(row[0] or 0), int(row[1]))


class _Lagging:
    """The replica's mark, when it is behind the primary's."""

    __slots__ = ("mark",)

    def __init__(self, mark: StreamMark) -> None:
        self.mark = mark


class _Answer(Generic[T]):
    """The replica's answer."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value


class Reads:
    """The primary, and the replica reads may go to (None: every read goes to the primary)."""

    def __init__(self, primary: DatabasePool, replica: DatabasePool | None = None) -> None:
        self.primary = primary
        self.replica = replica
        self._skip_until = 0.0  # monotonic time before which the replica is not tried

    async def marked(
        self,
        desc: str,
        couple_id: uuid.UUID,
        viewer_id: uuid.UUID,
        func: Callable[[Connection], T],
        complete: Callable[[StreamMark], Callable[[T], bool]] | None = None,
    ) -> tuple[StreamMark, T]:
        """``func(conn)``, a read of the couple as ``viewer_id`` sees it, and the mark read
        before it (what the read reflects at least: a page's ``asOfSeq``). Without a replica,
        both in one transaction of the primary: each statement of a READ COMMITTED
        transaction sees at least what the one before it saw. With one, the mark on the
        primary, then the read on the replica if it holds everything committed at the mark
        and ``complete(mark)(result)`` (if given) holds; else on the primary."""
        if self.replica is None:

            def both(conn: Connection) -> tuple[StreamMark, T]:
                # The hide count judges a replica only: without one, the position alone.
                position = stream_position_txn(conn, couple_id)
                return StreamMark(couple_id, viewer_id, position, hides=0), func(conn)

            return await self.primary.read_txn(desc, both)
        mark = await self.primary.read_txn("stream_mark", stream_mark_txn, couple_id, viewer_id)
        check = complete(mark) if complete is not None else None
        return mark, await self._stream(desc, mark, check, func)

    async def marked_rows(
        self,
        desc: str,
        couple_id: uuid.UUID,
        viewer_id: uuid.UUID,
        statement: Select[Any],
        params: Mapping[str, Any],
        *,
        convert: Callable[[Sequence[Sequence[Any]]], T],
    ) -> tuple[StreamMark, T]:
        """:meth:`marked` for a read of one statement (``params`` name the couple as
        ``couple_id``), ``convert`` making its answer of the rows. Without a replica it is one
        statement on the primary (``DatabasePool.read_rows``) that also reads the couple's
        position, in a column after the statement's own: one snapshot, so the rows reflect
        exactly the mark. A read that finds no rows reads the position alone."""
        if self.replica is not None:

            def read(conn: Connection) -> T:
                return convert(rows_txn(conn, statement, params))

            return await self.marked(desc, couple_id, viewer_id, read)
        rows = await self.primary.read_rows(desc, _with_position(statement), params)
        if rows:
            position = rows[0][-1]
        else:
            found = await self.primary.read_rows(desc, _POSITION, {"couple_id": couple_id})
            position = found[0][0] if found else None
        return StreamMark(couple_id, viewer_id, int(position or 0), hides=0), convert(rows)

    async def _stream(
        self,
        desc: str,
        mark: StreamMark,
        complete: Callable[[T], bool] | None,
        func: Callable[[Connection], T],
    ) -> T:
        outcome = await self._try_replica(desc, mark, complete, func)
        if isinstance(outcome, _Answer):
            metrics.REPLICA_READS.labels("replica", "caught_up").inc()
            return outcome.value
        metrics.REPLICA_READS.labels("primary", outcome).inc()
        return await self.primary.read_txn(desc, func)

    async def _try_replica(
        self,
        desc: str,
        mark: StreamMark,
        complete: Callable[[T], bool] | None,
        func: Callable[[Connection], T],
    ) -> _Answer[T] | str:
        """The replica's answer, or why the read goes to the primary."""
        assert self.replica is not None
        if time.monotonic() < self._skip_until:
            return "unavailable"

        def on_replica(conn: Connection) -> _Answer[T] | _Lagging:
            there = stream_mark_txn(conn, mark.couple_id, mark.viewer_id)
            if not mark.covered_by(there):
                return _Lagging(there)
            return _Answer(func(conn))

        try:
            answer = await self.replica.read_txn(f"{desc} (replica)", on_replica)
        except StoreUnavailable as error:
            if time.monotonic() >= self._skip_until:
                log.warning(
                    "read replica unreachable, reading the primary for %gs: %s",
                    RETRY_AFTER,
                    error,
                )
            self._skip_until = time.monotonic() + RETRY_AFTER
            return "unavailable"
        except StoreError as error:
            log.info("read replica failed %s, reading the primary: %s", desc, error)
            return "error"
        if isinstance(answer, _Lagging):
            log.debug("read replica at %s, behind %s: reading the primary", answer.mark, mark)
            return "lagging"
        if complete is not None and not complete(answer.value):
            return "short"
        return answer

    async def close(self) -> None:
        if self.replica is not None:
            await self.replica.close()
