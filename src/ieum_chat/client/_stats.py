"""The client's counters: what it did about the network and the application's pace."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ClientStats"]


@dataclass(slots=True)
class ClientStats:
    """Counters for monitoring and tests; they only ever grow."""

    connects: int = 0
    disconnects: int = 0
    receipts: int = 0
    resent: int = 0
    """SEND frames written again after a reconnect or a transient error."""
    retries: int = 0
    """Automatic retries scheduled after RATE_LIMITED or a database failure."""
    send_failures: int = 0
    """Sends and changes of messages failed with SendError."""
    duplicates_dropped: int = 0
    gaps: int = 0
    overflows: int = 0
    """Stream entries refused because the application was not reading (fetched again later)."""
    resyncs: int = 0
    events_dropped: int = 0
    """Events outside the stream (typing, presence, errors, live deletes) lost to a full
    queue."""
