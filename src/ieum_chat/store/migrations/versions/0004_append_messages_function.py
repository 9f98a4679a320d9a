"""append function: PostgreSQL appends a whole batch of messages in one call

``ieum_append_messages(...)`` does on the server what ``store.messages`` did in five statements:
lock the couples' counters, look up the tempIds, number the new messages, bump the counters
and insert. One round trip per batch instead of six, and no statement built per batch in
Python. The batch comes in as one array per column; the result is one row per message:
``(ord, seq)`` for a message stored now, the stored row for a tempId already stored.

Why it is a function and not one statement: in READ COMMITTED a statement sees the database
as of its start. A lone statement that waited on a counter lock would not see the messages
the lock holder had just committed, so it could store a tempId twice (and fail on the unique
constraint). A function runs each of its statements with a fresh snapshot (it is VOLATILE),
so the lookup, taken after the lock, sees every batch that held it before.

Plans: PL/pgSQL plans a statement once per connection and, after five calls, may keep a
generic plan while ``messages`` grows from nothing to millions of rows. A kept plan for the
tempId lookup, made while the table was new, went through ``uq_messages_couple_seq`` (the
couple only) and filtered the rest, reading every message of the couple on each call: each
batch took longer than the last (measured under load: 8 ms of server CPU per 24-message
batch against about 1 ms). So the lookup is planned on each call (``EXECUTE``: a small
join, cheap to plan), and the statement that numbers, bumps and inserts, which only probes
primary keys, keeps its plan. ``SET enable_seqscan/hashjoin/mergejoin = off``: every lookup
here is an index probe (primary keys, ``uq_messages_couple_sender_temp``) whatever the
statistics say (without autovacuum there may be none). (No statement here joins two
unindexed row sets: that would become a nested loop.)

SQLSTATE ``IE001`` (an unknown couple) is class ``IE``, which ``store.asyncpg_pool`` turns
into ``ValueError``. The function locks and checks before it writes, so nothing is stored.

SQLite has no server-side functions: there the store keeps running the statements itself and
this revision does nothing.

Revision ID: 0004
Revises: 0003
Create Date: 2024-01-20
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SIGNATURE = (
    "ieum_append_messages(uuid[], uuid[], uuid[], text[], text[], text[], text[], timestamp[])"
)

# The output columns are also PL/pgSQL variables (ord, seq, id, type...); use_column makes a
# bare name in the queries mean the table column.
_CREATE = """
CREATE FUNCTION ieum_append_messages(
    p_id uuid[],
    p_couple_id uuid[],
    p_sender_id uuid[],
    p_type text[],
    p_content text[],
    p_image_url text[],
    p_temp_id text[],
    p_created_at timestamp[]
)
RETURNS TABLE (
    ord bigint,
    seq bigint,
    id uuid,
    type text,
    content text,
    image_url text,
    is_read boolean,
    read_at timestamp,
    created_at timestamp
)
LANGUAGE plpgsql
VOLATILE
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $function$
#variable_conflict use_column
DECLARE
    locked bigint;
    missing text;
    stored_ords bigint[];
BEGIN
    -- 1. Lock the counters in id order, so that concurrent batches cannot deadlock. NO KEY
    -- UPDATE: the foreign-key checks of concurrent inserts (KEY SHARE) need not wait on it.
    PERFORM 1 FROM couples
    WHERE couples.id = ANY (p_couple_id)
    ORDER BY couples.id
    FOR NO KEY UPDATE;
    GET DIAGNOSTICS locked = ROW_COUNT;
    IF locked < (SELECT count(DISTINCT wanted) FROM unnest(p_couple_id) AS wanted) THEN
        SELECT string_agg(wanted::text, ', ' ORDER BY wanted) INTO missing
        FROM (SELECT DISTINCT wanted FROM unnest(p_couple_id) AS wanted) AS w
        WHERE NOT EXISTS (SELECT 1 FROM couples WHERE couples.id = w.wanted);
        RAISE EXCEPTION 'no such couple: %', missing USING ERRCODE = 'IE001';
    END IF;

    -- 2. A new statement, so a new snapshot: every batch that held these locks before us has
    -- committed and its tempIds are visible. The caller sends each tempId key once. Planned
    -- on each call (EXECUTE): see the module docstring.
    EXECUTE $lookup$
        SELECT coalesce(array_agg(b.ord), '{}')
        FROM unnest($1, $2, $3) WITH ORDINALITY AS b (couple_id, sender_id, temp_id, ord)
        JOIN messages AS m
          ON m.couple_id = b.couple_id AND m.sender_id = b.sender_id AND m.temp_id = b.temp_id
    $lookup$ INTO stored_ords USING p_couple_id, p_sender_id, p_temp_id;

    IF cardinality(stored_ords) > 0 THEN
        RETURN QUERY EXECUTE $stored$
            SELECT b.ord, m.seq, m.id, m.type::text, m.content, m.image_url, m.is_read,
                   m.read_at, m.created_at
            FROM unnest($1, $2, $3) WITH ORDINALITY AS b (couple_id, sender_id, temp_id, ord)
            JOIN messages AS m
              ON m.couple_id = b.couple_id AND m.sender_id = b.sender_id
             AND m.temp_id = b.temp_id
        $stored$ USING p_couple_id, p_sender_id, p_temp_id;
    END IF;

    -- 3. Number the new ones, bump the counters, insert: probes of primary keys only, so
    -- this statement's plan is kept.
    RETURN QUERY
    WITH batch AS (
        SELECT *
        FROM unnest(p_id, p_couple_id, p_sender_id, p_type, p_content, p_image_url,
                    p_temp_id, p_created_at)
            WITH ORDINALITY
            AS b (id, couple_id, sender_id, type, content, image_url, temp_id, created_at, ord)
    ), fresh AS (
        SELECT b.*,
               c.last_seq + row_number() OVER (PARTITION BY b.couple_id ORDER BY b.ord) AS seq
        FROM batch AS b
        JOIN couples AS c ON c.id = b.couple_id
        WHERE b.ord <> ALL (stored_ords)
    ), bumped AS (
        UPDATE couples AS c
        SET last_seq = f.last_seq
        FROM (SELECT fresh.couple_id, max(fresh.seq) AS last_seq
              FROM fresh
              GROUP BY fresh.couple_id) AS f
        WHERE c.id = f.couple_id
    ), inserted AS (
        INSERT INTO messages (id, couple_id, sender_id, seq, type, content, image_url,
                              is_read, read_at, created_at, temp_id)
        SELECT f.id, f.couple_id, f.sender_id, f.seq, f.type, f.content, f.image_url,
               false, NULL, f.created_at, f.temp_id
        FROM fresh AS f
    )
    SELECT f.ord, f.seq, NULL::uuid, NULL::text, NULL::text, NULL::text, NULL::boolean,
           NULL::timestamp, NULL::timestamp
    FROM fresh AS f;
END
$function$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_CREATE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS {_SIGNATURE}")
