"""Every REST endpoint and every dependency it takes is a coroutine function: FastAPI runs a
plain function on a worker thread, a hop to another thread and back for each request. And no
dependency comes twice in an endpoint's tree: FastAPI walks every node of the tree on each
request, those whose value it has cached included."""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from tests.unit.api.conftest import Api


def api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """The app's API routes, inside included routers too (whatever shape this FastAPI gives
    them: a flat list, or routers that keep the one included)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
            continue
        for inner in (getattr(route, "routes", None), getattr(route, "original_router", None)):
            if isinstance(inner, list):
                yield from api_routes(inner)
            elif inner is not None and isinstance(getattr(inner, "routes", None), list):
                yield from api_routes(inner.routes)


def plain_functions(dependant: Dependant) -> Iterator[str]:
    call = dependant.call
    if call is not None:
        function = call if inspect.isroutine(call) else type(call).__call__
        if not (inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function)):
            yield getattr(call, "__qualname__", repr(call))
    for sub in dependant.dependencies:
        yield from plain_functions(sub)


def calls(dependant: Dependant) -> Iterator[str]:
    """The name of each dependency in the tree under ``dependant``, once for each node."""
    for sub in dependant.dependencies:
        yield getattr(sub.call, "__qualname__", repr(sub.call))
        yield from calls(sub)


async def test_no_endpoint_or_dependency_runs_on_a_worker_thread(api: Api) -> None:
    routes = list(api_routes(api.app.routes))
    assert {"/chat/room", "/chat/rooms/{roomId}/messages", "/admin/v1/couples"} <= {
        route.path for route in routes
    }
    found = {(route.path, name) for route in routes for name in plain_functions(route.dependant)}
    assert found == set()


async def test_no_dependency_comes_twice_in_an_endpoint_tree(api: Api) -> None:
    # A chain (the room's dependency on the caller's, both on the chat service's) gave the
    # history page ten nodes, each walked on every request.
    routes = list(api_routes(api.app.routes))
    page = next(r for r in routes if r.path == "/chat/rooms/{roomId}/messages")
    assert "current_room" in set(calls(page.dependant))
    repeated = {
        (route.path, name)
        for route in routes
        for name, count in Counter(calls(route.dependant)).items()
        if count > 1
    }
    assert repeated == set()
