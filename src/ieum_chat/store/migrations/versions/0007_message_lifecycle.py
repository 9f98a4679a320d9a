"""message lifecycle: replies, edits, unsends, reactions, read marks and hides in the stream

A message may change after it is sent: edited (TEXT, by its sender), unsent (a tombstone: no
content, image or reactions), reacted to, hidden by one member for themselves. It may answer
another message of its couple. Four nullable columns on ``messages`` hold the current state
(``reply_to_id``, ``edited_at``, ``unsent_at``, ``reactions``: a JSON array, NULL for none, so
a history page reads one row per message and no join); adding nullable columns without a
default rewrites nothing on PostgreSQL.

Each change is also an event of the couple's stream (``message_events``), numbered from the
same ``couples.last_seq`` as messages, so a device resuming after seq N replays messages and
changes in one order. Read marks join the stream too (kind READ): reading on one device clears
the unread marks of the user's other devices after a resume. ``(couple_id, actor_id, temp_id)``
is unique: a retried change is stored once.

Hiding (delete for me) is per member and never in the stream (``message_hides``): the
partner must see no trace of it. ``position`` (the couple's last seq when it was hidden) tells
a resuming device of the hides it has not seen.

``ieum_append_messages_v3`` is v2 (revision 0005) with one more parameter, ``p_reply_to_id``,
and the message rows it returns carry the new columns, in the order of
``store.records.Message``. v2 stays for servers still running the previous code while a fleet
is upgraded node by node: its INSERT names its columns, and the new ones are NULL.

Revision ID: 0007
Revises: 0006
Create Date: 2024-03-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SIGNATURE = (
    "ieum_append_messages_v3(uuid[], uuid[], uuid[], text[], text[], text[], text[], "
    "timestamp[], uuid[])"
)

# As v2 (see revision 0005 for each step and why), with reply_to_id stored and the new
# columns returned.
_CREATE = """
CREATE FUNCTION ieum_append_messages_v3(
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
    FROM unnest(p_couple_id, p_sender_id) WITH ORDINALITY AS b (couple_id, sender_id, ord)
    WHERE NOT EXISTS (
        SELECT 1 FROM couples AS c
        WHERE c.id = b.couple_id AND b.sender_id IN (c.user1_id, c.user2_id)
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


def upgrade() -> None:
    op.add_column("messages", sa.Column("reply_to_id", sa.Uuid()))
    op.add_column("messages", sa.Column("edited_at", sa.DateTime()))
    op.add_column("messages", sa.Column("unsent_at", sa.DateTime()))
    op.add_column("messages", sa.Column("reactions", sa.Text()))
    op.create_table(
        "message_events",
        sa.Column("couple_id", sa.Uuid(), sa.ForeignKey("couples.id"), primary_key=True),
        sa.Column("seq", sa.BigInteger(), primary_key=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("actor_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("message_id", sa.Uuid()),
        sa.Column("temp_id", sa.String(64)),
        sa.Column("data", sa.Text()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint(
            "couple_id", "actor_id", "temp_id", name="uq_message_events_actor_temp"
        ),
    )
    op.create_index("ix_message_events_message", "message_events", ["message_id"])
    op.create_table(
        "message_hides",
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("message_id", sa.Uuid(), primary_key=True),
        sa.Column("couple_id", sa.Uuid(), sa.ForeignKey("couples.id"), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index(
        "ix_message_hides_position", "message_hides", ["couple_id", "user_id", "position"]
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_CREATE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS {_SIGNATURE}")
    op.drop_index("ix_message_hides_position", table_name="message_hides")
    op.drop_table("message_hides")
    op.drop_index("ix_message_events_message", table_name="message_events")
    op.drop_table("message_events")
    with op.batch_alter_table("messages") as batch:
        for column in ("reactions", "unsent_at", "edited_at", "reply_to_id"):
            batch.drop_column(column)
