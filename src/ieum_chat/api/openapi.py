"""The OpenAPI document as the REST API really behaves.

FastAPI documents a 422 for every route with parameters; this API answers malformed requests
with 400 and the contract's error JSON instead (see :mod:`ieum_chat.api.errors`), so the 422
entries and their schemas are taken out. An optional query parameter is documented as its
type alone: a query string can leave it out but cannot carry a JSON ``null``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

__all__ = ["DESCRIPTION", "install_openapi"]

DESCRIPTION = """\
REST beside the STOMP socket (`/ws/chat`): room info, history, sending while the socket is
down, read marks and presigned image uploads. Sending and read marks share the socket's
validation, tempId idempotency, seq order and broadcast. Push: the caller's devices (FCM,
APNs, Web Push), the push preview setting, and the VAPID key browsers subscribe with.

Authenticate with `Authorization: Bearer <jwt>`. Every error is JSON
`{"type":"ERROR","code":...,"message":...,"detail"?}`: `message` is for users (Korean),
`detail` for developers (English).
"""

_DROPPED_SCHEMAS = ("HTTPValidationError", "ValidationError")


def _not_null(parameter: dict[str, Any]) -> None:
    schema = parameter.get("schema", {})
    options = schema.get("anyOf")
    if parameter.get("in") != "query" or not isinstance(options, list):
        return
    kept = [option for option in options if option.get("type") != "null"]
    if len(kept) == 1:
        del schema["anyOf"]
        schema.update(kept[0])


def _tidy(schema: dict[str, Any]) -> dict[str, Any]:
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict):
                operation.get("responses", {}).pop("422", None)
                for parameter in operation.get("parameters", []):
                    _not_null(parameter)
    components = schema.get("components", {}).get("schemas", {})
    for name in _DROPPED_SCHEMAS:
        components.pop(name, None)
    return schema


def install_openapi(app: FastAPI) -> None:
    """Replace ``app.openapi`` (FastAPI's documented way to customise the document)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description or DESCRIPTION,
                routes=app.routes,
                tags=app.openapi_tags,
                servers=app.servers,
            )
            app.openapi_schema = _tidy(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
