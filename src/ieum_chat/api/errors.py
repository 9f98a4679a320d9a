"""Every REST error as the contract's JSON: ``{"type":"ERROR","code":...,"message":...}``.

The chat errors keep their wire codes and get an HTTP status; FastAPI's request validation
(its 422) becomes 400 BAD_REQUEST; Starlette's own 404/405 keep their status (and ``Allow``
header) in the same shape; a failing database is 503 UNAVAILABLE, never a bare 500.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ieum_chat.chat import codec
from ieum_chat.errors import (
    ChatError,
    ErrorCode,
    QuotaExceeded,
    SendNotStored,
    StoreError,
    error_payload,
)

__all__ = [
    "HTTP_STATUS",
    "ErrorBody",
    "error_response",
    "install_error_handlers",
    "responses",
    "summarize_errors",
]

log = logging.getLogger(__name__)

HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.SEND_FAILED: 400,
    ErrorCode.AUTH_FAILED: 401,
    ErrorCode.ACCOUNT_DELETED: 401,
    ErrorCode.TOKEN_EXPIRED: 401,
    ErrorCode.UNAUTHORIZED: 403,
    ErrorCode.SIGNATURE_INVALID: 403,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.WINDOW_EXPIRED: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.QUOTA_EXCEEDED: 429,
    ErrorCode.UNAVAILABLE: 503,
}

# Starlette's own HTTP errors (no route, wrong method, ...) -> the closest wire code.
_CODE_FOR_STATUS: dict[int, ErrorCode] = {
    401: ErrorCode.AUTH_FAILED,
    403: ErrorCode.UNAUTHORIZED,
    404: ErrorCode.NOT_FOUND,
    409: ErrorCode.CONFLICT,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    429: ErrorCode.RATE_LIMITED,
}

_WHEN: dict[int, str] = {
    400: "malformed request: bad query, path or body (BAD_REQUEST, or SEND_FAILED for a message)",
    401: "missing, invalid or expired token, or unknown user (AUTH_FAILED; ACCOUNT_DELETED "
    "for a deleted account)",
    403: "another couple's room (UNAUTHORIZED)",
    404: "no such room, or the caller has no couple (NOT_FOUND)",
    409: "done once already (CONFLICT)",
    413: "body or upload over its size limit (PAYLOAD_TOO_LARGE)",
    415: "content type not accepted (UNSUPPORTED_MEDIA_TYPE)",
    429: "too many requests (RATE_LIMITED), or the couple's uploads of the day are used up "
    "(QUOTA_EXCEEDED, with Retry-After)",
    503: "the database is unavailable (UNAVAILABLE)",
}


class ErrorBody(BaseModel):
    """The error JSON of the contract (the same shape as on ``/user/queue/errors``)."""

    type: Literal["ERROR"]
    code: ErrorCode
    message: str = Field(description="for users, in Korean (the plan's texts)")
    detail: str | None = Field(default=None, description="for developers, in English")
    tempId: str | None = Field(default=None, description="the tempId of a refused message")


def responses(*statuses: int, **when: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these error statuses (``when`` overrides the text of
    a status, keyed ``s403=...``)."""
    return {
        status: {
            "model": ErrorBody,
            "description": when.get(f"s{status}", _WHEN.get(status, "error")),
        }
        for status in statuses
    }


def error_response(
    code: ErrorCode,
    *,
    status: int | None = None,
    detail: str | None = None,
    temp_id: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    status = status if status is not None else HTTP_STATUS.get(code, 400)
    extra = dict(headers or {})
    if status == 401:
        extra.setdefault("WWW-Authenticate", 'Bearer realm="ieum-chat"')
    body = codec.dumps(error_payload(code, temp_id=temp_id, detail=detail))
    return Response(body, status_code=status, media_type="application/json", headers=extra)


async def _chat_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ChatError)
    # The input was fine but the database failed: a retryable server condition.
    status = 503 if isinstance(exc, SendNotStored) else None
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, QuotaExceeded) else None
    return error_response(
        exc.code, detail=exc.detail or None, temp_id=exc.temp_id, status=status, headers=headers
    )


def _location(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc)


def summarize_errors(errors: Iterable[Any], limit: int = 5) -> str:
    """pydantic's validation errors as one English line: ``query.limit: Input should ...``."""
    parts: list[str] = []
    for error in errors:
        if len(parts) == limit:
            parts.append("...")
            break
        if isinstance(error, dict):
            parts.append(f"{_location(error.get('loc', ()))}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_response(ErrorCode.BAD_REQUEST, status=400, detail=summarize_errors(exc.errors()))


def _path_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{[^}]+\}", template)
    return re.compile("[^/]+".join(re.escape(part) for part in parts) + "$")


def _allowed_methods(request: Request) -> str | None:
    """Every documented method of the requested path. Starlette's 405 names the methods of
    one route only, but a path here has a route per method (RFC 9110 §10.2.1: ``Allow``
    lists them all). The table is built from the OpenAPI document, once."""
    table: list[tuple[re.Pattern[str], str]] | None = getattr(request.app.state, "allow", None)
    if table is None:
        table = [
            (_path_pattern(path), ", ".join(sorted(m.upper() for m in item)))
            for path, item in request.app.openapi().get("paths", {}).items()
        ]
        request.app.state.allow = table
    path = request.url.path
    return next((methods for pattern, methods in table if pattern.match(path)), None)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _CODE_FOR_STATUS.get(exc.status_code, ErrorCode.BAD_REQUEST)
    detail = exc.detail if isinstance(exc.detail, str) else None
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        allowed = _allowed_methods(request)
        if allowed:
            headers["Allow"] = allowed
    return error_response(code, status=exc.status_code, detail=detail, headers=headers)


async def _store_error(request: Request, exc: Exception) -> Response:
    log.warning("%s %s: the database failed: %s", request.method, request.url.path, exc)
    return error_response(ErrorCode.UNAVAILABLE, detail="the database is unavailable; retry")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ChatError, _chat_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(StoreError, _store_error)
