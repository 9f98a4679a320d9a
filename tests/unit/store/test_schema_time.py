"""The store's clock: now, as the plan's TIMESTAMP columns hold it."""

from __future__ import annotations

from datetime import UTC, datetime

from ieum_chat.store.schema import to_db_time, utcnow


def test_now_is_naive_utc_to_the_microsecond() -> None:
    before = datetime.now(UTC)
    now = utcnow()
    after = datetime.now(UTC)
    assert now.tzinfo is None
    assert before <= now.replace(tzinfo=UTC) <= after
    assert to_db_time(now) is now  # stored as it is
    # Microseconds are kept: of a few calls, not all fall on a whole second.
    assert any(utcnow().microsecond for _ in range(5))
