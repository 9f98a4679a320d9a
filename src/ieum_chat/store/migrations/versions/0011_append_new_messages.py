"""append without the tempId lookup: ``ieum_append_new_messages``

``ieum_append_messages_v5`` (revision 0010; 0005 explains its steps) looks up every tempId of
a batch before it numbers the rest, in a statement planned on each call (0004 says why), and
answers each message with its whole row. Nearly every batch holds only messages never stored
before: their rows are what the server sent, plus a seq. Under the chat load, that lookup's
parse and plan, the plans of the other statements and the whole rows going back were about
half of a one-message call's CPU on the database (PostgreSQL 15, 1 message: 800 -> 450 us;
12 messages: 1,850 -> 1,500 us; 40: 4,650 -> 3,800 us, the medians of alternating blocks of
200 calls, each message to one of 50 couples).

``ieum_append_new_messages`` takes the same arrays and does the same steps without the
lookup: lock the couples' counters, refuse the messages of a couple that is gone or dissolved
or of a sender who is not a member, number the rest, bump the counters and insert them with
``ON CONFLICT (couple_id, sender_id, temp_id) DO NOTHING``, the unique index doing the
lookup as it inserts. When every row went in, the answer is one ``(ord, seq)`` per message
(``seq`` NULL: refused). When a row did not, a tempId of the batch was stored already and
the seqs numbered around it would leave a gap: the function raises SQLSTATE ``IE002`` and its
statement, so the whole batch, is rolled back; the caller then sends the batch to
``ieum_append_messages_v5``, which answers a stored tempId with its row. That costs a retry
only to a batch that repeats a tempId, a client's resend after a lost RECEIPT.

Its statements touch ``couples`` by primary key and insert into ``messages``; none reads
``messages``, so their generic plans (``plan_cache_mode = force_generic_plan``: planned once
per connection) cannot go wrong as the table grows, partitioned or not.

SQLite has no server-side functions: there the store runs the statements itself and this
revision does nothing.

Revision ID: 0011
Revises: 0010
Create Date: 2024-07-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SIGNATURE = (
    "ieum_append_new_messages(uuid[], uuid[], uuid[], text[], text[], text[], text[], "
    "timestamp[], uuid[], text[], text[])"
)

_CREATE = """
CREATE FUNCTION ieum_append_new_messages(
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
RETURNS TABLE (ord bigint, seq bigint)
LANGUAGE plpgsql
VOLATILE
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
SET plan_cache_mode = force_generic_plan
AS $function$
#variable_conflict use_column
DECLARE
    refused_ords bigint[];
    ords bigint[];
    seqs bigint[];
    inserted bigint;
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
        WHERE b.ord <> ALL (refused_ords)
    ), bumped AS (
        UPDATE couples AS c
        SET last_seq = f.last_seq
        FROM (SELECT fresh.couple_id, max(fresh.seq) AS last_seq
              FROM fresh
              GROUP BY fresh.couple_id) AS f
        WHERE c.id = f.couple_id
    ), written AS (
        INSERT INTO messages (id, couple_id, sender_id, seq, type, content, image_url,
                              is_read, read_at, created_at, temp_id, reply_to_id, media_url,
                              media)
        SELECT f.id, f.couple_id, f.sender_id, f.seq, f.type, f.content, f.image_url,
               false, NULL, f.created_at, f.temp_id, f.reply_to_id, f.media_url, f.media
        FROM fresh AS f
        ON CONFLICT (couple_id, sender_id, temp_id) DO NOTHING
        RETURNING 1
    )
    SELECT coalesce(array_agg(f.ord), '{}'), coalesce(array_agg(f.seq), '{}'),
           (SELECT count(*) FROM written)
    INTO ords, seqs, inserted
    FROM fresh AS f;

    IF inserted <> cardinality(ords) THEN
        RAISE EXCEPTION 'a tempId of the batch is stored already' USING ERRCODE = 'IE002';
    END IF;
    RETURN QUERY SELECT r.ord, NULL::bigint FROM unnest(refused_ords) AS r (ord);
    RETURN QUERY SELECT s.ord, s.seq FROM unnest(ords, seqs) AS s (ord, seq);
END
$function$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_CREATE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS {_SIGNATURE}")
