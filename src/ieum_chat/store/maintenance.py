"""Periodic jobs run by one node at a time: a node runs a job only after it moved the job's
``started_at`` to now itself, from a value at least one period old (its own period: a node
restarted with another interval follows it at once), a compare-and-set that exactly one node
wins, on SQLite and PostgreSQL alike. No lock is held while the job runs; a node that dies
mid-run leaves the job to the next period, and every job is written to be run again safely."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from ieum_chat.store.pool import SQLBaseStore
from ieum_chat.store.schema import maintenance_runs

__all__ = ["MaintenanceStore"]

_t = maintenance_runs


def _claim_txn(conn: Connection, job: str, node: str, now: datetime, every: timedelta) -> bool:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    inserted = conn.execute(
        dialect.insert(_t).values(job=job, node=node, started_at=now).on_conflict_do_nothing()
    ).rowcount
    if inserted:
        return True
    last = conn.execute(select(_t.c.started_at).where(_t.c.job == job)).scalar_one()
    if last > now - every:
        return False
    won = conn.execute(
        update(_t).where(_t.c.job == job, _t.c.started_at == last).values(node=node, started_at=now)
    ).rowcount
    return bool(won)


class MaintenanceStore(SQLBaseStore):
    async def claim_run(self, job: str, node: str, now: datetime, every: timedelta) -> bool:
        """Whether this node runs ``job`` now: True for one caller per ``every`` (naive UTC)."""
        return await self.db_pool.write_txn("claim_run", _claim_txn, job, node, now, every)
