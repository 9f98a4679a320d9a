from __future__ import annotations

from ieum_chat.config import Settings
from ieum_chat.push.providers.base import Provider


def providers_from(settings: Settings) -> dict[str, Provider]:
    return {}
