"""append function v2: refuse one message, not the batch; return whole rows

Revision 0004's ``ieum_append_messages`` raised ``no such couple`` for a whole batch when one
of its messages named a couple that no longer exists. The chat service commits many couples'
messages in one batch and accepts a SEND on its cached view of membership, so one deleted
couple failed the messages of every other couple committed beside it. Now a message whose
couple is gone, or whose sender is not one of the couple's two members, is refused on its own
(an ``outcome`` of ``refused``, nothing stored, no seq taken) and the rest of the batch is
stored as before. The check runs under the counter locks, which also keep the couple (and so,
through its foreign keys, the sender) from being deleted until the batch commits.

The result is now one whole message row per message, its columns in the order of
``store.records.Message`` (so one row converter serves this function and the SQLAlchemy
path), followed by ``ord`` (the message's position in the batch, from 1) and ``outcome``:
``stored`` (stored now), ``found`` (its tempId was already stored: the stored row) or
``refused`` (the message columns are NULL).

Everything else is as in 0004 (see its docstring): the lookup of stored tempIds is planned on
each call, the numbering statement probes primary keys only and keeps its plan, and no
statement joins two unindexed row sets.

It is a new function, ``ieum_append_messages_v2``, beside the old one rather than in its
place: servers still running the code of revision 0004 keep calling (and understanding) the
old one while a fleet is upgraded node by node. A later revision may drop the old one once no
server calls it.

SQLite has no server-side functions: there the store runs the same steps itself.

Revision ID: 0005
Revises: 0004
Create Date: 2024-02-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SIGNATURE = (
    "ieum_append_messages_v2(uuid[], uuid[], uuid[], text[], text[], text[], text[], timestamp[])"
)

# The output columns are also PL/pgSQL variables (id, seq, type...); use_column makes a bare
# name in the queries mean the table column. Every name below is qualified anyway.
_CREATE = """
CREATE FUNCTION ieum_append_messages_v2(
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
    -- 1. Lock the counters in id order, so that concurrent batches cannot deadlock. NO KEY
    -- UPDATE: the foreign-key checks of concurrent inserts (KEY SHARE) need not wait on it.
    PERFORM 1 FROM couples
    WHERE couples.id = ANY (p_couple_id)
    ORDER BY couples.id
    FOR NO KEY UPDATE;

    -- 2. Refuse, one by one, the messages whose couple is gone or whose sender is not one of
    -- its members. The couples that exist are locked: they stay as seen until we commit.
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
               r.ord, 'refused'::text
        FROM unnest(refused_ords) AS r (ord);
    END IF;

    -- 3. A new statement, so a new snapshot: every batch that held these locks before us has
    -- committed and its tempIds are visible. The caller sends each tempId key once. Planned
    -- on each call (EXECUTE): see revision 0004.
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
                   b.ord, 'found'::text
            FROM unnest($1, $2, $3) WITH ORDINALITY AS b (couple_id, sender_id, temp_id, ord)
            JOIN messages AS m
              ON m.couple_id = b.couple_id AND m.sender_id = b.sender_id
             AND m.temp_id = b.temp_id
            WHERE b.ord = ANY ($4)
        $stored$ USING p_couple_id, p_sender_id, p_temp_id, stored_ords;
    END IF;

    -- 4. Number the new ones, bump the counters, insert: probes of primary keys only, so
    -- this statement's plan is kept. The rows come back as inserted.
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
                              is_read, read_at, created_at, temp_id)
        SELECT f.id, f.couple_id, f.sender_id, f.seq, f.type, f.content, f.image_url,
               false, NULL, f.created_at, f.temp_id
        FROM fresh AS f
    )
    SELECT f.id, f.couple_id, f.sender_id, f.seq, f.type, f.content, f.image_url, false,
           NULL::timestamp, f.created_at, f.temp_id, f.ord, 'stored'::text
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
