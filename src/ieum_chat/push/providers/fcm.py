"""Firebase Cloud Messaging, HTTP v1 API: one ``messages:send`` per device.

Authorised with a service account's OAuth2 access token (see ``_oauth``). FCM's ``data`` is a
map of strings only, so every payload value is sent as its string form; the app parses
``seq`` and ``unreadCount`` back. A 401 means the cached token went bad early (revoked,
clock skew): it is replaced once and the push repeated once.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx

from ieum_chat.config import Settings

from ._http import bounded, make_client, short_key, status_result
from ._oauth import AccessTokens, TokenRefused, load_service_account
from .base import Notification, Outcome, Provider, Result, Target

__all__ = ["FcmProvider", "fcm_message"]

log = logging.getLogger("ieum_chat.push")


def fcm_message(target: Target, note: Notification) -> dict[str, Any]:
    """The ``message`` object FCM v1 takes, for Android and for iOS through FCM."""
    collapse = short_key(note.collapse_key, 64)
    return {
        "token": target.token,
        "notification": {"title": note.title, "body": note.body},
        "data": {key: str(value) for key, value in note.data.items()},
        "android": {
            "collapse_key": note.collapse_key,
            "priority": "high",
            "ttl": f"{note.ttl}s",
            "notification": {"tag": note.collapse_key, "notification_count": note.badge},
        },
        "apns": {
            "headers": {"apns-collapse-id": collapse},
            "payload": {"aps": {"badge": note.badge, "sound": "default", "thread-id": collapse}},
        },
    }


def _error_code(response: httpx.Response) -> str | None:
    """FCM's own error code (``UNREGISTERED``, ``QUOTA_EXCEEDED``...) from the error body's
    details, else its canonical status (``NOT_FOUND``...)."""
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(error, dict):
        return None
    for detail in error.get("details") or ():
        if isinstance(detail, dict) and isinstance(detail.get("errorCode"), str):
            return str(detail["errorCode"])
    status = error.get("status")
    return status if isinstance(status, str) else None


def fcm_result(response: httpx.Response) -> Result:
    code = _error_code(response) if response.status_code >= 400 else None
    if code == "UNREGISTERED" or response.status_code == 404:
        return Result(Outcome.DEAD, "unregistered")
    return status_result(response, code.lower() if code else None)


class FcmProvider(Provider):
    platform = "fcm"

    def __init__(self, settings: Settings) -> None:
        if not settings.fcm_credentials:
            raise ValueError("FCM needs IEUM_FCM_CREDENTIALS (the service account's JSON file)")
        account = load_service_account(settings.fcm_credentials)
        self.project_id = account.project_id
        self._timeout = settings.push_timeout
        endpoint = settings.fcm_endpoint.rstrip("/")
        self._url = f"{endpoint}/v1/projects/{account.project_id}/messages:send"
        # HTTP/2 where the service offers it (ALPN): one connection carries every request
        self._client = make_client(settings, http2=True)
        self._tokens = AccessTokens(account, self._client)

    async def close(self) -> None:
        await self._client.aclose()

    async def send(self, target: Target, note: Notification) -> Result:
        body = json.dumps({"message": fcm_message(target, note)}).encode()
        return await bounded("fcm", self._timeout, lambda: self._exchange(body))

    async def _exchange(self, body: bytes) -> Result:
        try:
            token = await self._tokens.get()
            response = await self._post(body, token)
            if response.status_code == 401:
                token = await self._tokens.get(stale=token)
                response = await self._post(body, token)
        except TokenRefused as exc:
            return _token_result(exc)
        return fcm_result(response)

    async def _post(self, body: bytes, token: str) -> httpx.Response:
        return await self._client.post(
            self._url,
            content=body,
            headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
        )


def _token_result(exc: TokenRefused) -> Result:
    """A refused token request fails every push alike: retried when the endpoint is busy or
    down, otherwise failed loudly (a deleted key or a wrong account needs an operator)."""
    if exc.status < 300:  # a 200 without a usable token: the endpoint misbehaved
        return Result(Outcome.RETRY, "token_malformed")
    result = status_result(exc.response, f"token_http_{exc.status}")
    if result.outcome is Outcome.FAILED:
        log.error("FCM token endpoint refused the service account: HTTP %s", exc.status)
    return result
