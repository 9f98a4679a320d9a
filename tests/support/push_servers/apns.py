"""A local APNs: ``POST /3/device/{token}`` over HTTP/2 only, with provider-token auth.

It checks what Apple checks: the bearer JWT is ES256, signed by the key named in ``kid``,
issued by the team that key belongs to, and less than an hour old; ``apns-topic`` is the
app's. A request that did not come over HTTP/2 is refused (and counted in ``not_h2``).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._server import TlsServer
from .credentials import ApnsKey

__all__ = ["ApnsPush", "ApnsServer", "apns_error"]


def apns_error(reason: str) -> dict[str, Any]:
    body: dict[str, Any] = {"reason": reason}
    if reason == "Unregistered":
        body["timestamp"] = int(time.time() * 1000)
    return body


@dataclass(frozen=True, slots=True)
class ApnsPush:
    device_token: str
    headers: dict[str, str]
    payload: dict[str, Any]
    provider_token: str
    http_version: str


def _refuse(status: int, reason: str) -> JSONResponse:
    return JSONResponse(apns_error(reason), status_code=status)


class ApnsServer(TlsServer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keys: dict[str, ApnsKey] = {}
        self.pushes: list[ApnsPush] = []
        self.provider_tokens: list[str] = []  # the bearer token of every verified request
        self.requests = 0
        self.not_h2 = 0

    def trust(self, key: ApnsKey) -> None:
        self._keys[key.key_id] = key

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/3/device/{token}", self._push, methods=["POST"])])

    def _verify(self, request: Request) -> tuple[ApnsKey, str] | JSONResponse:
        authorization = request.headers.get("authorization", "")
        if not authorization.startswith("bearer "):
            return _refuse(403, "MissingProviderToken")
        token = authorization.removeprefix("bearer ")
        try:
            header = jwt.get_unverified_header(token)
            key = self._keys[header["kid"]]
            claims = jwt.decode(
                token, key.public_key, algorithms=["ES256"], options={"require": ["iss", "iat"]}
            )
        except (jwt.InvalidTokenError, KeyError):
            return _refuse(403, "InvalidProviderToken")
        if claims["iss"] != key.team_id:
            return _refuse(403, "InvalidProviderToken")
        if time.time() - claims["iat"] > 3600:
            return _refuse(403, "ExpiredProviderToken")
        return key, token

    async def _push(self, request: Request) -> Response:
        self.requests += 1
        version = request.scope.get("http_version", "")
        if version != "2":
            self.not_h2 += 1
            return Response("APNs speaks HTTP/2 only", status_code=505)
        planned = await self.planned(request)
        if planned is not None:
            return planned
        verified = self._verify(request)
        if isinstance(verified, Response):
            return verified
        key, provider_token = verified
        self.provider_tokens.append(provider_token)
        headers = {k.lower(): v for k, v in request.headers.items()}
        if headers.get("apns-topic") != key.topic:
            return _refuse(400, "DeviceTokenNotForTopic" if "apns-topic" in headers else "MissingTopic")
        try:
            payload = json.loads(await request.body())
        except ValueError:
            return _refuse(400, "PayloadEmpty")
        if not isinstance(payload, dict) or "aps" not in payload:
            return _refuse(400, "PayloadEmpty")
        device = request.path_params["token"]
        self.pushes.append(ApnsPush(device, headers, payload, provider_token, version))
        return Response(status_code=200, headers={"apns-id": str(uuid.uuid4()).upper()})
