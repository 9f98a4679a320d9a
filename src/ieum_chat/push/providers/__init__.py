"""The push providers the settings turn on, keyed by platform (``Target.platform``).

A provider is on when all its settings are; one that is half-configured, or whose key file
cannot be read, stops the server at start with a ValueError saying which setting is wrong,
rather than failing every push later.
"""

from __future__ import annotations

from ieum_chat.config import Settings

from .base import Notification, Outcome, Provider, Result, Target, WebPushSubscription

__all__ = [
    "Notification",
    "Outcome",
    "Provider",
    "Result",
    "Target",
    "WebPushSubscription",
    "providers_from",
]

_APNS = ("apns_key_file", "apns_key_id", "apns_team_id", "apns_topic")
_VAPID = ("vapid_private_key", "vapid_subject")


def _names(settings: Settings, fields: tuple[str, ...], *, present: bool) -> list[str]:
    return [f"IEUM_{f.upper()}" for f in fields if bool(getattr(settings, f)) is present]


def providers_from(settings: Settings) -> dict[str, Provider]:
    """One provider per configured platform; ValueError when settings are half-set or a key
    cannot be loaded. The caller owns the providers: ``await provider.close()`` at shutdown."""
    providers: dict[str, Provider] = {}
    for fields, label in ((_APNS, "APNs"), (_VAPID, "Web Push")):
        given = _names(settings, fields, present=True)
        missing = _names(settings, fields, present=False)
        if given and missing:
            raise ValueError(
                f"{label} is half-configured: {', '.join(given)} set "
                f"but {', '.join(missing)} missing"
            )
    if settings.fcm_credentials:
        from .fcm import FcmProvider

        providers["fcm"] = FcmProvider(settings)
    if not _names(settings, _APNS, present=False):
        from .apns import ApnsProvider

        providers["apns"] = ApnsProvider(settings)
    if not _names(settings, _VAPID, present=False):
        from .webpush import WebPushProvider

        providers["webpush"] = WebPushProvider(settings)
    return providers
