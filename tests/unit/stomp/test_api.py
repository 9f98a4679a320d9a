"""The public names other packages are written against, and the core's import discipline."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from ieum_chat import stomp

PUBLIC = {
    "StompError",
    "RemoteProtocolError",
    "LocalProtocolError",
    "PROTOCOL_ERROR",
    "FRAME_TOO_LARGE",
    "Frame",
    "HEARTBEAT",
    "Heartbeat",
    "FrameParser",
    "serialize_frame",
    "message_frame",
    "ConnectRequested",
    "Subscribe",
    "Unsubscribe",
    "Send",
    "Ack",
    "Nack",
    "Disconnect",
    "Event",
    "SessionState",
    "TimerAction",
    "StompSession",
}
MODULES = [
    "_errors",
    "_escape",
    "_events",
    "_frame",
    "_negotiation",
    "_parser",
    "_serializer",
    "_session",
    "_states",
]


def test_public_names() -> None:
    assert set(stomp.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(stomp, name) is not None


def test_error_tree() -> None:
    assert issubclass(stomp.RemoteProtocolError, stomp.StompError)
    assert issubclass(stomp.LocalProtocolError, stomp.StompError)
    assert not issubclass(stomp.LocalProtocolError, stomp.RemoteProtocolError)


def test_enums() -> None:
    assert {state.name for state in stomp.SessionState} == {
        "AWAITING_CONNECT",
        "CONNECTING",
        "CONNECTED",
        "CLOSED",
    }
    assert {action.name for action in stomp.TimerAction} == {
        "SEND_HEARTBEAT",
        "CONNECT_TIMEOUT",
        "PEER_TIMEOUT",
        "EXPIRED",
    }
    assert stomp.HEARTBEAT is stomp.Heartbeat.HEARTBEAT


def test_events_and_frames_are_frozen() -> None:
    event = stomp.Disconnect(receipt=None)
    with pytest.raises(AttributeError):
        event.receipt = "x"  # type: ignore[misc]
    frame = stomp.Frame("SEND")
    with pytest.raises(AttributeError):
        frame.command = "ACK"  # type: ignore[misc]


@pytest.mark.parametrize("module", MODULES)
def test_every_module_declares_all(module: str) -> None:
    loaded = importlib.import_module(f"ieum_chat.stomp.{module}")
    assert loaded.__all__
    for name in loaded.__all__:
        assert hasattr(loaded, name)


def test_the_core_imports_no_io_and_nothing_of_the_app() -> None:
    code = "import sys, ieum_chat.stomp\nprint('\\n'.join(sorted(sys.modules)))\n"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    loaded = set(result.stdout.split())
    assert not loaded & {"asyncio", "starlette", "sqlalchemy", "socket", "selectors"}
    app_modules = {name for name in loaded if name.startswith("ieum_chat.")}
    assert all(name.startswith("ieum_chat.stomp") for name in app_modules)
