"""What every push provider is given and answers, whatever its protocol.

A :class:`Target` is one device as a provider addresses it (a token, or a Web Push
subscription); a :class:`Notification` is what to show and the data the app reads; a
:class:`Result` says what the delivery engine does next: forget the push (SENT), remove the
device (DEAD), try again later (RETRY, with the provider's Retry-After when it gave one), or
give up on this push alone (FAILED: the provider refused the request itself).
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass, field
from typing import ClassVar

__all__ = [
    "Notification",
    "Outcome",
    "Provider",
    "Result",
    "Target",
    "WebPushSubscription",
]


@dataclass(frozen=True, slots=True)
class WebPushSubscription:
    """A browser's PushSubscription: where to POST and the keys to encrypt for (RFC 8291)."""

    endpoint: str
    p256dh: str  # base64url of the browser's P-256 public key
    auth: str  # base64url of the 16-byte authentication secret


@dataclass(frozen=True, slots=True)
class Target:
    platform: str  # "fcm" | "apns" | "webpush"
    token: str  # FCM registration token, APNs device token; Web Push: the endpoint
    subscription: WebPushSubscription | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    """One push. ``data`` is the contract's payload (``type, coupleId, seq, messageId,
    senderName, preview, unreadCount``); ``title``/``body`` are the visible text, already in
    the device's language and without the preview when the user turned previews off."""

    title: str
    body: str
    data: dict[str, str | int]
    collapse_key: str  # the couple: a newer push replaces an older one where the OS can
    badge: int
    ttl: int = 86400  # seconds the provider keeps it for a device that is off


class Outcome(enum.Enum):
    SENT = "sent"
    DEAD = "dead"  # the token or subscription is gone: remove the device
    RETRY = "retry"  # 429, 5xx, a timeout or a connection failure: try again later
    FAILED = "failed"  # the provider refused this request (400, 403...): do not repeat it


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    reason: str = "ok"  # a short label for metrics and logs: "ok", "unregistered", "http_429"...
    retry_after: float | None = field(default=None)  # seconds, when the provider said


class Provider(abc.ABC):
    """One push service. ``send`` never raises for what the network or the provider does:
    every failure is a :class:`Result`. It is bounded by the provider's timeout."""

    platform: ClassVar[str]

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    @abc.abstractmethod
    async def send(self, target: Target, note: Notification) -> Result: ...
