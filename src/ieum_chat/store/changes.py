"""Changes to sent messages, and the couple stream they join.

:meth:`ChangesStore.apply_changes` stores a batch of changes (edits, unsends, reactions, read
marks, hides) in one write transaction, the way ``appends`` stores messages: it locks the
counters of every couple it touches (in id order; the same lock appends take, so a couple's
messages and changes are numbered in one order), refuses on their own the changes of
non-members, answers a repeated tempId with the stored event, then applies each change in
batch order (a later change of the batch sees what an earlier one did) and numbers its event
from the couple's ``last_seq``. Each change is checked against the message as it is under the
lock: the sender's own message, not unsent, within the unsend window, at most
``MAX_REACTIONS`` emojis. A change that changes nothing (a reaction already there, an unsend
or hide done before, read marks with nothing unread) is applied with no event.

The stream they join is read in ``stream``.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection

from ieum_chat.store.engines import BaseEngine
from ieum_chat.store.messages import (
    MESSAGE_COLUMNS,
    chunks,
    lock_counters_txn,
    lookup_query,
    unread_from_partner,
)
from ieum_chat.store.pool import AnyRow, SQLBaseStore
from ieum_chat.store.records import (
    MAX_REACTIONS,
    Applied,
    Changed,
    ChangeKind,
    Event,
    Hide,
    Message,
    NewChange,
    Reaction,
    Refusal,
    Refused,
    message_from_row,
    reactions_json,
)
from ieum_chat.store.schema import (
    couples,
    message_events,
    message_hides,
    messages,
    to_db_time,
    uploads,
)
from ieum_chat.store.stream import EVENT_COLUMNS, HIDE_COLUMNS, event_from_row, hide_from_row
from ieum_chat.store.uploads import UploadState

__all__ = ["ChangesStore"]

_DedupKey = tuple[uuid.UUID, uuid.UUID, str]


class _Batch:
    """One apply_changes transaction: the locked counters, the messages the batch names (read
    once, changed in memory, written back in one statement), and what it has numbered."""

    def __init__(self, conn: Connection, unsend_window: float) -> None:
        self.conn = conn
        self.unsend_window = unsend_window
        self.last_seq: dict[uuid.UUID, int] = {}
        self.members: dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID]] = {}
        self.events: list[Event] = []
        self.held: dict[uuid.UUID, Message] = {}
        self.dirty: set[uuid.UUID] = set()
        self.hides: dict[tuple[uuid.UUID, uuid.UUID], Hide] = {}
        self.new_hides: list[Hide] = []
        self.scrubbed: set[uuid.UUID] = set()
        # The files of unsent messages, by URL: their uploads are doomed.
        self.doomed: set[str] = set()

    def lock(self, couple_ids: Sequence[uuid.UUID]) -> None:
        self.last_seq, self.members = lock_counters_txn(self.conn, couple_ids)

    def load(self, ids: Iterable[uuid.UUID], hidden: Iterable[uuid.UUID]) -> None:
        """Read the messages ``ids`` and the hides of the messages ``hidden`` at once (under
        the counter locks: no other change of these couples runs meanwhile)."""
        for chunk in chunks(sorted(set(ids))):
            query = select(*MESSAGE_COLUMNS).where(messages.c.id.in_(chunk))
            for row in self.conn.execute(query):
                self.held[row.id] = message_from_row(row)
        for chunk in chunks(sorted(set(hidden))):
            query = select(*HIDE_COLUMNS).where(message_hides.c.message_id.in_(chunk))
            for row in self.conn.execute(query):
                self.hides[(row.user_id, row.message_id)] = hide_from_row(row)

    def event(self, change: NewChange, data: dict[str, Any] | None = None) -> Event:
        seq = self.last_seq[change.couple_id] = self.last_seq[change.couple_id] + 1
        event = Event(
            couple_id=change.couple_id,
            seq=seq,
            kind=change.kind,
            actor_id=change.actor_id,
            message_id=change.message_id,
            temp_id=change.temp_id,
            created_at=change.created_at,
            data=data or {},
        )
        self.events.append(event)
        return event

    def message(self, change: NewChange) -> Message | Refused:
        """The change's message as it is now (with this batch's earlier changes), if it is
        one of the couple's."""
        found = self.held.get(change.message_id) if change.message_id is not None else None
        if found is None or found.couple_id != change.couple_id:
            return Refused(change, Refusal.NOT_FOUND, f"no message {change.message_id} here")
        return found

    def save(self, message: Message, **changes: Any) -> Message:
        """Change the message (``changes`` by field name, as Message holds them); written
        back by :meth:`flush`."""
        changed = dataclasses.replace(message, **changes)
        self.held[message.id] = changed
        self.dirty.add(message.id)
        return changed

    def hide(self, hide: Hide) -> None:
        self.hides[(hide.user_id, hide.message_id)] = hide
        self.new_hides.append(hide)

    def flush(self) -> None:
        """Write the changed messages back: one statement for all of them."""
        if not self.dirty:
            return
        self.conn.execute(
            update(messages)
            .where(messages.c.id == bindparam("b_id"))
            .values(
                content=bindparam("b_content"),
                image_url=bindparam("b_image_url"),
                media_url=bindparam("b_media_url"),
                media=bindparam("b_media"),
                edited_at=bindparam("b_edited_at"),
                unsent_at=bindparam("b_unsent_at"),
                reactions=bindparam("b_reactions"),
            ),
            [
                {
                    "b_id": m.id,
                    "b_content": m.content,
                    "b_image_url": m.image_url,
                    "b_media_url": m.media_url,
                    "b_media": m.media.to_json() if m.media is not None else None,
                    "b_edited_at": m.edited_at,
                    "b_unsent_at": m.unsent_at,
                    "b_reactions": reactions_json(m.reactions),
                }
                for m in (self.held[i] for i in sorted(self.dirty))
            ],
        )
        self.dirty.clear()

    def finish(self) -> None:
        """Write back the messages, the hides, the erased edits; one bump per couple
        numbered, one insert for the events."""
        self.flush()
        if self.new_hides:
            self.conn.execute(
                insert(message_hides), [dataclasses.asdict(h) for h in self.new_hides]
            )
        if self.scrubbed:
            # An unsend erases the text of the message's earlier edits: stored ones here,
            # this batch's as they are inserted below.
            self.conn.execute(
                update(message_events)
                .where(
                    message_events.c.message_id.in_(sorted(self.scrubbed)),
                    message_events.c.kind == ChangeKind.EDIT.value,
                )
                .values(data=None)
            )
        if self.doomed:
            self.conn.execute(
                update(uploads)
                .where(uploads.c.url.in_(sorted(self.doomed)))
                .values(state=UploadState.DOOMED.value)
            )
        if not self.events:
            return
        bumped = sorted({e.couple_id for e in self.events})
        self.conn.execute(
            update(couples)
            .where(couples.c.id == bindparam("b_id"))
            .values(last_seq=bindparam("b_last_seq")),
            [{"b_id": c, "b_last_seq": self.last_seq[c]} for c in bumped],
        )
        self.conn.execute(
            insert(message_events),
            [
                {
                    "couple_id": e.couple_id,
                    "seq": e.seq,
                    "kind": e.kind.value,
                    "actor_id": e.actor_id,
                    "message_id": e.message_id,
                    "temp_id": e.temp_id,
                    "created_at": e.created_at,
                    "data": None
                    if not e.data or (e.kind is ChangeKind.EDIT and e.message_id in self.scrubbed)
                    else orjson.dumps(e.data).decode(),
                }
                for e in self.events
            ],
        )


def _own_message(batch: _Batch, change: NewChange, verb: str) -> Message | Refused:
    """The change's message, if it is the actor's own (edit and unsend are the sender's)."""
    found = batch.message(change)
    if not isinstance(found, Refused) and found.sender_id != change.actor_id:
        return Refused(change, Refusal.FORBIDDEN, f"only the sender may {verb} a message")
    return found


def _edit(batch: _Batch, change: NewChange) -> Changed:
    found = _own_message(batch, change, "edit")
    if isinstance(found, Refused):
        return found
    if found.unsent:
        return Refused(change, Refusal.INVALID, "the message was unsent; it cannot be edited")
    if found.type != "TEXT":
        return Refused(
            change, Refusal.INVALID, f"only TEXT messages can be edited, not {found.type}"
        )
    edited = batch.save(found, content=change.content, edited_at=change.created_at)
    event = batch.event(change, {"content": change.content})
    return Applied(change, event, True, (edited,))


def _unsend(batch: _Batch, change: NewChange) -> Changed:
    found = _own_message(batch, change, "unsend")
    if isinstance(found, Refused):
        return found
    if found.unsent:
        return Applied(change, None, True, (found,))
    age = (change.created_at - found.created_at).total_seconds()
    if age > batch.unsend_window:
        return Refused(
            change,
            Refusal.WINDOW_EXPIRED,
            f"a message can be unsent within {batch.unsend_window:g} seconds of sending",
        )
    unsent = batch.save(
        found,
        content=None,
        image_url=None,
        media_url=None,
        media=None,
        reactions=(),
        unsent_at=change.created_at,
    )
    if found.media_url is not None:
        # Its file goes too: the upload cleanup deletes what is doomed.
        batch.doomed.add(found.media_url)
    if found.edited_at is not None:
        # The text of its earlier edits goes too: a device replaying the stream never sees it.
        batch.scrubbed.add(found.id)
    return Applied(change, batch.event(change), True, (unsent,))


def _react(batch: _Batch, change: NewChange) -> Changed:
    found = batch.message(change)
    if isinstance(found, Refused):
        return found
    if found.unsent:
        return Refused(change, Refusal.INVALID, "the message was unsent; it takes no reactions")
    emoji, actor = change.emoji, change.actor_id
    assert emoji is not None
    reactions = list(found.reactions)
    index = next((i for i, r in enumerate(reactions) if r.emoji == emoji), None)
    current = reactions[index] if index is not None else None
    if change.add:
        if current is not None and actor in current.user_ids:
            return Applied(change, None, True, (found,))
        if current is None:
            if len(reactions) >= MAX_REACTIONS:
                return Refused(
                    change,
                    Refusal.INVALID,
                    f"a message takes at most {MAX_REACTIONS} different reactions",
                )
            reactions.append(Reaction(emoji, (actor,)))
        else:
            assert index is not None
            reactions[index] = Reaction(emoji, (*current.user_ids, actor))
    else:
        if current is None or actor not in current.user_ids:
            return Applied(change, None, True, (found,))
        assert index is not None
        left = tuple(u for u in current.user_ids if u != actor)
        if left:
            reactions[index] = Reaction(emoji, left)
        else:
            del reactions[index]
    reacted = batch.save(found, reactions=tuple(reactions))
    event = batch.event(change, {"emoji": emoji, "op": "add" if change.add else "remove"})
    return Applied(change, event, True, (reacted,))


def _read(batch: _Batch, change: NewChange) -> Changed:
    # `is_read = false` in the WHERE makes a concurrent second mark skip rows the first
    # changed, so each change is returned once. Unsent messages are never marked: the
    # batch's unsends so far are written first.
    batch.flush()
    statement = (
        update(messages)
        .where(*unread_from_partner(change.couple_id, change.actor_id))
        .where(messages.c.unsent_at.is_(None))
        .values(is_read=True, read_at=change.created_at)
        .returning(*MESSAGE_COLUMNS)
    )
    rows: list[AnyRow] = []
    if change.up_to_seq is not None:
        rows.extend(batch.conn.execute(statement.where(messages.c.seq <= change.up_to_seq)))
    else:
        wanted = list(dict.fromkeys(change.message_ids or ()))
        for chunk in chunks(wanted):
            rows.extend(batch.conn.execute(statement.where(messages.c.id.in_(chunk))))
    marked = tuple(sorted((message_from_row(row) for row in rows), key=lambda m: m.seq))
    for message in marked:
        if message.id in batch.held:
            batch.held[message.id] = message
    if not marked:
        return Applied(change, None, True)
    data = {"messageIds": [str(m.id) for m in marked], "seqs": [m.seq for m in marked]}
    return Applied(change, batch.event(change, data), True, marked)


def _hide(batch: _Batch, change: NewChange) -> Changed:
    found = batch.message(change)
    if isinstance(found, Refused):
        return found
    known = batch.hides.get((change.actor_id, found.id))
    if known is not None:
        return Applied(change, None, False, (found,), known)
    hide = Hide(
        user_id=change.actor_id,
        message_id=found.id,
        couple_id=change.couple_id,
        position=batch.last_seq[change.couple_id],
        created_at=change.created_at,
    )
    batch.hide(hide)
    return Applied(change, None, True, (found,), hide)


_APPLY = {
    ChangeKind.EDIT: _edit,
    ChangeKind.UNSEND: _unsend,
    ChangeKind.REACT: _react,
    ChangeKind.READ: _read,
    ChangeKind.HIDE: _hide,
}


_EVENT_KEY_COLUMNS = (
    message_events.c.couple_id,
    message_events.c.actor_id,
    message_events.c.temp_id,
)


def _apply_changes_txn(
    conn: Connection, policy: BaseEngine, batch: Sequence[NewChange], unsend_window: float
) -> list[Changed]:
    work = _Batch(conn, unsend_window)
    work.lock([c.couple_id for c in batch])

    # every tempId of the batch, in one lookup (hides and read marks carry none)
    keys: list[_DedupKey] = list(
        dict.fromkeys(
            (c.couple_id, c.actor_id, c.temp_id)
            for c in batch
            if c.temp_id is not None and c.kind is not ChangeKind.HIDE
        )
    )
    known: dict[_DedupKey, Event] = {}
    for key_chunk in chunks(keys):
        lookup = lookup_query(policy, EVENT_COLUMNS, _EVENT_KEY_COLUMNS, key_chunk)
        for row in conn.execute(lookup.statement, lookup.params):
            known[(row.couple_id, row.actor_id, row.temp_id)] = event_from_row(row)

    # the messages the members' changes name (and those of the repeated tempIds' events)
    allowed = [c for c in batch if c.actor_id in work.members.get(c.couple_id, ())]
    work.load(
        [c.message_id for c in allowed if c.message_id is not None]
        + [e.message_id for e in known.values() if e.message_id is not None],
        [c.message_id for c in allowed if c.kind is ChangeKind.HIDE and c.message_id],
    )

    results: list[Changed] = []
    for change in batch:
        if change.actor_id not in work.members.get(change.couple_id, ()):
            results.append(
                Refused(
                    change,
                    Refusal.NOT_A_MEMBER,
                    f"couple {change.couple_id} does not exist "
                    f"or {change.actor_id} is not one of its members",
                )
            )
            continue
        key = (
            (change.couple_id, change.actor_id, change.temp_id)
            if change.temp_id is not None and change.kind is not ChangeKind.HIDE
            else None
        )
        prior = known.get(key) if key is not None else None
        if prior is not None:
            # The same request again: answered as the first time, with its message as now.
            found = (
                work.message(dataclasses.replace(change, message_id=prior.message_id))
                if prior.message_id is not None
                else None
            )
            now = (found,) if isinstance(found, Message) else ()
            results.append(Applied(change, prior, False, now))
            continue
        result = _APPLY[change.kind](work, change)
        if key is not None and isinstance(result, Applied) and result.event is not None:
            known[key] = result.event
        results.append(result)
    work.finish()
    return results


def _checked(change: NewChange) -> NewChange:
    created_at = to_db_time(change.created_at)
    if created_at is change.created_at:
        return change
    return dataclasses.replace(change, created_at=created_at)


class ChangesStore(SQLBaseStore):
    async def apply_changes(
        self, batch: Sequence[NewChange], *, unsend_window: float = 86400.0
    ) -> list[Changed]:
        """Apply a batch of changes (any couples, any kinds) in one transaction; one outcome
        per change, in batch order. A change repeating an earlier one's tempId (same couple
        and actor) is answered with its stored event (``created=False``) and applied once."""
        if not batch:
            return []
        checked = [_checked(change) for change in batch]
        results = await self.db_pool.write_txn(
            "apply_changes", _apply_changes_txn, self.db_pool.policy, checked, unsend_window
        )
        # Answer with the caller's own objects (as append_messages does).
        return [
            dataclasses.replace(result, change=original)
            if isinstance(result, Applied)
            else dataclasses.replace(result, new=original)
            for original, result in zip(batch, results, strict=True)
        ]

    async def mark_read(
        self,
        couple_id: uuid.UUID,
        reader_id: uuid.UUID,
        *,
        message_ids: Sequence[uuid.UUID] | None = None,
        up_to_seq: int | None = None,
        read_at: datetime,
    ) -> list[Message]:
        """Mark the partner's unread messages read (a READ change on its own): those in
        ``message_ids`` or every one with ``seq <= up_to_seq`` (give exactly one). Ids of
        other couples, of the reader's own or of unsent messages are ignored; a reader who is
        not a member changes nothing. Returns the rows that changed, in seq order."""
        if (message_ids is None) == (up_to_seq is None):
            raise ValueError("mark_read needs exactly one of message_ids or up_to_seq")
        change = NewChange(
            ChangeKind.READ,
            couple_id,
            reader_id,
            read_at,
            message_ids=tuple(message_ids) if message_ids is not None else None,
            up_to_seq=up_to_seq,
        )
        (result,) = await self.apply_changes([change])
        return list(result.messages) if isinstance(result, Applied) else []
