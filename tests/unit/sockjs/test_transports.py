"""What each HTTP transport writes (prelude, frame wrapping) and reads (send bodies), as the
SockJS 0.3 protocol suite spells it out."""

from __future__ import annotations

import pytest

from ieum_chat.sockjs import RemoteProtocolError, Request, close_frame, message_frame
from ieum_chat.sockjs._framing import OPEN_FRAME
from ieum_chat.sockjs.transports import RECEIVERS, SENDERS
from ieum_chat.sockjs.transports._spec import callback_name


def request(query: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> Request:
    return Request(method="GET", path="/0/0/x", query=query or {}, headers=headers or {})


def test_receivers_table() -> None:
    assert {name: spec.name for name, spec in RECEIVERS.items()} == {
        "xhr": "xhr-polling",
        "xhr_streaming": "xhr-streaming",
        "eventsource": "eventsource",
        "htmlfile": "htmlfile",
        "jsonp": "jsonp-polling",
    }
    assert [name for name, spec in RECEIVERS.items() if spec.streaming] == [
        "xhr_streaming",
        "eventsource",
        "htmlfile",
    ]
    assert set(SENDERS) == {"xhr_send", "jsonp_send"}


def test_xhr_frames_end_with_a_newline() -> None:
    spec = RECEIVERS["xhr"]
    assert spec.wrap(OPEN_FRAME, None) == b"o\n"
    assert spec.wrap(message_frame(["x"]), None) == b'a["x"]\n'
    assert spec.prelude(None) == b""
    assert RECEIVERS["xhr_streaming"].prelude(None) == b"h" * 2048 + b"\n"
    assert spec.content_type == "application/javascript; charset=UTF-8"


def test_eventsource_frames() -> None:
    spec = RECEIVERS["eventsource"]
    assert spec.prelude(None) == b"\r\n"
    assert spec.wrap(OPEN_FRAME, None) == b"data: o\r\n\r\n"
    assert spec.wrap(message_frame(["  \x00\n\r "]), None) == (
        b'data: a["  \\u0000\\n\\r "]\r\n\r\n'
    )
    assert spec.content_type == "text/event-stream"


def test_htmlfile_frames_and_prelude() -> None:
    spec = RECEIVERS["htmlfile"]
    prelude = spec.prelude("callback")
    assert len(prelude) > 1024
    assert b"var c = parent.callback;" in prelude
    assert prelude.startswith(b"<!doctype html>")
    assert spec.wrap(OPEN_FRAME, "callback") == b'<script>\np("o");\n</script>\r\n'
    assert spec.wrap(message_frame(["x"]), "cb") == b'<script>\np("a[\\"x\\"]");\n</script>\r\n'
    # A message can never end the script element it travels in.
    wrapped = spec.wrap(message_frame(["</script><b>&"]), "cb")
    assert b"</script><b>" not in wrapped
    assert wrapped.count(b"</script>") == 1


def test_jsonp_frames() -> None:
    spec = RECEIVERS["jsonp"]
    assert spec.wrap(OPEN_FRAME, "callback") == b'/**/callback("o");\r\n'
    assert spec.wrap(close_frame(3000, "Go away!"), "x") == (
        b'/**/x("c[3000,\\"Go away!\\"]");\r\n'
    )
    assert spec.wrap(message_frame(["\u2028"]), "x") == b'/**/x("a[\\"\\\\u2028\\"]");\r\n'


@pytest.mark.parametrize("name", ["callback", "x", "_jp.a1b2c3", "$a.b_c", "a1"])
def test_callback_names(name: str) -> None:
    assert callback_name(request({"c": name})) == name
    assert callback_name(request({"callback": name})) == name


@pytest.mark.parametrize("name", [" ", "*", "abc(", "a-b", "1abc", "a..b", "a.", "x" * 200])
def test_bad_callback_names(name: str) -> None:
    with pytest.raises(RemoteProtocolError, match='invalid "callback" parameter'):
        callback_name(request({"c": name}))


def test_missing_callback() -> None:
    with pytest.raises(RemoteProtocolError, match='"callback" parameter required'):
        callback_name(request())


def test_xhr_send_decodes_a_json_array() -> None:
    decode = SENDERS["xhr_send"].decode
    assert decode(b'["a","b"]', request()) == ["a", "b"]
    with pytest.raises(RemoteProtocolError, match="Payload expected"):
        decode(b"", request())


def test_jsonp_send_reads_forms_and_raw_bodies() -> None:
    decode = SENDERS["jsonp_send"].decode
    form = request(headers={"content-type": "application/x-www-form-urlencoded"})
    assert decode(b"d=%5B%22x%22%5D", form) == ["x"]
    assert decode(b'["%61bc"]', request(headers={"content-type": "text/plain"})) == ["%61bc"]
    for body in (b"", b"d=", b"p=p", b"\xff"):
        with pytest.raises(RemoteProtocolError, match="Payload expected"):
            decode(body, form)
    with pytest.raises(RemoteProtocolError, match="Broken JSON"):
        decode(b"d=%5B%22x", form)
    assert SENDERS["jsonp_send"].body == b"ok"
    assert SENDERS["jsonp_send"].status == 200
    assert SENDERS["xhr_send"].status == 204
