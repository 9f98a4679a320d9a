from __future__ import annotations

import uuid

import pytest

from ieum_chat.gateway import routing
from ieum_chat.gateway.admission import origin_allowed, select_subprotocol
from ieum_chat.gateway.routing import Route, Target, parse_app_destination, parse_subscription

C = uuid.UUID("5a1e0c6e-3f0b-4c3e-9d2a-0b8e7c6d5f41")  # fixed: it appears in test ids


def test_subscription_destinations() -> None:
    target = parse_subscription(f"/topic/couple/{C}")
    assert target is not None
    assert (target.route, target.couple_id) == (Route.COUPLE_TOPIC, C)
    errors = parse_subscription("/user/queue/errors")
    assert errors is not None
    assert errors.route is Route.ERRORS
    bad_id = parse_subscription("/topic/couple/not-a-uuid")
    assert bad_id is not None
    assert bad_id.couple_id is None


@pytest.mark.parametrize(
    "dest", ["/topic/couple/", f"/topic/couple/{C}/x", "/queue/x", "/app/chat/x", "", "/topic"]
)
def test_unknown_subscription_destinations(dest: str) -> None:
    assert parse_subscription(dest) is None


def test_app_destinations() -> None:
    routes = (
        ("", Route.SEND),
        ("/read", Route.READ),
        ("/typing", Route.TYPING),
        ("/edit", Route.EDIT),
        ("/unsend", Route.UNSEND),
        ("/delete", Route.DELETE),
        ("/react", Route.REACT),
    )
    for suffix, route in routes:
        target = parse_app_destination(f"/app/chat/{C}{suffix}")
        assert target is not None
        assert (target.route, target.couple_id) == (route, C)


@pytest.mark.parametrize(
    "dest",
    [
        f"/topic/couple/{C}",
        f"/app/chat/{C}/remove",
        f"/app/chat/{C}/edit/x",
        "/app/chat/",
        "/app/other",
        "x",
    ],
)
def test_other_send_destinations_are_refused(dest: str) -> None:
    assert parse_app_destination(dest) is None


def test_remembered_app_destinations_stay_few_and_short() -> None:
    remembered = routing._remembered_app_destination
    remembered.cache_clear()
    for _ in range(routing._REMEMBERED_DESTINATIONS + 100):
        target = parse_app_destination(f"/app/chat/{uuid.uuid4()}/typing")
        assert target is not None
        assert target.route is Route.TYPING
    assert remembered.cache_info().currsize == routing._REMEMBERED_DESTINATIONS
    remembered.cache_clear()
    long = f"/app/chat/{C}/{'x' * 10_000}"
    assert parse_app_destination(long) is None
    assert parse_app_destination(f"/app/chat/{'0' * 10_000}") is not None
    assert remembered.cache_info().currsize == 0
    # The same answer, asked twice, from the cache the second time.
    assert parse_app_destination(f"/app/chat/{C}/unsend") == Target(Route.UNSEND, C)
    assert parse_app_destination(f"/app/chat/{C}/unsend") == Target(Route.UNSEND, C)
    assert remembered.cache_info().hits == 1


def test_subprotocol_selection_prefers_highest() -> None:
    assert select_subprotocol(["v10.stomp", "v11.stomp", "v12.stomp"]) == ("v12.stomp", "1.2")
    assert select_subprotocol(["v10.stomp", "v11.stomp"]) == ("v11.stomp", "1.1")
    assert select_subprotocol(["mqtt"]) == (None, None)
    assert select_subprotocol([]) == (None, None)


def test_origins() -> None:
    assert origin_allowed("https://a.example", ["*"])
    assert origin_allowed(None, ["https://a.example"])
    assert origin_allowed("https://a.example", ["https://a.example"])
    assert not origin_allowed("https://evil.example", ["https://a.example"])
