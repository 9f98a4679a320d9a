"""The JSONP transports: ``jsonp`` (polling) and ``jsonp_send`` (SockJS 0.3, "JsonPolling").

The ``/**/`` before the callback keeps a response from being read as a Flash policy file
(the Rosetta Flash attack)."""

from __future__ import annotations

from typing import Final
from urllib.parse import parse_qsl

from .._errors import RemoteProtocolError
from .._framing import PAYLOAD_EXPECTED, Frame, decode_messages, encode_json
from .._http import Request
from ._spec import ReceiverSpec, SenderSpec

__all__ = ["JSONP_POLLING", "JSONP_SEND"]


def _wrap(frame: Frame, callback: str | None) -> bytes:
    return f"/**/{callback}({encode_json(frame.data)});\r\n".encode()


def _decode(body: bytes, request: Request) -> list[str]:
    """A form post (``d=<json>``, what sockjs-client's hidden form sends) or a raw body."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() == "application/x-www-form-urlencoded":
        try:
            form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            raise RemoteProtocolError(PAYLOAD_EXPECTED) from None
        data = form.get("d", "")
        if not data:
            raise RemoteProtocolError(PAYLOAD_EXPECTED)
        return decode_messages(data)
    return decode_messages(body)


JSONP_POLLING: Final = ReceiverSpec(
    name="jsonp-polling",
    method="GET",
    content_type="application/javascript; charset=UTF-8",
    streaming=False,
    wrap=_wrap,
    needs_callback=True,
)

# A 204 confuses Konqueror: the answer is a plain "ok" (SockJS 0.3, JsonPolling).
JSONP_SEND: Final = SenderSpec(method="POST", decode=_decode, status=200, body=b"ok")
