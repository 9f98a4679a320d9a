"""plan schema: the users, couples and messages tables of the original plan

A database that already holds the plan's tables (created by the Spring-era backend, without
an ``alembic_version`` table) passes through untouched: only what is missing is created, with
the plan's own statements (``ieum_chat.store.plan_schema``).

Revision ID: 0001
Revises:
Create Date: 2024-01-11
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ieum_chat.store.plan_schema import PLAN_INDEXES, PLAN_TABLES

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    for table, statement in PLAN_TABLES[dialect].items():
        if not sa.inspect(bind).has_table(table):
            op.execute(statement)
    existing = {index["name"] for index in sa.inspect(bind).get_indexes("messages")}
    for name, statement in PLAN_INDEXES[dialect].items():
        if name not in existing:
            op.execute(statement)


def downgrade() -> None:
    # The plan's tables may well predate this project and hold its users' history: a
    # downgrade never drops them.
    pass
