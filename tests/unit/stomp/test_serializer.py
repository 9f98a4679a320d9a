"""serialize_frame and the message_frame fast path."""

from __future__ import annotations

import pytest

from ieum_chat.stomp import Frame, FrameParser, LocalProtocolError, message_frame, serialize_frame


def reparse(data: bytes, version: str = "1.2") -> Frame:
    parser = FrameParser(version=version)
    parser.receive_data(data)
    frame = parser.next_frame()
    assert isinstance(frame, Frame)
    assert parser.buffered == 0
    return frame


def test_frame_without_body() -> None:
    assert (
        serialize_frame(Frame("RECEIPT", (("receipt-id", "7"),))) == b"RECEIPT\nreceipt-id:7\n\n\0"
    )


def test_content_length_is_added_for_a_body() -> None:
    data = serialize_frame(Frame("MESSAGE", (("a", "b"),), b"x\0y"))
    assert data == b"MESSAGE\na:b\ncontent-length:3\n\nx\0y\0"


def test_given_content_length_is_kept_not_repeated() -> None:
    data = serialize_frame(Frame("MESSAGE", (("content-length", "2"),), b"xy"))
    assert data == b"MESSAGE\ncontent-length:2\n\nxy\0"


@pytest.mark.parametrize("value", ["3", "x", "-2", ""])
def test_wrong_content_length_is_a_local_error(value: str) -> None:
    with pytest.raises(LocalProtocolError):
        serialize_frame(Frame("MESSAGE", (("content-length", value),), b"xy"))


def test_headers_are_escaped_in_12() -> None:
    frame = Frame("MESSAGE", (("a:b", "c\\d\ne\rf"),))
    data = serialize_frame(frame, "1.2")
    assert data == b"MESSAGE\na\\cb:c\\\\d\\ne\\rf\n\n\0"
    assert reparse(data, "1.2") == frame


def test_headers_are_escaped_in_11_without_cr() -> None:
    frame = Frame("MESSAGE", (("a:b", "c\\d\ne"),))
    data = serialize_frame(frame, "1.1")
    assert data == b"MESSAGE\na\\cb:c\\\\d\\ne\n\n\0"
    assert reparse(data, "1.1") == frame
    with pytest.raises(LocalProtocolError):
        serialize_frame(Frame("MESSAGE", (("a", "b\rc"),)), "1.1")


def test_headers_are_not_escaped_in_10() -> None:
    frame = Frame("MESSAGE", (("a", "b:c\\d"),))
    data = serialize_frame(frame, "1.0")
    assert data == b"MESSAGE\na:b:c\\d\n\n\0"
    assert reparse(data, "1.0") == frame


@pytest.mark.parametrize(
    "headers",
    [(("a", "b\nc"),), (("a", "b\rc"),), (("a:b", "c"),), (("", "c"),), (("a\n", "c"),)],
)
def test_unrepresentable_headers_in_10(headers: tuple[tuple[str, str], ...]) -> None:
    with pytest.raises(LocalProtocolError):
        serialize_frame(Frame("MESSAGE", headers), "1.0")


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_nul_and_empty_names_are_refused(version: str) -> None:
    with pytest.raises(LocalProtocolError):
        serialize_frame(Frame("MESSAGE", (("a", "b\0"),)), version)
    with pytest.raises(LocalProtocolError):
        serialize_frame(Frame("MESSAGE", (("", "b"),)), version)


@pytest.mark.parametrize("command", ["CONNECTED", "CONNECT", "STOMP"])
def test_connect_frames_are_never_escaped(command: str) -> None:
    frame = Frame(command, (("server", "x:1\\y"),))
    assert serialize_frame(frame, "1.2") == command.encode() + b"\nserver:x:1\\y\n\n\0"
    assert reparse(serialize_frame(frame, "1.2")) == frame
    with pytest.raises(LocalProtocolError):
        serialize_frame(Frame(command, (("server", "x\ny"),)), "1.2")


@pytest.mark.parametrize("command", ["", "message", "MESS AGE", "X\n"])
def test_invalid_command(command: str) -> None:
    with pytest.raises(LocalProtocolError):
        serialize_frame(Frame(command))


def test_unknown_version() -> None:
    with pytest.raises(LocalProtocolError):
        serialize_frame(Frame("MESSAGE"), "1.3")
    with pytest.raises(LocalProtocolError):
        message_frame(destination="/d", subscription="s", message_id="m", body=b"", version="2")


def test_utf8() -> None:
    frame = Frame("MESSAGE", (("destination", "/방"),), "안녕".encode())
    assert reparse(serialize_frame(frame)).get("destination") == "/방"


# -- message_frame -----------------------------------------------------------------------------


def test_message_frame_bytes() -> None:
    data = message_frame(
        destination="/topic/couple/1", subscription="sub-0", message_id="42", body=b'{"a":1}'
    )
    assert data == (
        b"MESSAGE\ndestination:/topic/couple/1\nsubscription:sub-0\nmessage-id:42\n"
        b'content-type:application/json\ncontent-length:7\n\n{"a":1}\0'
    )


def test_message_frame_equals_the_general_serializer() -> None:
    kwargs = {"destination": "/t", "subscription": "s", "message_id": "m", "body": b"\0{}"}
    data = message_frame(**kwargs, content_type="text/plain", extra_headers=(("ack", "m"),))  # type: ignore[arg-type]
    general = serialize_frame(
        Frame(
            "MESSAGE",
            (
                ("destination", "/t"),
                ("subscription", "s"),
                ("message-id", "m"),
                ("content-type", "text/plain"),
                ("content-length", "3"),
                ("ack", "m"),
            ),
            b"\0{}",
        )
    )
    assert data == general


@pytest.mark.parametrize(
    ("version", "expected"),
    [("1.2", b"a\\cb\\rc\\\\"), ("1.1", b"a\\cb\\\\")],
)
def test_message_frame_escapes_only_what_needs_it(version: str, expected: bytes) -> None:
    value = "a:b\rc\\" if version == "1.2" else "a:b\\"
    data = message_frame(
        destination="/plain", subscription=value, message_id="m", body=b"", version=version
    )
    assert b"destination:/plain\n" in data
    assert b"subscription:" + expected + b"\n" in data
    assert reparse(data, version).get("subscription") == value


def test_message_frame_10_refuses_lf() -> None:
    with pytest.raises(LocalProtocolError):
        message_frame(destination="/a\n", subscription="s", message_id="m", body=b"", version="1.0")


def test_message_frame_refuses_a_second_content_length() -> None:
    with pytest.raises(LocalProtocolError):
        message_frame(
            destination="/a",
            subscription="s",
            message_id="m",
            body=b"",
            extra_headers=(("content-length", "0"),),
        )


def test_message_frame_extra_headers_are_escaped() -> None:
    data = message_frame(
        destination="/a",
        subscription="s",
        message_id="m",
        body=b"x",
        extra_headers=(("x:y", "1\n2"),),
    )
    assert reparse(data).get("x:y") == "1\n2"
