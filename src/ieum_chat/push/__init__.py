"""Push notifications and webhooks: the providers, what a committed stream owes
(``decide``), the engine that sends it (``engine``) and which devices need none (``watch``)."""

from __future__ import annotations

from ieum_chat.config import Settings
from ieum_chat.push.engine import DeliveryEngine
from ieum_chat.push.providers import providers_from
from ieum_chat.push.watch import DeviceWatch
from ieum_chat.push.webhooks import WebhookSender
from ieum_chat.store import Database

__all__ = ["DeliveryEngine", "DeviceWatch", "create_delivery"]


def create_delivery(db: Database, settings: Settings) -> DeliveryEngine:
    """The engine for the providers and the webhook these settings configure (ValueError:
    half-configured); ``enabled`` is False when there are none."""
    webhook = WebhookSender(settings) if settings.webhook_url else None
    watch = DeviceWatch.create(
        settings.redis_url, prefix=settings.redis_prefix, ttl=settings.presence_ttl
    )
    return DeliveryEngine(
        db, settings, providers=providers_from(settings), webhook=webhook, watch=watch
    )
