"""The OpenAPI document describes every REST payload and error as the API really answers."""

from __future__ import annotations

from typing import Any

import pytest

from ieum_chat.api.errors import HTTP_STATUS
from ieum_chat.errors import ErrorCode
from ieum_chat.media_types import CONTENT_TYPES
from tests.unit.api.conftest import Api

OPERATIONS: dict[tuple[str, str], set[str]] = {
    ("get", "/chat/room"): {"200", "401", "404"},
    ("get", "/chat/rooms/{roomId}/messages"): {"200", "400", "401", "403", "404"},
    ("post", "/chat/rooms/{roomId}/messages"): {"201", "400", "401", "403", "404", "413", "429"},
    ("post", "/chat/rooms/{roomId}/read"): {"200", "400", "401", "403", "404", "413", "429"},
    ("post", "/chat/rooms/{roomId}/uploads"): {
        "200",
        "400",
        "401",
        "403",
        "404",
        "413",
        "415",
        "429",
    },
    ("post", "/chat/rooms/{roomId}/uploads/{uploadId}/complete"): {
        "200",
        "401",
        "403",
        "404",
        "409",
        "415",
    },
    ("put", "/uploads/{coupleId}/{name}"): {"201", "400", "403", "404", "409", "413", "415"},
    ("get", "/uploads/{coupleId}/{name}"): {"200", "206", "404", "416"},
    ("get", "/chat/export"): {"200", "401", "404", "429"},
    ("get", "/chat/devices"): {"200", "401"},
    ("put", "/chat/devices/{deviceId}"): {"200", "201", "400", "401", "413"},
    ("delete", "/chat/devices/{deviceId}"): {"204", "400", "401", "404"},
    ("get", "/chat/settings"): {"200", "401"},
    ("put", "/chat/settings"): {"200", "400", "401", "413"},
    ("get", "/chat/push/vapid-key"): {"200", "404"},
}

# Under /chat/ but for anyone: a browser asks for it before it has anything to register.
UNSECURED = {("get", "/chat/push/vapid-key")}


@pytest.fixture
async def schema(api: Api) -> dict[str, Any]:
    response = await api.client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


async def test_every_operation_documents_its_answers(schema: dict[str, Any]) -> None:
    for (method, path), statuses in OPERATIONS.items():
        operation = schema["paths"][path][method]
        documented = set(operation["responses"])
        assert statuses <= documented, (method, path, statuses - documented)
        assert "422" not in documented, (method, path)
        for status in documented - {"200", "201", "204", "206"}:
            content = operation["responses"][status]["content"]["application/json"]
            assert content["schema"] == {"$ref": "#/components/schemas/ErrorBody"}


async def test_bodies_and_security_are_documented(schema: dict[str, Any]) -> None:
    paths = schema["paths"]
    for path in ("/chat/rooms/{roomId}/messages", "/chat/rooms/{roomId}/read"):
        body = paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body["type"] == "object"
    upload = paths["/chat/rooms/{roomId}/uploads"]["post"]["requestBody"]
    size = upload["content"]["application/json"]["schema"]["properties"]["size"]
    assert size["maximum"] == 100 * 1024 * 1024  # the largest kind's limit: video
    assert set(paths["/uploads/{coupleId}/{name}"]["put"]["requestBody"]["content"]) == set(
        CONTENT_TYPES
    )
    for method, path in OPERATIONS:
        secured = "security" in paths[path][method]
        expected = path.startswith("/chat/") and (method, path) not in UNSECURED
        assert secured == expected, (method, path)
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for name in ("HTTPValidationError", "ValidationError"):
        assert name not in schema["components"]["schemas"]
    codes = schema["components"]["schemas"]["ErrorCode"]["enum"]
    assert {"AUTH_FAILED", "UNAUTHORIZED", "NOT_FOUND", "PAYLOAD_TOO_LARGE"} <= set(codes)


async def test_the_export_is_documented_as_a_zip(schema: dict[str, Any]) -> None:
    operation = schema["paths"]["/chat/export"]["get"]
    assert operation["tags"] == ["chat"]
    assert operation["summary"]
    assert operation["responses"]["200"]["content"] == {
        "application/zip": {"schema": {"type": "string", "format": "binary"}}
    }


async def test_the_device_routes_document_their_bodies(schema: dict[str, Any]) -> None:
    put = schema["paths"]["/chat/devices/{deviceId}"]["put"]
    body = put["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["platform"]["enum"] == ["fcm", "apns", "webpush"]
    assert body["then"]["required"] == ["subscription"]
    keys = body["properties"]["subscription"]["properties"]["keys"]["properties"]
    assert keys["p256dh"]["pattern"] == "^[A-Za-z0-9_-]{87}={0,1}$"
    assert keys["auth"]["pattern"] == "^[A-Za-z0-9_-]{22}={0,2}$"
    (device_id,) = put["parameters"]
    assert (device_id["name"], device_id["schema"]["maxLength"]) == ("deviceId", 100)
    assert put["tags"] == ["push"]
    settings = schema["paths"]["/chat/settings"]["put"]["requestBody"]["content"]
    assert settings["application/json"]["schema"]["required"] == ["pushPreview"]


async def test_optional_query_parameters_are_plain_integers(schema: dict[str, Any]) -> None:
    parameters = schema["paths"]["/chat/rooms/{roomId}/messages"]["get"]["parameters"]
    by_name = {p["name"]: p["schema"] for p in parameters}
    assert by_name["before"]["type"] == "integer"
    assert by_name["after"]["type"] == "integer"
    assert (by_name["limit"]["minimum"], by_name["limit"]["maximum"]) == (1, 100)


async def test_docs_page_is_served(api: Api) -> None:
    response = await api.client.get("/docs")
    assert response.status_code == 200
    assert "swagger" in response.text.lower()


async def test_unknown_path_and_wrong_method_get_the_error_shape(api: Api) -> None:
    missing = await api.client.get("/chat/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["type"] == "ERROR"
    assert missing.json()["code"] == "NOT_FOUND"
    wrong = await api.client.delete("/chat/room", headers=api.auth())
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET"
    assert wrong.json()["type"] == "ERROR"


def test_every_rest_error_code_has_a_status() -> None:
    socket_only = {
        "SERVER_SHUTDOWN",
        "PROTOCOL_ERROR",
        "FRAME_TOO_LARGE",
        "CONNECT_TIMEOUT",
        "NO_SUCH_DESTINATION",
        "SLOW_CONSUMER",
        "HISTORY_UNAVAILABLE",
        "COUPLE_DISSOLVED",
    }
    rest_codes = {c for c in ErrorCode if c.value not in socket_only}
    assert rest_codes <= set(HTTP_STATUS)
