"""A local FCM: Google's OAuth2 token endpoint (RFC 7523 JWT-bearer grant) and the HTTP v1
``messages:send`` method, with FCM's own error bodies.

The token endpoint checks the assertion as Google does: RS256 signed by a service account it
knows (``trust``), ``aud`` its own token URI, the FCM scope. ``messages:send`` takes only a
token it issued and refuses what FCM refuses (a ``data`` value that is not a string).
"""

from __future__ import annotations

import secrets
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._server import TlsServer
from .credentials import ServiceAccountKey

__all__ = ["FCM_SCOPE", "FcmServer", "ReceivedMessage", "fcm_error"]

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def fcm_error(code: int, status: str, error_code: str | None = None) -> dict[str, Any]:
    """An error body as FCM v1 sends it (google.rpc.Status with an FcmError detail)."""
    error: dict[str, Any] = {"code": code, "message": f"{status.lower()}", "status": status}
    if error_code is not None:
        error["details"] = [
            {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": error_code}
        ]
    return {"error": error}


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    project_id: str
    message: dict[str, Any]
    access_token: str


def _oauth_error(error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=400)


class FcmServer(TlsServer):
    token_lifetime = 3600  # seconds, as Google's endpoint answers

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._accounts: dict[str, tuple[rsa.RSAPublicKey, str]] = {}
        self._valid_tokens: set[str] = set()
        self.token_requests: list[dict[str, Any]] = []  # the verified assertions' claims
        self.messages: list[ReceivedMessage] = []
        self.requests = 0  # messages:send requests, answered or not

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def trust(self, account: ServiceAccountKey) -> None:
        self._accounts[account.client_email] = (account.public_key, account.project_id)

    def revoke_tokens(self) -> None:
        """Every access token issued so far stops working (as after a key rotation)."""
        self._valid_tokens.clear()

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/token", self._token, methods=["POST"]),
                Route("/v1/projects/{project}/messages:send", self._send, methods=["POST"]),
            ]
        )

    async def _token(self, request: Request) -> Response:
        if request.headers.get("content-type") != "application/x-www-form-urlencoded":
            return _oauth_error("invalid_request", "a form is expected")
        form = urllib.parse.parse_qs((await request.body()).decode())
        if form.get("grant_type") != [JWT_BEARER]:
            return _oauth_error("unsupported_grant_type", "Invalid grant_type")
        assertion = form.get("assertion", [""])[0]
        try:
            issuer = jwt.decode(assertion, options={"verify_signature": False})["iss"]
            public_key, _ = self._accounts[issuer]
            claims = jwt.decode(
                assertion,
                public_key,
                algorithms=["RS256"],
                audience=self.token_uri,
                options={"require": ["iss", "aud", "iat", "exp", "scope"]},
            )
        except (jwt.InvalidTokenError, KeyError) as exc:
            return _oauth_error("invalid_grant", f"Invalid JWT: {exc}")
        if FCM_SCOPE not in str(claims["scope"]).split():
            return _oauth_error("invalid_scope", "the FCM scope was not asked for")
        if claims["exp"] - claims["iat"] > 3600:
            return _oauth_error("invalid_grant", "Invalid JWT: expiry more than an hour away")
        self.token_requests.append(claims)
        token = f"ya29.{secrets.token_urlsafe(24)}"
        self._valid_tokens.add(token)
        return JSONResponse(
            {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"}
        )

    async def _send(self, request: Request) -> Response:
        self.requests += 1
        planned = await self.planned(request)
        if planned is not None:
            return planned
        authorization = request.headers.get("authorization", "")
        token = authorization.removeprefix("Bearer ")
        if not authorization.startswith("Bearer ") or token not in self._valid_tokens:
            return JSONResponse(fcm_error(401, "UNAUTHENTICATED"), status_code=401)
        project = request.path_params["project"]
        if project not in {p for _, p in self._accounts.values()}:
            return JSONResponse(fcm_error(403, "PERMISSION_DENIED"), status_code=403)
        body = await request.json()
        message = body.get("message") if isinstance(body, dict) else None
        if not isinstance(message, dict) or not message.get("token"):
            return JSONResponse(fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"), 400)
        data = message.get("data", {})
        if not all(isinstance(v, str) for v in data.values()):
            return JSONResponse(fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"), 400)
        self.messages.append(ReceivedMessage(project, message, token))
        name = f"projects/{project}/messages/{int(time.time() * 1000)}"
        return JSONResponse({"name": name})
