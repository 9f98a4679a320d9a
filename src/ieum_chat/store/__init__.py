"""Persistence: SQLite or PostgreSQL through SQLAlchemy Core, chosen by URL.

One module per aggregate (``users``, ``couples``, ``messages``, whose append path is in
``appends``), each a set of named transactions; ``records`` the frozen rows they return;
``engines`` holds every SQLite/PostgreSQL difference (the append path included);
``driver_errors`` is the one place driver exceptions become ``StoreError``; ``routing`` where
a couple's history and stream reads go (a read replica, or the primary); ``schema`` the
tables; ``migrations`` the Alembic revisions that create them or upgrade the plan's schema in
place.
"""

from __future__ import annotations

from ieum_chat.store.database import Database
from ieum_chat.store.engines import normalize_url
from ieum_chat.store.migrate import upgrade_schema
from ieum_chat.store.records import (
    Appended,
    Couple,
    Message,
    NewMessage,
    Refusal,
    Refused,
    Stored,
    User,
)

__all__ = [
    "Appended",
    "Couple",
    "Database",
    "Message",
    "NewMessage",
    "Refusal",
    "Refused",
    "Stored",
    "User",
    "normalize_url",
    "upgrade_schema",
]
