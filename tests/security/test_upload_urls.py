"""Threat: replaying a signed upload URL. The local backend's PUT URL stayed good until it
expired, so whoever saw it (a proxy log, a shared screen, the uploader later) could PUT again
and replace an image already sent in the chat, which is served ``immutable`` and so kept by
every cache in its new form.

Refused by: ``LocalUploads.publish`` creates the file only if it does not exist (a hard link
of the checked file, atomic on one file system, so concurrent PUTs too get one winner);
every later PUT of that URL gets 409 CONFLICT and the first file stays.
"""

from __future__ import annotations

import asyncio
import io

from PIL import Image

from tests.unit.api.conftest import Api
from tests.unit.api.test_uploads import PNG, put, ticket


def other_png(color: tuple[int, int, int]) -> bytes:
    """A real PNG (the PUT decodes it) that is not :data:`PNG`."""
    out = io.BytesIO()
    Image.new("RGB", (40, 30), color).save(out, "PNG")
    return out.getvalue()


OTHER_PNG = other_png((0, 0, 0))


async def test_a_second_put_is_refused_and_the_first_file_stays(api: Api) -> None:
    issued = await ticket(api, "image/png", max(len(PNG), len(OTHER_PNG)))
    first = await put(api, issued["uploadUrl"], PNG, "image/png")
    assert first.status_code == 201, first.text
    again = await put(api, issued["uploadUrl"], OTHER_PNG, "image/png")
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "CONFLICT"
    assert (await api.client.get(issued["imageUrl"])).content == PNG


async def test_concurrent_puts_have_one_winner(api: Api) -> None:
    bodies = [PNG, OTHER_PNG, other_png((1, 1, 1)), other_png((2, 2, 2))]
    issued = await ticket(api, "image/png", max(len(body) for body in bodies))
    responses = await asyncio.gather(
        *(put(api, issued["uploadUrl"], body, "image/png") for body in bodies)
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 409, 409, 409], [r.text for r in responses]
    winner = next(body for body, r in zip(bodies, responses, strict=True) if r.status_code == 201)
    assert (await api.client.get(issued["imageUrl"])).content == winner
