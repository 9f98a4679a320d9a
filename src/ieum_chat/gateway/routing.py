"""The destinations of the contract, parsed once per frame."""

from __future__ import annotations

import enum
import functools
import uuid
from dataclasses import dataclass

__all__ = [
    "CHANGE_ROUTES",
    "ERRORS_QUEUE",
    "EVENTS_QUEUE",
    "Route",
    "Target",
    "parse_app_destination",
    "parse_subscription",
]

ERRORS_QUEUE = "/user/queue/errors"
# The session user's own events: the messages they hid for themselves (delete for me).
EVENTS_QUEUE = "/user/queue/events"
_TOPIC_PREFIX = "/topic/couple/"
_APP_PREFIX = "/app/chat/"


class Route(enum.Enum):
    COUPLE_TOPIC = "couple-topic"
    ERRORS = "errors"
    EVENTS = "events"
    SEND = "send"
    READ = "read"
    TYPING = "typing"
    EDIT = "edit"
    UNSEND = "unsend"
    DELETE = "delete"
    REACT = "react"


# SEND destinations that change a sent message; the value is the action's name.
CHANGE_ROUTES = frozenset({Route.EDIT, Route.UNSEND, Route.DELETE, Route.REACT})
_APP_ROUTES = {"": Route.SEND} | {
    route.value: route for route in (Route.READ, Route.TYPING, *CHANGE_ROUTES)
}


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
    if destination == EVENTS_QUEUE:
        return Target(Route.EVENTS, None)
    if destination.startswith(_TOPIC_PREFIX):
        rest = destination[len(_TOPIC_PREFIX) :]
        if rest and "/" not in rest:
            return Target(Route.COUPLE_TOPIC, _couple(rest))
    return None


def parse_app_destination(destination: str) -> Target | None:
    """A SEND destination under ``/app/chat/``, or ``None`` for anything else."""
    if len(destination) > _REMEMBERED_LENGTH:
        return _parse_app_destination(destination)
    return _remembered_app_destination(destination)


def _parse_app_destination(destination: str) -> Target | None:
    if not destination.startswith(_APP_PREFIX):
        return None
    couple, _, action = destination[len(_APP_PREFIX) :].partition("/")
    if not couple:
        return None
    route = _APP_ROUTES.get(action)
    if route is None:
        return None
    return Target(route, _couple(couple))


# Every SEND names its destination, and a couple's members send to the same few: the answers
# for the last destinations seen are kept (parsing one, its couple id above all, cost 1.6 us
# a message). Only destinations as long as the contract's are kept, so the cache holds at most
# _REMEMBERED_DESTINATIONS short strings whatever clients send.
_REMEMBERED_LENGTH = len(_APP_PREFIX) + len(str(uuid.UUID(int=0))) + 1 + max(map(len, _APP_ROUTES))
_REMEMBERED_DESTINATIONS = 4096
_remembered_app_destination = functools.lru_cache(maxsize=_REMEMBERED_DESTINATIONS)(
    _parse_app_destination
)
