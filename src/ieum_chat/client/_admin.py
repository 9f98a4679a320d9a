"""The service API (``/admin/v1``) for back-office scripts of the app's own backend.

    async with Admin("https://chat.example", api_key) as admin:
        await admin.upsert_user(user_id, "민지")
        couple = await admin.create_couple(user_id, partner_id)
        await admin.send_notice(couple["id"], "오늘은 두 분의 100일입니다 🎉")

Every call returns the server's JSON answer as a dict, or raises :class:`AdminError` with the
server's error code. A notice carries a tempId (a fresh one unless given), so a script may
send it again after a timeout: the server stores it once. Dissolving and deleting are
idempotent on the server.
"""

from __future__ import annotations

import uuid
from types import TracebackType
from typing import Any

import httpx

from ._errors import ChatClientError
from ._requests import check_temp_id

__all__ = ["Admin", "AdminError"]


class AdminError(ChatClientError):
    """The service API refused a call: ``status`` (HTTP), ``code`` (``NOT_FOUND``,
    ``CONFLICT``, ``AUTH_FAILED``...), ``detail`` (why, in English)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail


class Admin:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/admin/v1",
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            transport=transport,
        )

    async def __aenter__(self) -> Admin:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def upsert_user(
        self, user_id: uuid.UUID | str, name: str, profile_image: str | None = None
    ) -> dict[str, Any]:
        """Create or update a user (the app's own user id)."""
        body = {"name": name, "profileImage": profile_image}
        return await self._call("PUT", f"/users/{_id(user_id)}", body)

    async def delete_user(self, user_id: uuid.UUID | str) -> dict[str, Any]:
        """Delete an account: sessions end, tokens are refused, its couple is dissolved."""
        return await self._call("DELETE", f"/users/{_id(user_id)}")

    async def create_couple(
        self, user_a: uuid.UUID | str, user_b: uuid.UUID | str
    ) -> dict[str, Any]:
        """Pair two users; ``{"id", "userIds", ...}``."""
        return await self._call("POST", "/couples", {"userIds": [_id(user_a), _id(user_b)]})

    async def send_notice(
        self, couple_id: uuid.UUID | str, content: str, *, temp_id: str | None = None
    ) -> dict[str, Any]:
        """Store and broadcast a NOTICE in the couple's stream; the stored message."""
        body = {"content": content, "tempId": check_temp_id(temp_id)}
        return await self._call("POST", f"/couples/{_id(couple_id)}/messages", body)

    async def dissolve_couple(self, couple_id: uuid.UUID | str) -> dict[str, Any]:
        """End a couple on every node; its data is erased after the retention period."""
        return await self._call("POST", f"/couples/{_id(couple_id)}/dissolve")

    async def _call(self, method: str, path: str, body: object = None) -> dict[str, Any]:
        response = await self._http.request(method, path, json=body)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.is_success and isinstance(answer, dict):
            return answer
        if isinstance(answer, dict) and isinstance(answer.get("code"), str):
            detail = answer.get("detail") or answer.get("message") or ""
            raise AdminError(response.status_code, answer["code"], str(detail))
        raise AdminError(response.status_code, "UNEXPECTED", response.text[:200])


def _id(value: uuid.UUID | str) -> str:
    return str(value if isinstance(value, uuid.UUID) else uuid.UUID(value))
