"""directory changes: a feed of every change to users and couples, by position

Every server node caches users and couple memberships, and must drop what it cached within
seconds when a user or a couple is deleted or a couple's members change, whoever changed the
row: this process, another node, the CLI, or SQL typed straight into the database. So the
database records the changes itself: triggers on ``users`` and ``couples`` append one row per
inserted, updated or deleted row to ``directory_changes``, numbered by ``position``; each node
reads the rows after the last position it saw (a stream position, as synapse's streams are
read) and prunes rows older than a few minutes.

Only the columns that say who someone is or who is in a couple fire the update triggers
(``couples.last_seq`` moves on every message and must not).

Positions in commit order: SQLite runs one write transaction at a time. On PostgreSQL two
transactions could take positions 5 and 6 and commit 6 first; a node reading in between would
move past 5 for good. So the trigger function first locks the feed table in EXCLUSIVE mode
(held to commit; plain SELECTs still run): transactions that change users or couples commit
one after another, in position order. They are rare (sign-ups, pairings, deletions).

``changed_at`` is UTC, set by the trigger from the database clock, so pruning compares it
with UTC on either database. ``AUTOINCREMENT`` on SQLite: a position is never reused, even
after the newest rows were pruned.

Revision ID: 0006
Revises: 0005
Create Date: 2024-02-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, kind, columns whose update is a change)
_WATCHED = (
    ("users", "user", "id, name, profile_image"),
    ("couples", "couple", "id, user1_id, user2_id"),
)

_PG_TABLE = """
CREATE TABLE directory_changes (
    position BIGSERIAL PRIMARY KEY,
    kind VARCHAR(6) NOT NULL,
    entity_id UUID NOT NULL,
    op VARCHAR(1) NOT NULL,
    changed_at TIMESTAMP WITHOUT TIME ZONE NOT NULL
)
"""

_PG_FUNCTION = """
CREATE FUNCTION ieum_directory_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    LOCK TABLE directory_changes IN EXCLUSIVE MODE;
    INSERT INTO directory_changes (kind, entity_id, op, changed_at)
    VALUES (
        TG_ARGV[0],
        CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END,
        left(TG_OP, 1),
        clock_timestamp() AT TIME ZONE 'UTC'
    );
    RETURN NULL;
END
$$
"""

_SQLITE_TABLE = """
CREATE TABLE directory_changes (
    position INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    kind VARCHAR(6) NOT NULL,
    entity_id CHAR(32) NOT NULL,
    op VARCHAR(1) NOT NULL,
    changed_at DATETIME NOT NULL
)
"""

# SQLite triggers cannot share a function: one per table and event.
_SQLITE_TRIGGER = """
CREATE TRIGGER trg_{table}_directory_{event} AFTER {clause} ON {table} FOR EACH ROW
BEGIN
    INSERT INTO directory_changes (kind, entity_id, op, changed_at)
    VALUES ('{kind}', {row}.id, '{op}', strftime('%Y-%m-%d %H:%M:%f', 'now'));
END
"""

_EVENTS = (("insert", "I", "NEW"), ("update", "U", "NEW"), ("delete", "D", "OLD"))


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_TABLE)
        op.execute(_PG_FUNCTION)
        for table, kind, columns in _WATCHED:
            op.execute(
                f"CREATE TRIGGER trg_{table}_directory "
                f"AFTER INSERT OR UPDATE OF {columns} OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION ieum_directory_change('{kind}')"
            )
        return
    op.execute(_SQLITE_TABLE)
    for table, kind, columns in _WATCHED:
        for event, code, row in _EVENTS:
            clause = f"UPDATE OF {columns}" if event == "update" else event.upper()
            op.execute(
                _SQLITE_TRIGGER.format(
                    table=table, event=event, clause=clause, kind=kind, row=row, op=code
                )
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, _, _ in _WATCHED:
            op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_directory ON {table}")
        op.execute("DROP FUNCTION IF EXISTS ieum_directory_change()")
    else:
        for table, _, _ in _WATCHED:
            for event, _, _ in _EVENTS:
                op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_directory_{event}")
    op.execute("DROP TABLE directory_changes")
