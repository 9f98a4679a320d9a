"""The app backend's webhook: one signed POST per event.

``X-Ieum-Signature: t=UNIX,v1=HEX`` where HEX is HMAC-SHA256(secret, ``"{t}.{body}"``): the
receiver recomputes it over the raw body and may refuse an old ``t`` (replays). Anything but a
2xx is tried again later (the engine backs off), whatever the status: the receiver says it
has the event only by answering 2xx.
"""

from __future__ import annotations

import hashlib
import hmac
import time

import httpx

from ieum_chat.push.providers.base import Outcome, Result

__all__ = ["WebhookSender", "signature"]

# A Retry-After past this is not waited for longer (the engine's back-off caps too).
_MAX_RETRY_AFTER = 3600.0


def signature(secret: str, body: bytes, at: int) -> str:
    mac = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={mac}"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return min(max(0.0, float(value)), _MAX_RETRY_AFTER)
    except ValueError:
        return None


class WebhookSender:
    def __init__(
        self, url: str, secret: str | None, *, timeout: float, verify: str | bool = True
    ) -> None:
        self.url = url
        self._secret = secret
        self._client = httpx.AsyncClient(timeout=timeout, verify=verify, follow_redirects=False)

    async def close(self) -> None:
        await self._client.aclose()

    async def send(self, body: bytes) -> Result:
        headers = {"content-type": "application/json", "user-agent": "ieum-chat-webhook"}
        if self._secret:
            headers["x-ieum-signature"] = signature(self._secret, body, int(time.time()))
        try:
            response = await self._client.post(self.url, content=body, headers=headers)
        except httpx.TimeoutException:
            return Result(Outcome.RETRY, "timeout")
        except httpx.HTTPError as exc:
            return Result(Outcome.RETRY, type(exc).__name__.lower()[:40])
        if 200 <= response.status_code < 300:
            return Result(Outcome.SENT)
        return Result(Outcome.RETRY, f"http_{response.status_code}", _retry_after(response))
