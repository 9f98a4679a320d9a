"""The service API (``/admin/v1``): the app's own backend creates users and couples, sends
notices, dissolves couples and deletes accounts.

Authenticated by ``Authorization: Bearer KEY``, KEY one of ``IEUM_ADMIN_API_KEYS`` (see
:class:`AdminKeys` for the names the audit log gives them). The presented key is compared with
every configured key in constant time (``hmac.compare_digest``, all of them, whichever
matches), so the answer's timing tells nothing about how close a guess was. User JWTs are not
keys: they are refused like any wrong key. Keys are never logged; every call is, as one line
of the ``ieum_chat.audit`` logger with the key's name, the method, the path and the status
(refused calls too), and counted in ``ieum_admin_calls_total{key,status}``.
"""

from __future__ import annotations

import hmac
import logging
import re
import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ieum_chat.api.deps import Chat, json_body, json_response, read_object
from ieum_chat.api.errors import HTTP_STATUS, responses
from ieum_chat.api.models import MessageOut
from ieum_chat.chat.codec import format_timestamp
from ieum_chat.chat.requests import validate_notice
from ieum_chat.config import Settings
from ieum_chat.errors import AuthError, BadRequest, ChatError, NotFound
from ieum_chat.observability import metrics
from ieum_chat.store.records import Couple, User
from ieum_chat.store.users import NAME_MAX

__all__ = ["AdminKeys", "build_admin_router"]

log = logging.getLogger(__name__)
audit = logging.getLogger("ieum_chat.audit")

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,40}")
MIN_KEY_LENGTH = 16
URL_MAX = 2048


class AdminKeys:
    """The configured API keys, by name.

    Each entry of ``IEUM_ADMIN_API_KEYS`` is a key as a whole (the contract: KEY is one of the
    comma-separated values). An entry ``name:secret`` whose name is a plain word also names
    itself for the audit log, and ``secret`` alone is accepted for it too; other entries are
    named ``key1``, ``key2``... by position. Keys shorter than :data:`MIN_KEY_LENGTH` work,
    with a warning at start: they can be guessed.
    """

    def __init__(self, entries: Sequence[str]) -> None:
        self._keys: list[tuple[str, bytes]] = []
        for index, entry in enumerate(entries, start=1):
            name, sep, secret = entry.partition(":")
            named = bool(sep and secret and _NAME.fullmatch(name))
            if not named:
                name = f"key{index}"
            self._keys.append((name, entry.encode()))
            if named:
                self._keys.append((name, secret.encode()))
            if len(secret if named else entry) < MIN_KEY_LENGTH:
                log.warning(
                    "IEUM_ADMIN_API_KEYS: key %s is shorter than %d characters; use a long "
                    "random key",
                    name,
                    MIN_KEY_LENGTH,
                )

    def __bool__(self) -> bool:
        return bool(self._keys)

    def match(self, presented: str) -> str | None:
        """The name of the key ``presented`` is, compared with every key in constant time."""
        given = presented.encode()
        found: str | None = None
        for name, key in self._keys:
            if hmac.compare_digest(given, key) and found is None:
                found = name
        return found


admin_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="AdminApiKey",
    bearerFormat="API key",
    description="one of IEUM_ADMIN_API_KEYS (the app's backend only; user JWTs are refused)",
)


class AuditedRoute(APIRoute):
    """Every call of the router: one audit line and one count, whatever its outcome."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def audited(request: Request) -> Response:
            status = 500
            try:
                response = await handle(request)
                status = response.status_code
                return response
            except ChatError as exc:
                status = HTTP_STATUS.get(exc.code, 400)
                raise
            except HTTPException as exc:
                status = exc.status_code
                raise
            finally:
                name = getattr(request.state, "admin_key", None) or "-"
                audit.info(
                    "admin call key=%s %s %s -> %d",
                    name,
                    request.method,
                    request.url.path,
                    status,
                )
                metrics.ADMIN_CALLS.labels(name, str(status)).inc()

        return audited


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(f"no {what} {value[:64]!r}") from None


def _string(data: dict[str, Any], key: str, *, limit: int, required: bool) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise BadRequest(f"'{key}' is required")
        return None
    if not isinstance(value, str) or "\x00" in value:
        raise BadRequest(f"'{key}' must be a string without NUL characters")
    if len(value) > limit:
        raise BadRequest(f"'{key}' is longer than {limit} characters")
    return value


def _couple_dict(couple: Couple, zone: ZoneInfo) -> dict[str, Any]:
    dissolved = couple.dissolved_at
    return {
        "id": str(couple.id),
        "userIds": [str(couple.user1_id), str(couple.user2_id)],
        "dissolved": dissolved is not None,
        "dissolvedAt": format_timestamp(dissolved, zone) if dissolved is not None else None,
    }


def _user_dict(user: User) -> dict[str, Any]:
    return {
        "id": str(user.id),
        "name": user.name,
        "profileImage": user.profile_image,
        "deleted": user.deleted_at is not None,
    }


UserId = Annotated[str, Path(alias="userId", json_schema_extra={"format": "uuid"})]
CoupleId = Annotated[str, Path(alias="coupleId", json_schema_extra={"format": "uuid"})]

_USER_BODY: dict[str, object] = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": NAME_MAX},
        "profileImage": {"type": ["string", "null"], "maxLength": URL_MAX},
    },
    "example": {"name": "민지", "profileImage": "https://img.example/minji.png"},
}
_COUPLE_BODY: dict[str, object] = {
    "type": "object",
    "required": ["userIds"],
    "properties": {
        "userIds": {
            "type": "array",
            "items": {"type": "string", "format": "uuid"},
            "minItems": 2,
            "maxItems": 2,
        }
    },
}


def _notice_body(max_text_length: int) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["content"],
        "properties": {
            "content": {"type": "string", "minLength": 1, "maxLength": max_text_length},
            "tempId": {"type": ["string", "null"], "maxLength": 64},
        },
        "example": {"content": "오늘은 두 분의 100일입니다 🎉", "tempId": "anniv-100"},
    }


def build_admin_router(settings: Settings) -> APIRouter:
    keys = AdminKeys(settings.admin_api_keys)
    body_limit = settings.max_frame_size

    async def admin_key(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(admin_bearer)],
    ) -> str:
        if not keys:
            raise AuthError("the service API is off: IEUM_ADMIN_API_KEYS is not set")
        if credentials is None:
            raise AuthError("missing API key (Authorization: Bearer KEY)")
        name = keys.match(credentials.credentials)
        if name is None:
            raise AuthError("not an API key of this server (user tokens are refused here)")
        request.state.admin_key = name
        return name

    router = APIRouter(
        prefix="/admin/v1",
        tags=["admin"],
        route_class=AuditedRoute,
        dependencies=[Depends(admin_key)],
    )
    errors = (401, 503)

    @router.put(
        "/users/{userId}",
        summary="Create or update a user",
        description="201 when created, 200 when updated. A deleted account's id is 409.",
        openapi_extra=json_body(_USER_BODY),
        responses=responses(400, *errors, 409, s409="the id is a deleted account's (CONFLICT)"),
    )
    async def put_user(chat: Chat, user_id: UserId, request: Request) -> Response:
        target = _uuid(user_id, "user")
        data = await read_object(request, body_limit)
        name = _string(data, "name", limit=NAME_MAX, required=True)
        image = _string(data, "profileImage", limit=URL_MAX, required=False)
        assert name is not None
        user = User(target, name, image)
        created = await chat.lifecycle.upsert_user(user)
        return json_response(_user_dict(user), status_code=201 if created else 200)

    @router.delete(
        "/users/{userId}",
        summary="Delete an account",
        description="At once: the user's sessions end on every node (ERROR ACCOUNT_DELETED), "
        "their tokens are refused, their couple is dissolved (the partner's sessions get "
        "SYSTEM COUPLE_DISSOLVED, then ERROR COUPLE_DISSOLVED). Their data is erased after "
        "IEUM_DISSOLVED_RETENTION_DAYS. Idempotent.",
        responses=responses(*errors, 404, s404="no such user (NOT_FOUND)"),
    )
    async def delete_user(chat: Chat, user_id: UserId) -> Response:
        user, couple = await chat.lifecycle.delete_user(_uuid(user_id, "user"))
        body = _user_dict(user)
        body["dissolvedCoupleId"] = str(couple.id) if couple is not None else None
        return json_response(body)

    @router.post(
        "/couples",
        status_code=201,
        summary="Pair two users",
        description="A user is in at most one active couple (409 otherwise).",
        openapi_extra=json_body(_COUPLE_BODY),
        responses=responses(
            400,
            *errors,
            404,
            409,
            s404="an unknown or deleted user (NOT_FOUND)",
            s409="a user is in an active couple already (CONFLICT)",
        ),
    )
    async def create_couple(chat: Chat, request: Request) -> Response:
        data = await read_object(request, body_limit)
        ids = data.get("userIds")
        if not isinstance(ids, list) or len(ids) != 2 or not all(isinstance(i, str) for i in ids):
            raise BadRequest("'userIds' must be a list of two user ids")
        try:
            user_a, user_b = uuid.UUID(ids[0]), uuid.UUID(ids[1])
        except ValueError:
            raise BadRequest("'userIds' must be UUIDs") from None
        couple = await chat.lifecycle.create_couple(user_a, user_b)
        return json_response(_couple_dict(couple, chat.zone), status_code=201)

    @router.post(
        "/couples/{coupleId}/messages",
        status_code=201,
        response_model=MessageOut,
        summary="Send a notice to a couple",
        description='Stored in the couple\'s stream (`"type": "NOTICE"`, `"senderId": null`, '
        "its seq), broadcast to both members and shown in history like any message. A "
        "repeated tempId is answered with the stored notice.",
        openapi_extra=json_body(_notice_body(settings.max_text_length)),
        responses=responses(
            400, *errors, 404, s404="no such couple, or it was dissolved (NOT_FOUND)"
        ),
    )
    async def send_notice(chat: Chat, couple_id: CoupleId, request: Request) -> Response:
        target = _uuid(couple_id, "couple")
        data = await read_object(request, body_limit)
        notice = validate_notice(data, max_text_length=settings.max_text_length)
        message = await chat.notice(target, notice)
        return json_response((await chat.history.render_messages([message]))[0], status_code=201)

    @router.post(
        "/couples/{coupleId}/dissolve",
        summary="Dissolve a couple",
        description="Both members get SYSTEM COUPLE_DISSOLVED, then every session of theirs "
        "on the couple ends (ERROR COUPLE_DISSOLVED) on every node within 2 s; the couple's "
        "destinations and REST routes answer NOT_FOUND from then on. Its messages and "
        "uploads are erased after IEUM_DISSOLVED_RETENTION_DAYS. Idempotent (200 again).",
        responses=responses(*errors, 404, s404="no such couple (NOT_FOUND)"),
    )
    async def dissolve(chat: Chat, couple_id: CoupleId) -> Response:
        couple = await chat.lifecycle.dissolve(_uuid(couple_id, "couple"))
        return json_response(_couple_dict(couple, chat.zone))

    return router
