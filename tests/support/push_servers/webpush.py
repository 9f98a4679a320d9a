"""A local Web Push service (RFC 8030) with a browser's side: it makes subscriptions the way
``PushManager.subscribe`` does (a P-256 key pair and a 16-byte auth secret, bound to the
application server key), checks the VAPID header (RFC 8292) and decrypts each push with the
subscription's private key (RFC 8291, aes128gcm), recording the JSON the service worker reads.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from dataclasses import dataclass
from typing import Any

import http_ece
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ieum_chat.push.providers import WebPushSubscription

from ._server import TlsServer
from .credentials import b64url

__all__ = ["WebPushDelivery", "WebPushServer"]


def _b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


@dataclass(frozen=True, slots=True)
class WebPushDelivery:
    subscription_id: str
    headers: dict[str, str]
    payload: Any  # the decrypted body, parsed as JSON
    vapid_claims: dict[str, Any]


@dataclass(slots=True)
class _Browser:
    """What the browser keeps of one subscription: its keys, and whether it still holds."""

    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    application_server_key: str
    active: bool = True


class WebPushServer(TlsServer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._browsers: dict[str, _Browser] = {}
        self.deliveries: list[WebPushDelivery] = []
        self.requests = 0

    def subscribe(self, application_server_key: str) -> WebPushSubscription:
        """A new subscription, as ``pushManager.subscribe({applicationServerKey})`` gives."""
        sub_id = secrets.token_urlsafe(12)
        private_key = ec.generate_private_key(ec.SECP256R1())
        auth = os.urandom(16)
        self._browsers[sub_id] = _Browser(private_key, auth, application_server_key)
        point = private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return WebPushSubscription(f"{self.url}/push/{sub_id}", b64url(point), b64url(auth))

    def unsubscribe(self, subscription: WebPushSubscription) -> None:
        """The user revoked the permission: the service answers 410 Gone from now on."""
        self._browsers[subscription.endpoint.rsplit("/", 1)[1]].active = False

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/push/{sub_id}", self._push, methods=["POST"])])

    def _vapid(self, request: Request, browser: _Browser) -> dict[str, Any] | Response:
        scheme, _, params = request.headers.get("authorization", "").partition(" ")
        fields = dict(p.strip().split("=", 1) for p in params.split(",") if "=" in p)
        if scheme.lower() != "vapid" or "t" not in fields or "k" not in fields:
            return Response("VAPID authorization required", status_code=401)
        if fields["k"] != browser.application_server_key:  # RFC 8292 §4.2
            return Response("not the key this subscription was made with", status_code=403)
        public_key = ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), _b64url_decode(fields["k"])
        )
        try:
            claims: dict[str, Any] = jwt.decode(
                fields["t"],
                public_key,
                algorithms=["ES256"],
                audience=self.url,
                options={"require": ["aud", "exp", "sub"]},
            )
        except jwt.InvalidTokenError as exc:
            return Response(f"bad VAPID token: {exc}", status_code=401)
        if claims["exp"] > time.time() + 24 * 3600:  # RFC 8292 §2
            return Response("VAPID token valid for more than 24 hours", status_code=401)
        if not str(claims["sub"]).startswith(("mailto:", "https:")):
            return Response("VAPID sub is not a mailto: or https: URI", status_code=401)
        return claims

    async def _push(self, request: Request) -> Response:
        self.requests += 1
        planned = await self.planned(request)
        if planned is not None:
            return planned
        sub_id = request.path_params["sub_id"]
        browser = self._browsers.get(sub_id)
        if browser is None:
            return Response(status_code=404)
        if not browser.active:
            return Response(status_code=410)
        claims = self._vapid(request, browser)
        if isinstance(claims, Response):
            return claims
        headers = {k.lower(): v for k, v in request.headers.items()}
        if "ttl" not in headers:  # RFC 8030 §5.2
            return Response("TTL required", status_code=400)
        if headers.get("content-encoding") != "aes128gcm":
            return Response("aes128gcm required", status_code=415)
        body = await request.body()
        if len(body) > 4096:
            return Response(status_code=413)
        try:
            plaintext = http_ece.decrypt(
                body, private_key=browser.private_key, auth_secret=browser.auth, version="aes128gcm"
            )
            payload = json.loads(plaintext)
        except (http_ece.ECEException, ValueError) as exc:
            return Response(f"cannot decrypt: {exc}", status_code=400)
        self.deliveries.append(WebPushDelivery(sub_id, headers, payload, claims))
        return Response(status_code=201, headers={"location": f"{self.url}/message/{sub_id}"})
