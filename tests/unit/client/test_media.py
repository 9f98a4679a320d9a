"""Reading the upload API's answers: the ticket and the upload result (README "REST")."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from ieum_chat.client import UploadError, UploadResult, UploadTicket
from ieum_chat.client._media import parse_result, parse_ticket

TICKET: dict[str, Any] = {
    "uploadId": "0f5c",
    "kind": "AUDIO",
    "method": "PUT",
    "uploadUrl": "http://chat.example/uploads/c/n.weba?type=audio%2Fwebm&sig=x",
    "headers": {"Content-Type": "audio/webm"},
    "fields": {},
    "expiresAt": "2026-12-02T21:00:00.000",
    "expiresIn": 3600,
    "mediaUrl": "http://chat.example/uploads/c/n.weba",
    "imageUrl": None,
    "completeUrl": "/chat/rooms/c/uploads/0f5c/complete",
}

RESULT: dict[str, Any] = {
    "uploadId": "0f5c",
    "kind": "AUDIO",
    "contentType": "audio/webm",
    "size": 5120,
    "mediaUrl": "http://chat.example/uploads/c/n.weba",
    "imageUrl": None,
    "thumbnailUrl": None,
    "durationMs": 3250,
    "width": None,
    "height": None,
    "fileName": None,
}


def test_a_ticket_every_field() -> None:
    assert parse_ticket(TICKET) == UploadTicket(
        upload_id="0f5c",
        kind="AUDIO",
        method="PUT",
        upload_url=TICKET["uploadUrl"],
        headers={"Content-Type": "audio/webm"},
        fields={},
        expires_at=datetime(2026, 12, 2, 21, 0),
        expires_in=3600,
        media_url=TICKET["mediaUrl"],
        image_url=None,
        complete_url="/chat/rooms/c/uploads/0f5c/complete",
    )


def test_an_s3_ticket_has_form_fields() -> None:
    fields = {"key": "c/v.mp4", "Content-Type": "video/mp4", "policy": "p", "x-amz-signature": "s"}
    ticket = parse_ticket({**TICKET, "method": "POST", "headers": None, "fields": fields})
    assert (ticket.method, ticket.headers, ticket.fields) == ("POST", {}, fields)


def test_a_result_every_field() -> None:
    assert parse_result(RESULT) == UploadResult(
        upload_id="0f5c",
        kind="AUDIO",
        content_type="audio/webm",
        size=5120,
        media_url="http://chat.example/uploads/c/n.weba",
        image_url=None,
        thumbnail_url=None,
        duration_ms=3250,
        width=None,
        height=None,
        file_name=None,
    )


def test_keys_a_server_leaves_out_are_none() -> None:
    sparse = {k: v for k, v in RESULT.items() if v is not None and k != "durationMs"}
    result = parse_result(sparse)
    assert (result.duration_ms, result.thumbnail_url, result.file_name) == (None, None, None)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("method", "PATCH"),
        ("uploadUrl", None),
        ("completeUrl", ""),
        ("headers", {"Content-Type": 1}),
        ("fields", ["key"]),
        ("expiresAt", "tomorrow"),
        ("expiresIn", -1),
        ("imageUrl", 3),
    ],
)
def test_a_broken_ticket_is_an_unexpected_answer(field: str, value: object) -> None:
    with pytest.raises(UploadError, match=field) as caught:
        parse_ticket({**TICKET, field: value}, 200)
    assert (caught.value.status, caught.value.code) == (200, "UNEXPECTED")


@pytest.mark.parametrize(
    ("field", "value"),
    [("size", "5120"), ("size", True), ("durationMs", 3.2), ("mediaUrl", None), ("fileName", 1)],
)
def test_a_broken_result_is_an_unexpected_answer(field: str, value: object) -> None:
    with pytest.raises(UploadError, match=field) as caught:
        parse_result({**RESULT, field: value}, 201)
    assert (caught.value.status, caught.value.code) == (201, "UNEXPECTED")


@pytest.mark.parametrize("answer", [None, [], "ok"])
def test_an_answer_that_is_not_an_object(answer: object) -> None:
    with pytest.raises(UploadError, match="not a JSON object"):
        parse_result(answer)
