"""The destinations of the contract, parsed once per frame."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass

__all__ = ["ERRORS_QUEUE", "Route", "Target", "parse_app_destination", "parse_subscription"]

ERRORS_QUEUE = "/user/queue/errors"
_TOPIC_PREFIX = "/topic/couple/"
_APP_PREFIX = "/app/chat/"


class Route(enum.Enum):
    COUPLE_TOPIC = "couple-topic"
    ERRORS = "errors"
    SEND = "send"
    READ = "read"
    TYPING = "typing"


@dataclass(frozen=True, slots=True)
class Target:
    route: Route
    couple_id: uuid.UUID | None
    """``None`` when the path names a couple that is not a valid id (nobody is a member)."""


def _couple(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def parse_subscription(destination: str) -> Target | None:
    """A SUBSCRIBE destination, or ``None`` when the server has no such destination."""
    if destination == ERRORS_QUEUE:
        return Target(Route.ERRORS, None)
    if destination.startswith(_TOPIC_PREFIX):
        rest = destination[len(_TOPIC_PREFIX) :]
        if rest and "/" not in rest:
            return Target(Route.COUPLE_TOPIC, _couple(rest))
    return None


def parse_app_destination(destination: str) -> Target | None:
    """A SEND destination under ``/app/chat/``, or ``None`` for anything else."""
    if not destination.startswith(_APP_PREFIX):
        return None
    couple, _, action = destination[len(_APP_PREFIX) :].partition("/")
    if not couple:
        return None
    route = {"": Route.SEND, "read": Route.READ, "typing": Route.TYPING}.get(action)
    if route is None:
        return None
    return Target(route, _couple(couple))
