"""Apple Push Notification service: HTTP/2 with token-based (provider JWT) authentication.

APNs speaks only HTTP/2. The provider token is an ES256 JWT ``{iss: team id, iat}`` with the
key id as ``kid``; Apple refuses one older than an hour (ExpiredProviderToken) and one renewed
more often than every 20 minutes (TooManyProviderTokenUpdates), so one token is shared by
every push and renewed every 50 minutes.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from ieum_chat.config import Settings

from ._http import bounded, make_client, short_key, status_result
from .base import Notification, Outcome, Provider, Result, Target

__all__ = ["ApnsProvider", "ProviderToken", "apns_payload"]

TOKEN_RENEWAL = 50 * 60.0  # seconds a provider token is used
TOKEN_MIN_AGE = 20 * 60.0  # seconds before Apple accepts a new one
# A device token is hex (32 bytes today; Apple says not to rely on the length).
_DEVICE_TOKEN = re.compile(r"[0-9A-Fa-f]{16,400}")


def _load_key(path: str) -> ec.EllipticCurvePrivateKey:
    try:
        with open(path, "rb") as file:
            pem = file.read()
    except OSError as exc:
        raise ValueError(f"IEUM_APNS_KEY_FILE: cannot read {path}: {exc}") from exc
    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"IEUM_APNS_KEY_FILE: {path} is not a PEM private key (.p8)") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError(f"IEUM_APNS_KEY_FILE: {path} is not an EC P-256 key")
    return key


class ProviderToken:
    """The provider JWT, made once and reused until it is 50 minutes old."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, key_id: str, team_id: str) -> None:
        self._key = key
        self._key_id = key_id
        self._team_id = team_id
        self._token = ""
        self._made = float("-inf")  # time.monotonic() when the token was made

    def get(self) -> str:
        if time.monotonic() - self._made >= TOKEN_RENEWAL:
            self._renew()
        return self._token

    def expired(self, token: str) -> None:
        """APNs said ``token`` expired (a clock running behind Apple's): renew it, unless it
        was renewed already or so recently that Apple would refuse another."""
        if token == self._token and time.monotonic() - self._made >= TOKEN_MIN_AGE:
            self._renew()

    def _renew(self) -> None:
        # Signing is one ECDSA operation: no reason to leave the event loop for it.
        self._token = jwt.encode(
            {"iss": self._team_id, "iat": int(time.time())},
            self._key,
            algorithm="ES256",
            headers={"kid": self._key_id},
        )
        self._made = time.monotonic()


def apns_payload(note: Notification) -> dict[str, Any]:
    """The JSON body: the app's data as top-level custom keys beside ``aps``."""
    payload: dict[str, Any] = dict(note.data)
    payload["aps"] = {
        "alert": {"title": note.title, "body": note.body},
        "badge": note.badge,
        "sound": "default",
        "thread-id": note.collapse_key,
    }
    return payload


def _snake(reason: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", reason).lower()


def _reason(response: httpx.Response) -> str | None:
    try:
        reason = response.json().get("reason")
    except (ValueError, AttributeError):
        return None
    return reason if isinstance(reason, str) else None


class ApnsProvider(Provider):
    platform = "apns"

    def __init__(self, settings: Settings) -> None:
        key_file, key_id = settings.apns_key_file, settings.apns_key_id
        team_id, topic = settings.apns_team_id, settings.apns_topic
        if not (key_file and key_id and team_id and topic):
            names = ("apns_key_file", "apns_key_id", "apns_team_id", "apns_topic")
            missing = [f"IEUM_{name.upper()}" for name in names if not getattr(settings, name)]
            raise ValueError(f"APNs needs {', '.join(missing)}")
        key = _load_key(key_file)
        self._topic = topic
        self._endpoint = settings.apns_endpoint.rstrip("/")
        self._timeout = settings.push_timeout
        self._client = make_client(settings, http2=True)
        self.tokens = ProviderToken(key, key_id, team_id)

    async def close(self) -> None:
        await self._client.aclose()

    async def send(self, target: Target, note: Notification) -> Result:
        if not _DEVICE_TOKEN.fullmatch(target.token):
            return Result(Outcome.DEAD, "bad_device_token")
        body = json.dumps(apns_payload(note)).encode()
        headers = {
            "apns-topic": self._topic,
            "apns-push-type": "alert",
            "apns-priority": "10",
            "apns-expiration": str(int(time.time()) + note.ttl),
            "apns-collapse-id": short_key(note.collapse_key, 64),
            "content-type": "application/json",
        }
        url = f"{self._endpoint}/3/device/{target.token}"
        return await bounded("apns", self._timeout, lambda: self._exchange(url, body, headers))

    async def _exchange(self, url: str, body: bytes, headers: dict[str, str]) -> Result:
        token = self.tokens.get()
        headers = {**headers, "authorization": f"bearer {token}"}
        response = await self._client.post(url, content=body, headers=headers)
        reason = _reason(response) if response.status_code >= 400 else None
        if response.status_code == 410:
            return Result(Outcome.DEAD, "unregistered")
        if response.status_code == 400 and reason == "BadDeviceToken":
            return Result(Outcome.DEAD, "bad_device_token")
        if response.status_code == 403 and reason == "ExpiredProviderToken":
            self.tokens.expired(token)
            return Result(Outcome.RETRY, "expired_provider_token")
        return status_result(response, _snake(reason) if reason else None)
