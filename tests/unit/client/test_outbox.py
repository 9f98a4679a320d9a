"""Outbox bookkeeping: bounded, ordered, keyed by tempId, re-sent per connection."""

from __future__ import annotations

import asyncio

import pytest

from ieum_chat.client import SendError, SendReceipt
from ieum_chat.client._outbox import Outbox


async def test_entries_are_written_once_per_connection_in_order() -> None:
    box = Outbox(10)
    for name in ("a", "b", "c"):
        box.add(name, name.encode())
    assert [e.temp_id for e in box.due(1, 0.0)] == ["a", "b", "c"]
    for entry in box.due(1, 0.0):
        box.mark_written(entry, 1, f"r-{entry.temp_id}")
    assert box.due(1, 0.0) == []
    # A new connection: every entry without a RECEIPT is due again, same order, same tempId.
    again = box.due(2, 0.0)
    assert [e.temp_id for e in again] == ["a", "b", "c"]
    box.mark_written(again[0], 2, "r2")
    assert again[0].attempts == 2
    assert again[0].receipt_id == "r2"


async def test_receipt_completes_the_send() -> None:
    box = Outbox(10)
    entry = box.add("t", b"{}")
    box.mark_written(entry, 1, "r")
    box.mark_written(entry, 2, "r2")
    assert box.complete("t") is entry
    assert entry.future.result() == SendReceipt("t", 2)
    assert "t" not in box
    assert len(box) == 0
    assert box.complete("t") is None  # a late duplicate RECEIPT


async def test_repeated_temp_id_joins_the_pending_send() -> None:
    box = Outbox(10)
    first = box.add("t", b"1")
    assert box.add("t", b"2") is first
    assert len(box) == 1


async def test_failure_reaches_the_caller() -> None:
    box = Outbox(10)
    entry = box.add("t", b"{}")
    box.fail("t", SendError("SEND_FAILED", "x", temp_id="t"))
    with pytest.raises(SendError) as info:
        await entry.future
    assert info.value.code == "SEND_FAILED"
    assert "t" not in box


async def test_failure_nobody_awaits_is_not_reported_as_unretrieved() -> None:
    box = Outbox(10)
    box.add("t", b"{}")
    box.fail_all(SendError("SEND_FAILED", "x"))
    assert len(box) == 0


async def test_defer_makes_an_entry_due_later_on_any_connection() -> None:
    box = Outbox(10)
    entry = box.add("t", b"{}")
    box.mark_written(entry, 1, "r")
    box.defer("t", until=5.0)
    assert entry.retries == 1
    assert entry.receipt_id is None
    assert box.due(1, 4.0) == []
    assert box.next_due(1, 4.0) == pytest.approx(1.0)
    assert box.due(1, 5.0) == [entry]
    assert box.next_due(1, 5.0) is None
    assert box.defer("unknown", 1.0) is None


async def test_bounded_with_backpressure() -> None:
    box = Outbox(2)
    box.add("a", b"")
    box.add("b", b"")
    with pytest.raises(OverflowError):
        box.add("c", b"")
    waiter = asyncio.create_task(box.wait_for_space())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    box.complete("a")
    await asyncio.wait_for(waiter, 1)
    box.add("c", b"")
    assert [e.temp_id for e in box.due(1, 0.0)] == ["b", "c"]


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Outbox(0)
