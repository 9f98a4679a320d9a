"""media messages and uploads

``messages.media_url`` is the file an IMAGE, AUDIO, VIDEO or FILE message carries (for IMAGE
the plan's ``image_url`` too), ``messages.media`` what the server learnt of it when it was
uploaded, as JSON (``thumbnailUrl``, ``durationMs``, ``fileName``, ``size``, ``width``,
``height``). The partial index on ``media_url`` costs nothing for the other messages and
answers "does a message name this upload?" for the cleanup.

``uploads``: one row per presigned upload, from the ticket on. ``state`` is ``issued`` (the
URL is out), ``ready`` (the bytes were checked and published), ``kept`` (a message names it:
the cleanup saw it and will not look again) or ``doomed`` (its message was unsent: the
cleanup deletes the files). ``size`` is the declared size until the check, the stored size
after; the day's sum per couple is the quota. The cleanup deletes the files and the row of
an upload no message names once ``expires_at`` (the URL's expiry) has passed.

``ieum_append_messages_v5`` is v4 (revision 0008) with the two media columns; v4 stays for
nodes still running the previous code during an upgrade.

Revision ID: 0010
Revises: 0009
Create Date: 2024-06-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SIGNATURE = (
    "ieum_append_messages_v5(uuid[], uuid[], uuid[], text[], text[], text[], text[], "
    "timestamp[], uuid[], text[], text[])"
)

# v4 (revision 0008; 0005 explains each step), with media_url and media.
_CREATE = """
CREATE FUNCTION ieum_append_messages_v5(
    p_id uuid[],
    p_couple_id uuid[],
    p_sender_id uuid[],
    p_type text[],
    p_content text[],
    p_image_url text[],
    p_temp_id text[],
    p_created_at timestamp[],
    p_reply_to_id uuid[],
    p_media_url text[],
    p_media text[]
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
    media_url text,
    media text,
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
               NULL::uuid, NULL::timestamp, NULL::timestamp, NULL::text, NULL::text,
               NULL::text, r.ord, 'refused'::text
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
                   m.reply_to_id, m.edited_at, m.unsent_at, m.reactions, m.media_url,
                   m.media, b.ord, 'found'::text
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
                    p_temp_id, p_created_at, p_reply_to_id, p_media_url, p_media)
            WITH ORDINALITY
            AS b (id, couple_id, sender_id, type, content, image_url, temp_id, created_at,
                  reply_to_id, media_url, media, ord)
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
                              is_read, read_at, created_at, temp_id, reply_to_id, media_url,
                              media)
        SELECT f.id, f.couple_id, f.sender_id, f.seq, f.type, f.content, f.image_url,
               false, NULL, f.created_at, f.temp_id, f.reply_to_id, f.media_url, f.media
        FROM fresh AS f
    )
    SELECT f.id, f.couple_id, f.sender_id, f.seq, f.type, f.content, f.image_url, false,
           NULL::timestamp, f.created_at, f.temp_id, f.reply_to_id, NULL::timestamp,
           NULL::timestamp, NULL::text, f.media_url, f.media, f.ord, 'stored'::text
    FROM fresh AS f;
END
$function$
"""


def upgrade() -> None:
    # Not batch mode on SQLite: copying the table would drop what hangs on it.
    op.add_column("messages", sa.Column("media_url", sa.Text()))
    op.add_column("messages", sa.Column("media", sa.Text()))
    op.create_index(
        "ix_messages_media_url",
        "messages",
        ["media_url"],
        postgresql_where=sa.text("media_url IS NOT NULL"),
        sqlite_where=sa.text("media_url IS NOT NULL"),
    )
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("couple_id", sa.Uuid(), sa.ForeignKey("couples.id"), nullable=False),
        sa.Column("uploader_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("file_name", sa.Text()),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("media", sa.Text()),
        sa.Column("thumbnail_key", sa.Text()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_uploads_url", "uploads", ["url"], unique=True)
    op.create_index("ix_uploads_couple_created", "uploads", ["couple_id", "created_at"])
    op.create_index("ix_uploads_state_expires", "uploads", ["state", "expires_at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_CREATE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS {_SIGNATURE}")
    op.drop_table("uploads")
    op.drop_index("ix_messages_media_url", "messages")
    op.execute("ALTER TABLE messages DROP COLUMN media")
    op.execute("ALTER TABLE messages DROP COLUMN media_url")
