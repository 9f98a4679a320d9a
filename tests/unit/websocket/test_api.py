"""The public names other packages are written against, and the core's import discipline."""

from __future__ import annotations

import dataclasses
import importlib
import subprocess
import sys

import pytest

from ieum_chat import websocket

PUBLIC = {
    "MAX_HEAD",
    "HandshakeError",
    "UpgradeRequest",
    "head_length",
    "parse_request",
    "validate_upgrade",
    "accept_response",
    "http_response",
    "CloseCode",
    "ProtocolError",
    "TextMessage",
    "BinaryMessage",
    "Ping",
    "Pong",
    "CloseReceived",
    "Event",
    "FrameParser",
    "Connection",
    "State",
    "text_frame",
    "binary_frame",
    "pong_frame",
    "ping_frame",
    "close_frame",
}
MODULES = [
    "_close",
    "_connection",
    "_errors",
    "_events",
    "_handshake",
    "_mask",
    "_parser",
    "_serializer",
]
EVENTS = [
    websocket.TextMessage(b"a"),
    websocket.BinaryMessage(b"a"),
    websocket.Ping(b"a"),
    websocket.Pong(b"a"),
    websocket.CloseReceived(1000, "a"),
    websocket.UpgradeRequest("GET", "/", "/", "", "1.1", ()),
]


def test_public_names() -> None:
    assert set(websocket.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(websocket, name) is not None


@pytest.mark.parametrize("event", EVENTS, ids=lambda event: type(event).__name__)
def test_events_are_frozen_and_slotted(event: object) -> None:
    field = dataclasses.fields(event)[0].name  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(event, field, b"b")
    assert not hasattr(event, "__dict__")


def test_errors_carry_what_the_shell_answers_with() -> None:
    error = websocket.HandshakeError(426, "no", (("Sec-WebSocket-Version", "13"),))
    assert (error.status, error.message, error.headers) == (
        426,
        "no",
        (("Sec-WebSocket-Version", "13"),),
    )
    assert str(error) == "no"
    assert websocket.HandshakeError(400, "bad").headers == ()
    protocol = websocket.ProtocolError(1009, "big")
    assert (protocol.code, protocol.message, str(protocol)) == (1009, "big", "big")
    assert not issubclass(websocket.ProtocolError, websocket.HandshakeError)
    assert not issubclass(websocket.HandshakeError, websocket.ProtocolError)


@pytest.mark.parametrize("module", MODULES)
def test_every_module_declares_all(module: str) -> None:
    loaded = importlib.import_module(f"ieum_chat.websocket.{module}")
    assert loaded.__all__
    for name in loaded.__all__:
        assert hasattr(loaded, name)


def _modules_after_import(prelude: str) -> set[str]:
    code = f"{prelude}\nimport sys, ieum_chat.websocket\nprint('\\n'.join(sorted(sys.modules)))\n"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return set(result.stdout.split())


def test_the_core_imports_no_event_loop_and_nothing_of_the_app() -> None:
    loaded = _modules_after_import("")
    assert "ieum_chat.websocket" in loaded
    assert not loaded & {"asyncio", "starlette", "uvicorn", "ieum_chat.stomp"}
    app_modules = {name for name in loaded if name.startswith("ieum_chat.")}
    assert all(name.startswith("ieum_chat.websocket") for name in app_modules)


def test_without_websockets_the_core_falls_back_and_imports_no_io() -> None:
    # With websockets present, its __init__ pulls in importlib.metadata and through it socket;
    # the core itself must not.
    loaded = _modules_after_import(
        "import sys\nsys.modules['websockets'] = None\n"
        "from ieum_chat.websocket import _mask, _parser, FrameParser, TextMessage\n"
        "assert _mask.unmask is _mask.xor_mask and _parser.unmask is _mask.xor_mask\n"
        "parser = FrameParser(max_message_size=10)\n"
        "parser.receive_data(bytes.fromhex('818537fa213d7f9f4d5158'))\n"
        "assert parser.next_event() == TextMessage(b'Hello')"
    )
    assert "ieum_chat.websocket" in loaded
    assert not any(name.startswith("websockets.") for name in loaded)
    assert not loaded & {"asyncio", "socket", "selectors", "ssl", "starlette", "uvicorn"}
