"""Web Push (RFC 8030): the payload encrypted for the browser (RFC 8291, aes128gcm), the
request signed with the server's VAPID key (RFC 8292).

Encryption is http_ece's and the VAPID JWT py-vapid's; the POST is httpx's so it is async.
The endpoint came from a client, so it is checked before every push and at connect time
(see ``_endpoint``): a refused one answers FAILED ``endpoint_refused``.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import time
import urllib.parse
from typing import Any

import http_ece
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02, VapidException

from ieum_chat.config import Settings
from ieum_chat.push.vapid import b64url, b64url_decode, load_private_key, public_point

from ._endpoint import (
    EndpointRefused,
    EndpointUnresolved,
    check_endpoint_async,
    peer_guard,
)
from ._http import bounded, make_client, status_result
from .base import Notification, Outcome, Provider, Result, Target, WebPushSubscription

__all__ = [
    "WebPushProvider",
    "check_endpoint_async",
    "topic_for",
    "webpush_payload",
]

RECORD_SIZE = 4096  # RFC 8291 §4: one record, at most 4096 bytes of body
MAX_PLAINTEXT = RECORD_SIZE - 86 - 17  # header (salt, rs, idlen, 65-byte key id), tag, pad
VAPID_LIFETIME = 12 * 3600  # seconds; RFC 8292 §2: at most 24 hours


def topic_for(collapse_key: str) -> str:
    """The Topic header (RFC 8030 §5.4): at most 32 base64url characters. A digest, so any
    collapse key fits and the push service never sees the couple's id."""
    return b64url(hashlib.sha256(collapse_key.encode()).digest())[:32]


def webpush_payload(note: Notification) -> dict[str, Any]:
    """What the service worker's ``push`` event reads (``event.data.json()``)."""
    return {
        "title": note.title,
        "body": note.body,
        "badge": note.badge,
        "tag": note.collapse_key,
        "data": dict(note.data),
    }


def _origin(endpoint: str) -> str:
    parts = urllib.parse.urlsplit(endpoint)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    return f"{parts.scheme}://{host}" if port in (None, 443) else f"{parts.scheme}://{host}:{port}"


def _encrypt(plaintext: bytes, subscription: WebPushSubscription) -> bytes:
    """RFC 8291: ECDH with a fresh key against the browser's, keyed with its auth secret."""
    receiver = b64url_decode(subscription.p256dh)
    auth = b64url_decode(subscription.auth)
    if len(receiver) != 65 or receiver[0] != 4 or len(auth) != 16:
        raise ValueError("subscription keys are not a P-256 point and a 16-byte secret")
    sender = ec.generate_private_key(ec.SECP256R1())
    body: bytes = http_ece.encrypt(
        plaintext,
        private_key=sender,
        dh=receiver,
        auth_secret=auth,
        version="aes128gcm",
        rs=RECORD_SIZE,
    )
    return body


class WebPushProvider(Provider):
    platform = "webpush"

    def __init__(self, settings: Settings) -> None:
        if not (settings.vapid_private_key and settings.vapid_subject):
            raise ValueError("Web Push needs IEUM_VAPID_PRIVATE_KEY and IEUM_VAPID_SUBJECT")
        subject = settings.vapid_subject
        if not subject.startswith(("mailto:", "https://")):
            raise ValueError("IEUM_VAPID_SUBJECT must be a mailto: or an https: URL")
        self._vapid = Vapid02(private_key=load_private_key(settings.vapid_private_key))
        self._subject = subject
        try:
            self._vapid_headers("https://push.example.com")
        except VapidException as exc:
            raise ValueError(f"IEUM_VAPID_SUBJECT refused: {exc}") from None
        self._allow_private = settings.push_allow_private
        self._timeout = settings.push_timeout
        # HTTP/2 where the service offers it (ALPN): one connection carries every request
        self._client = make_client(settings, http2=True)

    def public_key_b64url(self) -> str:
        """The applicationServerKey a browser subscribes with: the uncompressed point."""
        return public_point(self._vapid.private_key)

    async def close(self) -> None:
        await self._client.aclose()

    def _vapid_headers(self, origin: str) -> dict[str, str]:
        claims = {"aud": origin, "sub": self._subject, "exp": int(time.time()) + VAPID_LIFETIME}
        headers: dict[str, str] = self._vapid.sign(claims)
        return headers

    async def send(self, target: Target, note: Notification) -> Result:
        subscription = target.subscription
        if subscription is None:
            return Result(Outcome.FAILED, "no_subscription")
        plaintext = json.dumps(webpush_payload(note), separators=(",", ":")).encode()
        if len(plaintext) > MAX_PLAINTEXT:
            return Result(Outcome.FAILED, "payload_too_large")
        return await bounded(
            "webpush", self._timeout, lambda: self._exchange(subscription, note, plaintext)
        )

    async def _exchange(
        self, subscription: WebPushSubscription, note: Notification, plaintext: bytes
    ) -> Result:
        url = subscription.endpoint
        try:
            await check_endpoint_async(url, allow_private=self._allow_private)
        except EndpointUnresolved:
            return Result(Outcome.RETRY, "dns_error")
        except EndpointRefused:
            return Result(Outcome.FAILED, "endpoint_refused")
        try:
            body = _encrypt(plaintext, subscription)
            authorization = self._vapid_headers(_origin(url))
        except (ValueError, binascii.Error, http_ece.ECEException, VapidException):
            return Result(Outcome.FAILED, "bad_subscription")
        headers = {
            **authorization,
            "content-encoding": "aes128gcm",
            "content-type": "application/octet-stream",
            "ttl": str(note.ttl),
            "urgency": "high",
            "topic": topic_for(note.collapse_key),
        }
        extensions = {} if self._allow_private else {"trace": peer_guard(url)}
        try:
            response = await self._client.post(
                url, content=body, headers=headers, extensions=extensions
            )
        except EndpointRefused:
            return Result(Outcome.FAILED, "endpoint_refused")
        if response.status_code in (404, 410):
            return Result(Outcome.DEAD, "unsubscribed")
        return status_result(response)
