"""What a committed stream owes: the pushes and webhooks of a slice of a couple's stream.

Pushes: each chat message (not yet unsent) to every device of its recipients (the partner;
both members for a NOTICE) whose platform has a provider here and which is not watching the
couple over a socket right now; never to the sender's own devices. Webhooks: each message and
edit, unsend and read mark, in seq order, then the couple's end once its stream is complete.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from zoneinfo import ZoneInfo

import orjson

from ieum_chat.observability import metrics
from ieum_chat.push import render
from ieum_chat.push.watch import DeviceWatch
from ieum_chat.store.deliveries import NewDelivery, OwedStream
from ieum_chat.store.devices import Device
from ieum_chat.store.records import NOTICE, SYSTEM_USER_ID, SYSTEM_USER_NAME, Message

__all__ = ["WEBHOOK", "owed_pushes", "owed_webhooks", "push_target_json"]

WEBHOOK = "webhook"


def push_target_json(device: Device) -> dict[str, str | None]:
    return {
        "token": device.token,
        "p256dh": device.p256dh,
        "auth": device.auth,
    }


def _recipients(message: Message, members: tuple[uuid.UUID, uuid.UUID]) -> tuple[uuid.UUID, ...]:
    if message.type == NOTICE or message.sender_id == SYSTEM_USER_ID:
        return members
    return tuple(m for m in members if m != message.sender_id)


async def owed_pushes(
    watch: DeviceWatch, owed: OwedStream, platforms: Collection[str]
) -> list[NewDelivery]:
    couple, context = owed.couple, owed.push
    if couple is None or not couple.active or context is None or not context.devices:
        return []  # no message to announce, nobody to tell, or an ended couple
    sent = [i for i in owed.items if isinstance(i, Message) and not i.unsent]
    names = {**context.names, SYSTEM_USER_ID: SYSTEM_USER_NAME}
    watching: dict[tuple[uuid.UUID, str], bool] = {}
    rows: list[NewDelivery] = []
    for index, message in enumerate(sent):
        for user in _recipients(message, couple.members):
            devices = [d for d in context.devices if d.user_id == user]
            if not devices:
                continue
            # the badge as it was when this message came: later ones of the slice not counted
            later = sum(1 for m in sent[index + 1 :] if user in _recipients(m, couple.members))
            for device in devices:
                if device.platform not in platforms:
                    metrics.PUSHES_SKIPPED.labels("no_provider").inc()
                    continue
                key = (device.user_id, device.device_id)
                if key not in watching:
                    watching[key] = await watch.watching(couple.id, user, device.device_id)
                if watching[key]:
                    metrics.PUSHES_SKIPPED.labels("watching").inc()
                    continue
                note = render.notification(
                    message,
                    names.get(message.sender_id, ""),
                    locale=device.locale,
                    show_preview=context.previews.get(user, True),
                    unread=max(1, context.unread.get(user, 0) - later),
                )
                payload = {
                    "note": render.notification_to_json(note),
                    "target": push_target_json(device),
                }
                rows.append(
                    NewDelivery(
                        channel=device.platform,
                        payload=orjson.dumps(payload).decode(),
                        created_at=message.created_at,
                        couple_id=couple.id,
                        user_id=user,
                        device_id=device.device_id,
                        seq=message.seq,
                    )
                )
    return rows


def owed_webhooks(owed: OwedStream, zone: ZoneInfo) -> tuple[list[NewDelivery], bool]:
    """The webhooks of the slice, and whether the stream is closed after them (its end,
    ``couple.dissolved``, among them)."""
    couple = owed.couple
    if couple is None:
        return [], owed.cursor.closed
    context = owed.webhook
    senders = context.senders if context else {}
    quoted = context.quoted if context else {}
    rows: list[NewDelivery] = []

    def owe(body: bytes, at: datetime, seq: int | None = None) -> None:
        rows.append(NewDelivery(WEBHOOK, body.decode(), at, str(couple.id), couple.id, seq=seq))

    for item in owed.items:
        body = render.stream_event(item, zone, senders, quoted, as_of=owed.head_seq)
        if body is not None:
            owe(body, item.created_at, item.seq)
    closed = owed.cursor.closed
    if couple.dissolved_at is not None and owed.complete and not closed:
        owe(
            render.couple_dissolved(couple.id, couple.members, couple.dissolved_at, zone),
            couple.dissolved_at,
        )
        closed = True
    return rows, closed
