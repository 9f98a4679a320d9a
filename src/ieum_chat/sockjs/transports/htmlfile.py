"""The ``htmlfile`` transport (SockJS 0.3, "HtmlFile"): a never-ending HTML page whose
script tags call ``p(frame)`` in the parent window, for old Internet Explorers."""

from __future__ import annotations

from typing import Final

from .._framing import Frame, encode_json
from ._spec import ReceiverSpec

__all__ = ["HTMLFILE"]

_HEAD: Final = """<!doctype html>
<html><head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
</head><body><h2>Don't panic!</h2>
  <script>
    document.domain = document.domain;
    var c = parent.{callback};
    c.start();
    function p(d) {{c.message(d);}};
    window.onload = function() {{c.stop();}};
  </script>"""


def _prelude(callback: str | None) -> bytes:
    assert callback is not None
    head = _HEAD.format(callback=callback)
    # Internet Explorer renders nothing of a page before its first KiB.
    return (head + " " * max(0, 1024 - len(head)) + "\r\n\r\n").encode()


def _wrap(frame: Frame, callback: str | None) -> bytes:
    # `<`, `>` and `&` escaped so a message can never close the script element.
    text = encode_json(frame.data)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f"<script>\np({text});\n</script>\r\n".encode()


HTMLFILE: Final = ReceiverSpec(
    name="htmlfile",
    method="GET",
    content_type="text/html; charset=UTF-8",
    streaming=True,
    wrap=_wrap,
    prelude=_prelude,
    needs_callback=True,
)
