"""Operations endpoints: liveness, readiness and the Prometheus scrape."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse

from ieum_chat.chat.service import ChatService
from ieum_chat.errors import BrokerError, StoreError
from ieum_chat.observability import metrics

__all__ = ["install_operations"]

_CHECK_TIMEOUT = 2.0


def install_operations(app: FastAPI, chat: Callable[[], ChatService]) -> None:
    @app.get("/healthz", tags=["operations"], summary="The process is up")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="The node can serve: its database is reachable",
        description=(
            "200 `ok` when the database and the broker answer; 200 `degraded` when only the "
            "broker is down (the node still serves its own sessions, cross-node delivery "
            "waits), so that a shared Redis outage does not drain every node at once; 503 "
            "when the database is down."
        ),
        responses={503: {"description": "the database is down, or the node is starting"}},
    )
    async def readyz() -> JSONResponse:
        try:
            service = chat()
        except RuntimeError:
            return JSONResponse({"status": "starting"}, status_code=503)
        checks = {
            "database": await _check(service.db.ping, metrics.DATABASE_UP),
            "broker": await _check(service.broker.ping, metrics.BROKER_UP),
        }
        if checks["database"] != "ok":
            status = "unavailable"
        elif checks["broker"] != "ok":
            status = "degraded"
        else:
            status = "ok"
        metrics.DEGRADED.set(1 if status == "degraded" else 0)
        return JSONResponse(
            {"status": status, "checks": checks},
            status_code=503 if status == "unavailable" else 200,
        )

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics of this node")
    async def scrape() -> Response:
        return Response(metrics.render(), media_type=metrics.CONTENT_TYPE_LATEST)


async def _check(probe: Callable[[], object], gauge: metrics.Gauge) -> str:
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT):
            await probe()  # type: ignore[misc]
    except (StoreError, BrokerError, TimeoutError, OSError) as exc:
        gauge.set(0)
        return f"down: {type(exc).__name__}"
    gauge.set(1)
    return "ok"
