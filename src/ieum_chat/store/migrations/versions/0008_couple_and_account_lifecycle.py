"""couple and account lifecycle: dissolved couples, deleted users, notices, purge runs

A couple ends (``couples.dissolved_at``) and an account is deleted (``users.deleted_at``); both
rows stay until the purge erases them after the retention period, so that nothing the
members wrote disappears before the operator's promise says it does, and nothing outlives it.
A user is in at most one *active* couple (``dissolved_at IS NULL``); they may form a new
couple later, with a new stream. The directory triggers now also fire on these two columns,
so every node ends the sessions that lost their couple or their account within a second.

Notices (messages of ``type`` NOTICE, sent by the app's backend) have no member as sender:
they are stored with the system sender, the nil UUID, whose ``users`` row this revision
creates (and the service re-creates if a test or an operator removed it). Storing a sender
keeps the tempId key ``(couple_id, sender_id, temp_id)`` unique for notices too.

``ieum_append_messages_v4`` is v3 (revision 0007) with one more refusal, under the same
counter lock: a message to a dissolved couple is refused like one to a couple that does not
exist, so no message is stored after a dissolution commits; and the system sender may append
NOTICE messages (members may not, and nobody else may append anything). v3 stays for nodes
still running the previous code during an upgrade.

``maintenance_runs`` holds when each periodic job (the daily purge) last started: a node runs
a job only after moving its ``started_at`` to now with a compare-and-set, so one node at a
time runs it, on either database.

Revision ID: 0008
Revises: 0007
Create Date: 2024-04-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SYSTEM_USER_ID = "00000000-0000-0000-0000-000000000000"

_SIGNATURE = (
    "ieum_append_messages_v4(uuid[], uuid[], uuid[], text[], text[], text[], text[], "
    "timestamp[], uuid[])"
)

# (table, kind, columns whose update is a change) before and after this revision
_WATCHED_BEFORE = (
    ("users", "user", "id, name, profile_image"),
    ("couples", "couple", "id, user1_id, user2_id"),
)
_WATCHED = (
    ("users", "user", "id, name, profile_image, deleted_at"),
    ("couples", "couple", "id, user1_id, user2_id, dissolved_at"),
)

_SQLITE_UPDATE_TRIGGER = """
CREATE TRIGGER trg_{table}_directory_update AFTER UPDATE OF {columns} ON {table} FOR EACH ROW
BEGIN
    INSERT INTO directory_changes (kind, entity_id, op, changed_at)
    VALUES ('{kind}', NEW.id, 'U', strftime('%Y-%m-%d %H:%M:%f', 'now'));
END
"""

# v3 (revision 0007; 0005 explains each step), but a dissolved couple refuses every message
# and the system sender may append NOTICEs.
_CREATE = """
CREATE FUNCTION ieum_append_messages_v4(
    p_id uuid[],
    p_couple_id uuid[],
    p_sender_id uuid[],
    p_type text[],
    p_content text[],
    p_image_url text[],
    p_temp_id text[],
    p_created_at timestamp[],
    p_reply_to_id uuid[]
)
RETURNS TABLE (
    id uuid,
    couple_id uuid,
    sender_id uuid,
    seq bigint,
    type text,
    content text,
    image_url text,
    is_read boolean,
    read_at timestamp,
    created_at timestamp,
    temp_id text,
    reply_to_id uuid,
    edited_at timestamp,
    unsent_at timestamp,
    reactions text,
    ord bigint,
    outcome text
)
LANGUAGE plpgsql
VOLATILE
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $function$
#variable_conflict use_column
DECLARE
    refused_ords bigint[];
    stored_ords bigint[];
BEGIN
    PERFORM 1 FROM couples
    WHERE couples.id = ANY (p_couple_id)
    ORDER BY couples.id
    FOR NO KEY UPDATE;

    SELECT coalesce(array_agg(b.ord), '{}') INTO refused_ords
    FROM unnest(p_couple_id, p_sender_id, p_type)
        WITH ORDINALITY AS b (couple_id, sender_id, type, ord)
    WHERE NOT EXISTS (
        SELECT 1 FROM couples AS c
        WHERE c.id = b.couple_id
          AND c.dissolved_at IS NULL
          AND (b.sender_id IN (c.user1_id, c.user2_id)
               OR (b.sender_id = '00000000-0000-0000-0000-000000000000' AND b.type = 'NOTICE'))
    );
    IF cardinality(refused_ords) > 0 THEN
        RETURN QUERY
        SELECT NULL::uuid, NULL::uuid, NULL::uuid, NULL::bigint, NULL::text, NULL::text,
               NULL::text, NULL::boolean, NULL::timestamp, NULL::timestamp, NULL::text,
               NULL::uuid, NULL::timestamp, NULL::timestamp, NULL::text,
               r.ord, 'refused'::text
        FROM unnest(refused_ords) AS r (ord);
    END IF;

    EXECUTE $lookup$
        SELECT coalesce(array_agg(b.ord), '{}')
        FROM unnest($1, $2, $3) WITH ORDINALITY AS b (couple_id, sender_id, temp_id, ord)
        JOIN messages AS m
          ON m.couple_id = b.couple_id AND m.sender_id = b.sender_id AND m.temp_id = b.temp_id
        WHERE b.ord <> ALL ($4)
    $lookup$ INTO stored_ords USING p_couple_id, p_sender_id, p_temp_id, refused_ords;

    IF cardinality(stored_ords) > 0 THEN
        RETURN QUERY EXECUTE $stored$
            SELECT m.id, m.couple_id, m.sender_id, m.seq, m.type::text, m.content,
                   m.image_url, m.is_read, m.read_at, m.created_at, m.temp_id::text,
                   m.reply_to_id, m.edited_at, m.unsent_at, m.reactions,
                   b.ord, 'found'::text
            FROM unnest($1, $2, $3) WITH ORDINALITY AS b (couple_id, sender_id, temp_id, ord)
            JOIN messages AS m
              ON m.couple_id = b.couple_id AND m.sender_id = b.sender_id
             AND m.temp_id = b.temp_id
            WHERE b.ord = ANY ($4)
        $stored$ USING p_couple_id, p_sender_id, p_temp_id, stored_ords;
    END IF;

    RETURN QUERY
    WITH batch AS (
        SELECT *
        FROM unnest(p_id, p_couple_id, p_sender_id, p_type, p_content, p_image_url,
                    p_temp_id, p_created_at, p_reply_to_id)
            WITH ORDINALITY
            AS b (id, couple_id, sender_id, type, content, image_url, temp_id, created_at,
                  reply_to_id, ord)
    ), fresh AS (
        SELECT b.*,
               c.last_seq + row_number() OVER (PARTITION BY b.couple_id ORDER BY b.ord) AS seq
        FROM batch AS b
        JOIN couples AS c ON c.id = b.couple_id
        WHERE b.ord <> ALL (stored_ords) AND b.ord <> ALL (refused_ords)
    ), bumped AS (
        UPDATE couples AS c
        SET last_seq = f.last_seq
        FROM (SELECT fresh.couple_id, max(fresh.seq) AS last_seq
              FROM fresh
              GROUP BY fresh.couple_id) AS f
        WHERE c.id = f.couple_id
    ), inserted AS (
        INSERT INTO messages (id, couple_id, sender_id, seq, type, content, image_url,
                              is_read, read_at, created_at, temp_id, reply_to_id)
        SELECT f.id, f.couple_id, f.sender_id, f.seq, f.type, f.content, f.image_url,
               false, NULL, f.created_at, f.temp_id, f.reply_to_id
        FROM fresh AS f
    )
    SELECT f.id, f.couple_id, f.sender_id, f.seq, f.type, f.content, f.image_url, false,
           NULL::timestamp, f.created_at, f.temp_id, f.reply_to_id, NULL::timestamp,
           NULL::timestamp, NULL::text, f.ord, 'stored'::text
    FROM fresh AS f;
END
$function$
"""


def _watch(watched: tuple[tuple[str, str, str], ...]) -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, kind, columns in watched:
            op.execute(f"DROP TRIGGER trg_{table}_directory ON {table}")
            op.execute(
                f"CREATE TRIGGER trg_{table}_directory "
                f"AFTER INSERT OR UPDATE OF {columns} OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION ieum_directory_change('{kind}')"
            )
        return
    for table, kind, columns in watched:
        op.execute(f"DROP TRIGGER trg_{table}_directory_update")
        op.execute(_SQLITE_UPDATE_TRIGGER.format(table=table, kind=kind, columns=columns))


def upgrade() -> None:
    op.add_column("couples", sa.Column("dissolved_at", sa.DateTime()))
    op.add_column("users", sa.Column("deleted_at", sa.DateTime()))
    op.create_table(
        "maintenance_runs",
        sa.Column("job", sa.String(40), primary_key=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("node", sa.String(100)),
    )
    _watch(_WATCHED)
    op.execute(
        sa.text(
            # the row outlives a downgrade (notices may name it): once
            "INSERT INTO users (id, name, profile_image, created_at) "
            "SELECT :id, :name, NULL, CURRENT_TIMESTAMP "
            "WHERE NOT EXISTS (SELECT 1 FROM users WHERE id = :id)"
        ).bindparams(
            sa.bindparam("id", SYSTEM_USER_ID.replace("-", ""), type_=sa.String())
            if op.get_bind().dialect.name == "sqlite"
            else sa.bindparam("id", SYSTEM_USER_ID, type_=sa.Uuid()),
            name="이음",
        )
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_CREATE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS {_SIGNATURE}")
    _watch(_WATCHED_BEFORE)
    op.drop_table("maintenance_runs")
    # Not batch mode on SQLite: copying the tables would drop their directory triggers.
    op.execute("ALTER TABLE users DROP COLUMN deleted_at")
    op.execute("ALTER TABLE couples DROP COLUMN dissolved_at")
