"""seq and temp_id: per-couple message order and the client's retry key

- ``messages.seq``: numbered 1..n per couple in (created_at, id) order, then NOT NULL and
  UNIQUE (couple_id, seq); ``couples.last_seq`` holds the last seq handed out.
- ``messages.temp_id``: VARCHAR(64) NULL, UNIQUE (couple_id, sender_id, temp_id); NULLs never
  collide on either database, so messages without a tempId are unconstrained.
- ``is_read`` NULLs (possible under the plan's schema) become FALSE, so "unread" is one test.

SQLite cannot add a NOT NULL column or a constraint in place: the batch block rebuilds
``messages`` there (copy, drop, rename; the plan's DESC index is then re-created as the plan
wrote it) and runs plain ALTERs on PostgreSQL. The backfill uses
window functions and UPDATE ... FROM (SQLite 3.33 or later).

Revision ID: 0002
Revises: 0001
Create Date: 2024-01-12
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ieum_chat.store.plan_schema import PLAN_INDEXES

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NUMBER_MESSAGES = """
UPDATE messages SET seq = numbered.seq
FROM (
    SELECT id, ROW_NUMBER() OVER (
        PARTITION BY couple_id
        ORDER BY CASE WHEN created_at IS NULL THEN 1 ELSE 0 END, created_at, id
    ) AS seq
    FROM messages
) AS numbered
WHERE messages.id = numbered.id
"""

_SET_LAST_SEQ = """
UPDATE couples SET last_seq = COALESCE(
    (SELECT MAX(messages.seq) FROM messages WHERE messages.couple_id = couples.id), 0
)
"""


def upgrade() -> None:
    op.add_column("messages", sa.Column("seq", sa.BigInteger(), nullable=True))
    op.add_column("messages", sa.Column("temp_id", sa.String(64), nullable=True))
    op.execute("UPDATE messages SET is_read = FALSE WHERE is_read IS NULL")
    op.execute(_NUMBER_MESSAGES)
    with op.batch_alter_table("messages") as batch:
        batch.alter_column("seq", existing_type=sa.BigInteger(), nullable=False)
        batch.create_unique_constraint("uq_messages_couple_seq", ["couple_id", "seq"])
        batch.create_unique_constraint(
            "uq_messages_couple_sender_temp", ["couple_id", "sender_id", "temp_id"]
        )
    if op.get_bind().dialect.name == "sqlite":
        # The rebuild re-creates indexes from reflection, which drops the plan's DESC.
        op.drop_index("idx_messages_couple_created", table_name="messages")
        op.execute(PLAN_INDEXES["sqlite"]["idx_messages_couple_created"])
    op.add_column(
        "couples",
        sa.Column("last_seq", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
    )
    op.execute(_SET_LAST_SEQ)


def downgrade() -> None:
    with op.batch_alter_table("couples") as batch:
        batch.drop_column("last_seq")
    with op.batch_alter_table("messages") as batch:
        batch.drop_constraint("uq_messages_couple_sender_temp", type_="unique")
        batch.drop_constraint("uq_messages_couple_seq", type_="unique")
        batch.drop_column("temp_id")
        batch.drop_column("seq")
