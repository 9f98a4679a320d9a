"""Header name/value escaping per version (STOMP 1.2 "Value Encoding", STOMP 1.1 "Value Encoding").

1.0 has no escaping, so a value holding LF or CR cannot be written at all; 1.1 escapes `\\`, LF
and `:`; 1.2 adds CR. CONNECT, STOMP and CONNECTED frames are never escaped in any version.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from ._errors import LocalProtocolError, RemoteProtocolError

__all__ = ["NAME_ESCAPERS", "RAW_NAME", "RAW_VALUE", "UNESCAPERS", "VALUE_ESCAPERS"]

Escaper = Callable[[str], str]

_ESCAPE_SEQUENCE: Final = re.compile(r"\\(.?)", re.DOTALL)
_UNESCAPE_11: Final = {"\\": "\\", "n": "\n", "c": ":"}
_UNESCAPE_12: Final = {**_UNESCAPE_11, "r": "\r"}


def _unescaper(table: dict[str, str]) -> Escaper:
    def replace(match: re.Match[str]) -> str:
        try:
            return table[match.group(1)]
        except KeyError:
            # "Undefined escape sequences such as \t MUST be treated as a fatal protocol error."
            raise RemoteProtocolError("invalid escape sequence in a header") from None

    def unescape(text: str) -> str:
        return _ESCAPE_SEQUENCE.sub(replace, text)

    return unescape


# None: the version has no escaping, the text is taken as it is.
UNESCAPERS: Final[dict[str, Escaper | None]] = {
    "1.0": None,
    "1.1": _unescaper(_UNESCAPE_11),
    "1.2": _unescaper(_UNESCAPE_12),
}


def _no_nul(text: str) -> str:
    if "\0" in text:
        raise LocalProtocolError("a header cannot hold a NUL character")
    return text


def _raw_value(text: str) -> str:
    if "\n" in text or "\r" in text or "\0" in text:
        raise LocalProtocolError("this header cannot hold CR, LF or NUL without escaping")
    return text


def _raw_name(text: str) -> str:
    if not text or ":" in text:
        raise LocalProtocolError("a header name must be non-empty and hold no ':' here")
    return _raw_value(text)


def _escape_11(text: str) -> str:
    if "\\" in text or "\n" in text or ":" in text:
        text = text.replace("\\", "\\\\").replace("\n", "\\n").replace(":", "\\c")
    if "\r" in text:
        raise LocalProtocolError("STOMP 1.1 has no escape for CR in a header")
    return _no_nul(text)


def _escape_12(text: str) -> str:
    if "\\" in text or "\n" in text or ":" in text or "\r" in text or "\0" in text:
        text = _no_nul(text)
        text = text.replace("\\", "\\\\").replace("\n", "\\n").replace(":", "\\c")
        text = text.replace("\r", "\\r")
    return text


def _named(escape: Escaper) -> Escaper:
    def escape_name(text: str) -> str:
        if not text:
            raise LocalProtocolError("a header name must be non-empty")
        return escape(text)

    return escape_name


RAW_VALUE: Final[Escaper] = _raw_value
RAW_NAME: Final[Escaper] = _raw_name
VALUE_ESCAPERS: Final[dict[str, Escaper]] = {
    "1.0": _raw_value,
    "1.1": _escape_11,
    "1.2": _escape_12,
}
NAME_ESCAPERS: Final[dict[str, Escaper]] = {
    "1.0": _raw_name,
    "1.1": _named(_escape_11),
    "1.2": _named(_escape_12),
}
