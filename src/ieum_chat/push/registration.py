"""What a client may register as one of its devices, checked before anything is stored.

Everything here came from a client and ends up in a provider request: a token or endpoint
the server will call, keys it will encrypt for, a locale it will render in. Each check
answers BadRequest with what was wrong (in English, as ``detail``), so a broken app learns
why at registration instead of through pushes that never arrive.

A Web Push endpoint is a URL the server will POST to: it must be https and, unless
``IEUM_PUSH_ALLOW_PRIVATE``, resolve to public addresses only (the provider checks it again
before every push, and at connect time).
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
import uuid
from collections.abc import Mapping
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import ec

from ieum_chat.errors import BadRequest
from ieum_chat.push.providers.webpush import check_endpoint_async
from ieum_chat.store.devices import DEVICE_ID_MAX, LOCALE_MAX, Device

__all__ = [
    "AUTH_BYTES",
    "P256DH_BYTES",
    "PLATFORMS",
    "TOKEN_MAX_BYTES",
    "check_device_id",
    "parse_device",
]

PLATFORMS: Final = ("fcm", "apns", "webpush")
TOKEN_MAX_BYTES: Final = 4096  # UTF-8; FCM tokens are ~160 bytes, endpoints a few hundred
P256DH_BYTES: Final = 65  # an uncompressed P-256 point (RFC 8291 §3.1)
AUTH_BYTES: Final = 16  # the authentication secret (RFC 8291 §3.2)

# A BCP 47 language tag in the form browsers and phones give it (navigator.language,
# Locale.toLanguageTag()): a 2-8 letter primary subtag, then subtags of 1-8 alphanumerics.
LOCALE_PATTERN: Final = r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$"
_LOCALE = re.compile(LOCALE_PATTERN)
_BASE64URL = re.compile(r"^[A-Za-z0-9_-]+={0,2}$")


def check_device_id(device_id: str) -> str:
    """``device_id`` as the path gave it, or BadRequest: 1 to 100 characters, not blank, no
    control characters (it travels in a STOMP header, and is logged)."""
    if not device_id.strip():
        raise BadRequest("deviceId is blank")
    if len(device_id) > DEVICE_ID_MAX:
        raise BadRequest(f"deviceId is over {DEVICE_ID_MAX} characters")
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in device_id):
        raise BadRequest("deviceId contains control characters or lone surrogates")
    return device_id


def _string(body: Mapping[str, Any], name: str, *, required: bool) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise BadRequest(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string")
    # What no database column holds: a NUL (PostgreSQL's text refuses it), text that is not
    # UTF-8 (a lone surrogate from a JSON \u escape). Refused here, on every database.
    if "\x00" in value:
        raise BadRequest(f"{name} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"{name} is not valid Unicode text") from None
    return value


def _check_token(value: str, name: str) -> str:
    if not value.strip():
        raise BadRequest(f"{name} is blank")
    if len(value.encode("utf-8")) > TOKEN_MAX_BYTES:
        raise BadRequest(f"{name} is over {TOKEN_MAX_BYTES} bytes")
    return value


def _locale(body: Mapping[str, Any]) -> str | None:
    value = _string(body, "locale", required=False)
    if value is None:
        return None
    if len(value) > LOCALE_MAX:
        raise BadRequest(f"locale is over {LOCALE_MAX} characters")
    if not _LOCALE.match(value):
        raise BadRequest("locale is not a language tag such as ko or ko-KR")
    return value


def _key(keys: Mapping[str, Any], name: str, size: int) -> str:
    value = _string(keys, name, required=True)
    assert value is not None
    raw = b""
    if _BASE64URL.match(value):
        bare = value.rstrip("=")
        try:
            raw = base64.urlsafe_b64decode(bare + "=" * (-len(bare) % 4))
        except (binascii.Error, ValueError):
            raw = b""
    if len(raw) != size:
        raise BadRequest(f"subscription.keys.{name} is not base64url of {size} bytes")
    if name == "p256dh":
        try:
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
        except ValueError:
            raise BadRequest(
                "subscription.keys.p256dh is not an uncompressed P-256 public key"
            ) from None
    return value


def _subscription(body: Mapping[str, Any]) -> tuple[str, str, str]:
    """The endpoint and keys of a PushSubscription (its ``toJSON()``)."""
    value = body.get("subscription")
    if value is None:
        raise BadRequest("webpush needs subscription: {endpoint, keys: {p256dh, auth}}")
    if not isinstance(value, dict):
        raise BadRequest("subscription must be an object")
    endpoint = _string(value, "endpoint", required=True)
    assert endpoint is not None
    _check_token(endpoint, "subscription.endpoint")
    keys = value.get("keys")
    if not isinstance(keys, dict):
        raise BadRequest("subscription.keys must be an object with p256dh and auth")
    return endpoint, _key(keys, "p256dh", P256DH_BYTES), _key(keys, "auth", AUTH_BYTES)


async def parse_device(
    body: Mapping[str, Any], *, user_id: uuid.UUID, device_id: str, allow_private: bool
) -> Device:
    """The device ``body`` registers (the JSON of PUT /chat/devices/{deviceId}), every field
    checked; BadRequest naming the first that is wrong."""
    check_device_id(device_id)
    platform = body.get("platform")
    if platform not in PLATFORMS:
        raise BadRequest(f"platform must be one of {', '.join(PLATFORMS)}")
    token = _string(body, "token", required=platform != "webpush")
    locale = _locale(body)
    if platform != "webpush":
        assert token is not None
        if body.get("subscription") is not None:
            raise BadRequest("subscription is for platform webpush only")
        return Device(user_id, device_id, platform, _check_token(token, "token"), locale=locale)
    endpoint, p256dh, auth = _subscription(body)
    if token is not None and token != endpoint:
        raise BadRequest(
            "token of a webpush device must be its subscription's endpoint, or left out"
        )
    try:
        await check_endpoint_async(endpoint, allow_private=allow_private)
    except ValueError as exc:  # EndpointRefused, EndpointUnresolved: the reason says which
        raise BadRequest(str(exc)[:300]) from None
    return Device(user_id, device_id, platform, endpoint, p256dh, auth, locale)
