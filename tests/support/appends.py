"""What tests expect of ``Database.append_messages`` when every message of the batch is valid:
each outcome a :class:`Stored`. A :class:`Refused` among them fails the test, naming why."""

from __future__ import annotations

from collections.abc import Sequence

from ieum_chat.store import Appended, Stored

__all__ = ["all_stored"]


def all_stored(outcomes: Sequence[Appended]) -> list[Stored]:
    refused = [outcome for outcome in outcomes if not isinstance(outcome, Stored)]
    if refused:
        raise AssertionError(f"the store refused {len(refused)} message(s): {refused}")
    return [outcome for outcome in outcomes if isinstance(outcome, Stored)]
