"""The app backend's webhook: one signed POST per event.

``X-Ieum-Signature: t=UNIX,v1=HEX`` where HEX is HMAC-SHA256(secret, ``"{t}.{body}"``): the
receiver recomputes it over the raw body and may refuse an old ``t`` (replays). Anything but a
2xx is tried again later (the engine backs off), whatever the status: the receiver says it
has the event only by answering 2xx. The HTTP client, the timeout and what network failures
mean are the push providers' (``providers._http``).
"""

from __future__ import annotations

import hashlib
import hmac
import time

from ieum_chat.config import Settings
from ieum_chat.push.providers._http import bounded, make_client, retry_after
from ieum_chat.push.providers.base import Outcome, Result

__all__ = ["WebhookSender", "signature"]


def signature(secret: str, body: bytes, at: int) -> str:
    mac = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={mac}"


class WebhookSender:
    def __init__(self, settings: Settings) -> None:
        if not settings.webhook_url:
            raise ValueError("webhooks need IEUM_WEBHOOK_URL")
        self.url = settings.webhook_url
        self._secret = settings.webhook_secret
        self._timeout = settings.push_timeout
        self._client = make_client(settings)

    async def close(self) -> None:
        await self._client.aclose()

    async def send(self, body: bytes) -> Result:
        return await bounded("webhook", self._timeout, lambda: self._post(body))

    async def _post(self, body: bytes) -> Result:
        headers = {"content-type": "application/json"}
        if self._secret:
            headers["x-ieum-signature"] = signature(self._secret, body, int(time.time()))
        response = await self._client.post(self.url, content=body, headers=headers)
        if 200 <= response.status_code < 300:
            return Result(Outcome.SENT)
        return Result(Outcome.RETRY, f"http_{response.status_code}", retry_after(response))
