"""Uploads through the REST API as a client makes them (ticket, PUT, send), for the tests
that talk to a real server."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

__all__ = ["auth", "png_bytes", "send", "ticket", "upload", "uploaded"]

Couple = dict[str, str]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def ticket(
    http: httpx.AsyncClient, couple: Couple, content_type: str, size: int, **extra: Any
) -> httpx.Response:
    return await http.post(
        f"/chat/rooms/{couple['couple']}/uploads",
        json={"contentType": content_type, "size": size, **extra},
        headers=auth(couple["ta"]),
    )


async def upload(
    http: httpx.AsyncClient, couple: Couple, path: Path, content_type: str, **extra: Any
) -> httpx.Response:
    """Ask for a ticket, PUT the file: the PUT's answer (201: the checked upload)."""
    data = await asyncio.to_thread(path.read_bytes)
    asked = await ticket(http, couple, content_type, len(data), **extra)
    assert asked.status_code == 200, asked.text
    t = asked.json()
    assert t["completeUrl"].endswith(f"/uploads/{t['uploadId']}/complete")
    return await http.put(t["uploadUrl"], content=data, headers=t["headers"])


async def uploaded(
    http: httpx.AsyncClient, couple: Couple, path: Path, content_type: str, **extra: Any
) -> dict[str, Any]:
    done = await upload(http, couple, path, content_type, **extra)
    assert done.status_code == 201, done.text
    result: dict[str, Any] = done.json()
    return result


async def send(http: httpx.AsyncClient, couple: Couple, body: dict[str, Any]) -> httpx.Response:
    return await http.post(
        f"/chat/rooms/{couple['couple']}/messages", json=body, headers=auth(couple["ta"])
    )


def png_bytes(size: tuple[int, int] = (8, 8), color: tuple[int, int, int] = (255, 0, 0)) -> bytes:
    """A small real PNG (uploads are decoded), without EXIF: stored as sent, byte for byte."""
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()
