"""The schema of the original plan (``seed-plan.md``, "Database"), as SQL: what we upgrade from.

The plan was written for PostgreSQL and its ``messages`` statement is kept verbatim; ``users``
and ``couples`` are the shapes it references. Revision 0001 runs these statements for whichever
tables and indexes a database lacks, so a fresh database and one that already holds the plan's
tables reach revision 0002 in the same shape.

The SQLite rendering changes only what SQLite cannot take as written: ``NOW()`` becomes
``CURRENT_TIMESTAMP`` (also UTC), and ``UUID`` becomes ``CHAR(32)``, the form in which
SQLAlchemy's ``Uuid`` type stores ids there (a column declared ``UUID`` would get NUMERIC
affinity, and an all-digit hex id would be turned into a number).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["PLAN_INDEXES", "PLAN_TABLES", "plan_statements"]

_POSTGRESQL_TABLES = {
    "users": """
CREATE TABLE users (
    id UUID PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    profile_image TEXT,
    created_at TIMESTAMP DEFAULT NOW()
)""",
    "couples": """
CREATE TABLE couples (
    id UUID PRIMARY KEY,
    user1_id UUID NOT NULL REFERENCES users(id),
    user2_id UUID NOT NULL REFERENCES users(id),
    created_at TIMESTAMP DEFAULT NOW()
)""",
    "messages": """
CREATE TABLE messages (
    id UUID PRIMARY KEY,
    couple_id UUID NOT NULL,
    sender_id UUID NOT NULL,
    content TEXT,
    type VARCHAR(20) NOT NULL,  -- TEXT, IMAGE, STICKER
    image_url TEXT,
    is_read BOOLEAN DEFAULT FALSE,
    read_at TIMESTAMP,
    created_at TIMESTAMP DEFAULT NOW(),
    FOREIGN KEY (couple_id) REFERENCES couples(id),
    FOREIGN KEY (sender_id) REFERENCES users(id)
)""",
}


def _for_sqlite(sql: str) -> str:
    return sql.replace("UUID", "CHAR(32)").replace("NOW()", "CURRENT_TIMESTAMP")


# dialect name -> table name -> CREATE TABLE, in dependency order
PLAN_TABLES: Mapping[str, Mapping[str, str]] = {
    "postgresql": _POSTGRESQL_TABLES,
    "sqlite": {name: _for_sqlite(sql) for name, sql in _POSTGRESQL_TABLES.items()},
}

_INDEXES = {
    "idx_messages_couple_created": (
        "CREATE INDEX idx_messages_couple_created ON messages(couple_id, created_at DESC)"
    ),
    "idx_messages_unread": (
        "CREATE INDEX idx_messages_unread ON messages(couple_id, is_read, created_at)"
    ),
}

# dialect name -> index name -> CREATE INDEX (all on ``messages``)
PLAN_INDEXES: Mapping[str, Mapping[str, str]] = {"postgresql": _INDEXES, "sqlite": _INDEXES}


def plan_statements(dialect: str) -> list[str]:
    """Every statement of the plan's schema for ``dialect`` ("sqlite" or "postgresql")."""
    try:
        tables, indexes = PLAN_TABLES[dialect], PLAN_INDEXES[dialect]
    except KeyError:
        raise ValueError(f"no plan schema for dialect {dialect!r}") from None
    return [*tables.values(), *indexes.values()]
