"""Threat: replaying a signed upload URL. The local backend's PUT URL stayed good until it
expired, so whoever saw it (a proxy log, a shared screen, the uploader later) could PUT again
and replace an image already sent in the chat, which is served ``immutable`` and so kept by
every cache in its new form.

Refused by: ``LocalUploads.store`` creates the file only if it does not exist (a hard link of
the finished temporary file, atomic on one file system, so concurrent PUTs too get one
winner); every later PUT of that URL gets 409 CONFLICT and the first file stays.
"""

from __future__ import annotations

import asyncio

from tests.unit.api.conftest import Api
from tests.unit.api.test_uploads import PNG, put, ticket

OTHER_PNG = PNG[:8] + b"\x00" * 512


async def test_a_second_put_is_refused_and_the_first_file_stays(api: Api) -> None:
    issued = await ticket(api, "image/png", len(PNG))
    first = await put(api, issued["uploadUrl"], PNG, "image/png")
    assert first.status_code == 201, first.text
    again = await put(api, issued["uploadUrl"], OTHER_PNG, "image/png")
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "CONFLICT"
    assert (await api.client.get(issued["imageUrl"])).content == PNG


async def test_concurrent_puts_have_one_winner(api: Api) -> None:
    issued = await ticket(api, "image/png", len(PNG))
    bodies = [PNG, OTHER_PNG, PNG[:8] + b"\x01" * 600, PNG[:8] + b"\x02" * 700]
    responses = await asyncio.gather(
        *(put(api, issued["uploadUrl"], body, "image/png") for body in bodies)
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 409, 409, 409], [r.text for r in responses]
    winner = next(body for body, r in zip(bodies, responses, strict=True) if r.status_code == 201)
    assert (await api.client.get(issued["imageUrl"])).content == winner
