"""An OAuth2 access token for a Google service account (RFC 7523 JWT-bearer grant).

google-auth loads the key and signs; the grant itself is POSTed here with the provider's own
async client, so a token refresh is bounded by the same timeout and trusts the same CAs as the
pushes. The assertion's ``aud`` is the account's own ``token_uri`` (google-auth's refresh uses
Google's fixed endpoint there, which an account pointing elsewhere cannot use).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
from google.auth import jwt as google_jwt
from google.oauth2 import service_account

__all__ = ["AccessTokens", "ServiceAccount", "TokenRefused", "load_service_account"]

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME = 3600  # seconds: the longest Google accepts
REFRESH_MARGIN = 300.0  # seconds before expiry a token is renewed


class TokenRefused(Exception):
    """The token endpoint answered, and said no: a 4xx (bad key, revoked account) or a 5xx."""

    def __init__(self, status: int, response: httpx.Response) -> None:
        super().__init__(f"token endpoint answered {status}")
        self.status = status
        self.response = response


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    credentials: service_account.Credentials
    project_id: str
    client_email: str
    token_uri: str


def load_service_account(path: str) -> ServiceAccount:
    """Read and check the service account's JSON file; ValueError says what is wrong with it."""
    try:
        with open(path, encoding="utf-8") as file:
            info: Any = json.load(file)
    except OSError as exc:
        raise ValueError(f"IEUM_FCM_CREDENTIALS: cannot read {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"IEUM_FCM_CREDENTIALS: {path} is not JSON: {exc}") from exc
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise ValueError(f"IEUM_FCM_CREDENTIALS: {path} is not a service account's key file")
    missing = [k for k in ("project_id", "client_email", "token_uri") if not info.get(k)]
    if missing:
        raise ValueError(f"IEUM_FCM_CREDENTIALS: {path} lacks {', '.join(missing)}")
    try:
        credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            info, scopes=[FCM_SCOPE]
        )
    except ValueError as exc:
        raise ValueError(f"IEUM_FCM_CREDENTIALS: {path}: {exc}") from exc
    return ServiceAccount(
        credentials, str(info["project_id"]), str(info["client_email"]), str(info["token_uri"])
    )


class AccessTokens:
    """The current access token, fetched by one caller at a time and kept until near expiry."""

    def __init__(self, account: ServiceAccount, client: httpx.AsyncClient) -> None:
        self._account = account
        self._client = client
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._expires = 0.0  # time.monotonic() after which the token is renewed

    async def get(self, *, stale: str | None = None) -> str:
        """A valid token. ``stale`` is one the provider refused: it is replaced, once, even
        when several sends saw the same refusal at the same time."""
        async with self._lock:
            fresh = self._token is not None and time.monotonic() < self._expires
            if self._token is None or not fresh or self._token == stale:
                self._token, lifetime = await self._fetch()
                self._expires = time.monotonic() + lifetime - min(REFRESH_MARGIN, lifetime / 2)
            return self._token

    def _assertion(self) -> str:
        now = int(time.time())
        payload = {
            "iss": self._account.client_email,
            "scope": FCM_SCOPE,
            "aud": self._account.token_uri,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
        }
        signed: bytes = google_jwt.encode(  # type: ignore[no-untyped-call]
            self._account.credentials.signer, payload
        )
        return signed.decode("ascii")

    async def _fetch(self) -> tuple[str, float]:
        response = await self._client.post(
            self._account.token_uri,
            data={"grant_type": JWT_BEARER, "assertion": self._assertion()},
        )
        if response.status_code != 200:
            raise TokenRefused(response.status_code, response)
        try:
            body = response.json()
            token = body["access_token"]
            lifetime = float(body.get("expires_in", ASSERTION_LIFETIME))
        except (ValueError, KeyError, TypeError):
            raise TokenRefused(response.status_code, response) from None
        if not isinstance(token, str) or not token:
            raise TokenRefused(response.status_code, response)
        return token, lifetime
