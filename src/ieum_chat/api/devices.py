"""The caller's push devices and push settings, and the server's VAPID key.

A device is registered under an id the app chooses (a phone's install id, a browser's
stored id) and sends the same id as ``x-device-id`` on STOMP CONNECT, so a device with a
session watching its couple is not pushed what it already shows. Each user's ids are their
own. Everything registered is checked first (:mod:`ieum_chat.push.registration`): a bad
field is 400 BAD_REQUEST and nothing is stored. A token is never answered back in full.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from ieum_chat.api.deps import Caller, Chat, json_body, json_response, read_object
from ieum_chat.api.errors import responses
from ieum_chat.chat import codec
from ieum_chat.config import Settings
from ieum_chat.errors import BadRequest, NotFound
from ieum_chat.push.registration import (
    AUTH_BYTES,
    LOCALE_PATTERN,
    P256DH_BYTES,
    PLATFORMS,
    TOKEN_MAX_BYTES,
    check_device_id,
    parse_device,
)
from ieum_chat.push.vapid import public_key_b64url
from ieum_chat.store.devices import DEVICE_ID_MAX, LOCALE_MAX, Device

__all__ = ["DeviceList", "DeviceOut", "PushSettings", "VapidKey", "build_devices_router"]

_BODY_LIMIT = 16384  # a token or endpoint of 4 KiB, keys and a locale fit many times over
_SUFFIX = 6  # characters of the token answered back: enough to tell two apart

_TIMESTAMP = "local date-time in IEUM_TIMEZONE, no offset (2024-01-11T10:10:00.000)"
_NO_CONTROL = r"[^\x00-\x1f\x7f-\x9f]"

DeviceId = Annotated[
    str,
    Path(
        alias="deviceId",
        description="the app's id of this device (also sent as `x-device-id` on STOMP "
        "CONNECT): 1 to 100 characters, not blank, no control characters",
        # Documented here, checked by check_device_id (its 400 says which rule was broken).
        json_schema_extra={
            "minLength": 1,
            "maxLength": DEVICE_ID_MAX,
            "pattern": rf"^{_NO_CONTROL}*[^\s\x00-\x1f\x7f-\x9f]{_NO_CONTROL}*$",
        },
    ),
]


class DeviceOut(BaseModel):
    deviceId: str
    platform: Literal["fcm", "apns", "webpush"]
    locale: str | None = Field(description="the language pushes are written in (BCP 47)")
    tokenSuffix: str = Field(description="the token's (Web Push: endpoint's) last characters")
    createdAt: str = Field(description=_TIMESTAMP)
    updatedAt: str = Field(description=f"last registration: {_TIMESTAMP}")


class DeviceList(BaseModel):
    devices: list[DeviceOut] = Field(description="oldest first")


class PushSettings(BaseModel):
    pushPreview: bool = Field(
        description="pushes show the sender and the text; false: only 새 메시지 (new message)"
    )


class VapidKey(BaseModel):
    publicKey: str = Field(
        description="base64url of the uncompressed P-256 point: PushManager.subscribe's "
        "applicationServerKey"
    )


def _b64url(size: int) -> dict[str, Any]:
    chars = (size * 8 + 5) // 6
    padding = -chars % 4
    return {"type": "string", "pattern": f"^[A-Za-z0-9_-]{{{chars}}}={{0,{padding}}}$"}


def device_body_schema() -> dict[str, Any]:
    """The registration. What JSON Schema cannot say is checked by the server (400): a
    token of at most 4096 bytes in UTF-8, p256dh a point of the curve, the endpoint's
    addresses public."""
    return {
        "type": "object",
        "required": ["platform"],
        "properties": {
            "platform": {"type": "string", "enum": list(PLATFORMS)},
            "token": {
                "type": ["string", "null"],
                "minLength": 1,
                "maxLength": TOKEN_MAX_BYTES,
                "description": f"FCM registration token or APNs device token (non-blank, at "
                f"most {TOKEN_MAX_BYTES} bytes); webpush: the endpoint, or left out",
            },
            "subscription": {
                "type": ["object", "null"],
                "description": "webpush only: the browser's PushSubscription.toJSON(). The "
                "endpoint must be https and (unless IEUM_PUSH_ALLOW_PRIVATE) resolve to public "
                "addresses only",
                "required": ["endpoint", "keys"],
                "properties": {
                    "endpoint": {
                        "type": "string",
                        "pattern": "^https://",
                        "maxLength": TOKEN_MAX_BYTES,
                    },
                    "keys": {
                        "type": "object",
                        "required": ["p256dh", "auth"],
                        "properties": {
                            "p256dh": {
                                **_b64url(P256DH_BYTES),
                                "description": "the browser's uncompressed P-256 key",
                            },
                            "auth": {**_b64url(AUTH_BYTES), "description": "16-byte secret"},
                        },
                    },
                },
            },
            "locale": {
                "type": ["string", "null"],
                "maxLength": LOCALE_MAX,
                "pattern": LOCALE_PATTERN,
                "description": "BCP 47 language tag the pushes are written in (ko, en-US)",
            },
        },
        "if": {"properties": {"platform": {"const": "webpush"}}},
        # null is the same as leaving a field out
        "then": {
            "required": ["subscription"],
            "properties": {"subscription": {"type": "object"}},
        },
        "else": {"required": ["token"], "properties": {"token": {"type": "string"}}},
        "example": {"platform": "fcm", "token": "fcm-registration-token", "locale": "ko-KR"},
    }


def settings_body_schema() -> dict[str, Any]:
    schema = PushSettings.model_json_schema()
    schema["example"] = {"pushPreview": False}
    return schema


def _device_json(device: Device, chat: Chat) -> dict[str, Any]:
    assert device.created_at is not None
    assert device.updated_at is not None
    return {
        "deviceId": device.device_id,
        "platform": device.platform,
        "locale": device.locale,
        "tokenSuffix": device.token[-_SUFFIX:],
        "createdAt": codec.format_timestamp(device.created_at, chat.zone),
        "updatedAt": codec.format_timestamp(device.updated_at, chat.zone),
    }


def _vapid_key(settings: Settings) -> str | None:
    """The public key when Web Push is configured (a bad key stops the app at start)."""
    if not (settings.vapid_private_key and settings.vapid_subject):
        return None
    return public_key_b64url(settings.vapid_private_key)


def build_devices_router(settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/chat", tags=["push"])
    vapid_key = _vapid_key(settings)

    @router.get(
        "/devices",
        response_model=DeviceList,
        summary="The caller's push devices",
        responses=responses(401, 503),
    )
    async def list_devices(caller: Caller) -> Response:
        chat, user = caller.chat, caller.user
        devices = await chat.db.devices_of([user.id])
        return json_response({"devices": [_device_json(d, chat) for d in devices]})

    @router.put(
        "/devices/{deviceId}",
        response_model=DeviceOut,
        summary="Register or update one of the caller's devices",
        description="201 when the device is new, 200 when it was registered before. A token "
        "(Web Push: an endpoint) names one device: registering it here removes it from any "
        "other device, of this user or another, with the pushes still owed to that one.",
        openapi_extra=json_body(device_body_schema()),
        responses={
            201: {"model": DeviceOut, "description": "registered"},
            **responses(
                400,
                401,
                413,
                503,
                s400="bad deviceId, platform, token, subscription, endpoint or locale "
                "(BAD_REQUEST); nothing stored",
            ),
        },
    )
    async def put_device(caller: Caller, device_id: DeviceId, request: Request) -> Response:
        chat, user = caller.chat, caller.user
        check_device_id(device_id)
        body = await read_object(request, _BODY_LIMIT)
        device = await parse_device(
            body,
            user_id=user.id,
            device_id=device_id,
            allow_private=settings.push_allow_private,
        )
        stored, created = await chat.db.put_device(device)
        return json_response(_device_json(stored, chat), status_code=201 if created else 200)

    @router.delete(
        "/devices/{deviceId}",
        status_code=204,
        response_class=Response,
        summary="Remove one of the caller's devices",
        description="Pushes still owed to it are dropped too.",
        responses=responses(
            400, 401, 404, 503, s404="the caller has no device of this id (NOT_FOUND)"
        ),
    )
    async def delete_device(caller: Caller, device_id: DeviceId) -> Response:
        chat, user = caller.chat, caller.user
        check_device_id(device_id)
        if not await chat.db.delete_device(user.id, device_id):
            raise NotFound("you have no device of this id")
        return Response(status_code=204)

    @router.get(
        "/settings",
        response_model=PushSettings,
        summary="The caller's push settings",
        responses=responses(401, 503),
    )
    async def get_settings(caller: Caller) -> Response:
        chat, user = caller.chat, caller.user
        previews = await chat.db.push_previews([user.id])
        return json_response({"pushPreview": previews.get(user.id, True)})

    @router.put(
        "/settings",
        response_model=PushSettings,
        summary="Change the caller's push settings",
        description="`pushPreview: false`: pushes say only 새 메시지 (new message), without "
        "the sender or the text.",
        openapi_extra=json_body(settings_body_schema()),
        responses=responses(400, 401, 413, 503),
    )
    async def put_settings(caller: Caller, request: Request) -> Response:
        chat, user = caller.chat, caller.user
        body = await read_object(request, _BODY_LIMIT)
        preview = body.get("pushPreview")
        if not isinstance(preview, bool):
            raise BadRequest("pushPreview (true or false) is required")
        await chat.db.set_push_preview(user.id, preview)
        return json_response({"pushPreview": preview})

    @router.get(
        "/push/vapid-key",
        response_model=VapidKey,
        summary="The server's VAPID public key, for Web Push subscriptions",
        description="No token needed. 404 when this server has no Web Push configured "
        "(IEUM_VAPID_PRIVATE_KEY and IEUM_VAPID_SUBJECT).",
        responses=responses(404, s404="Web Push is not configured (NOT_FOUND)"),
    )
    async def get_vapid_key() -> Response:
        if vapid_key is None:
            raise NotFound("Web Push is not configured on this server")
        return json_response({"publicKey": vapid_key})

    return router
