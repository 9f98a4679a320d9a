"""Logging set-up: human-readable or JSON lines, with every token and SockJS session id
redacted and no message content at any level.

Tokens can reach a log line through a query string (uvicorn logs the WebSocket request
line), an ``Authorization`` header, a CONNECT frame or an error text; the filter rewrites the
final message of every record, whatever logger produced it, after decoding the
percent-escapes a client may hide a token behind (``%74oken=``, ``%2E`` for the dots).

Message content could reach one only through the database drivers, which log statements
with their parameters (and result rows) at INFO and DEBUG: their loggers are pinned at
WARNING whatever ``IEUM_LOG_LEVEL`` says, and the parameters quoted in a driver's error (and
so in a traceback) are redacted too.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

__all__ = ["JsonFormatter", "RedactingFilter", "configure_logging", "redact"]

_PATTERNS = (
    # A JWT anywhere: three base64url parts, the first a JSON object ('{' then '"' or white
    # space, encoded: "ey" or "ew"), long enough not to be a host name.
    (
        re.compile(r"e[wy][A-Za-z0-9_=-]{8,}\.[A-Za-z0-9_=-]*\.[A-Za-z0-9_=-]*"),
        "[REDACTED]",
    ),
    (re.compile(r"(?i)(token=)[^&\s\"']+"), r"\1[REDACTED]"),
    (re.compile(r"(?i)(bearer\s+)[^\s\"',]+"), r"\1[REDACTED]"),
    (re.compile(r"(?i)(passcode[:=]\s*)[^\s\"',]+"), r"\1[REDACTED]"),
    # Statement parameters (the chat text) in a driver error that reaches a log line or a
    # traceback: SQLAlchemy's "[parameters: ...]", asyncpg's "query argument $N: ...".
    (re.compile(r"\[parameters: [^\n]*"), "[parameters: [REDACTED]]"),
    (re.compile(r"(query argument \$\d+: )[^\n]*"), r"\1[REDACTED]"),
    # The session id of a SockJS URL (…/{server}/{session}/{transport}, SockJS 0.3): it
    # addresses a live session, so it is a secret of its user like a token.
    (
        re.compile(
            r"(/[^/\s?#\"]+/[^/\s?#\"]+/)[^/\s?#\"]+"
            r"(?=/(?:xhr|xhr_send|xhr_streaming|eventsource|htmlfile|jsonp|jsonp_send|websocket)"
            r"(?:[\s?#\"]|$))"
        ),
        r"\1[REDACTED]",
    ),
)


# A percent-escape, possibly itself escaped (%252E), of an unreserved character: RFC 3986
# §6.2.2.2 makes it equal to the character, and the server decodes it so.
_ESCAPE = re.compile(r"%(?:25)*([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

# Loggers that write statements with their parameters or result rows (the chat text) below
# WARNING.
_CONTENT_LOGGERS = ("sqlalchemy.engine", "sqlalchemy.pool", "aiosqlite", "asyncpg")


def _unescape(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else match.group(0)


def redact(text: str) -> str:
    """``text`` with every token replaced by ``[REDACTED]``. Escapes of unreserved characters
    are decoded first (nothing else is: a ``%0A`` never becomes a line break in a log)."""
    if "%" in text:
        text = _ESCAPE.sub(_unescape, text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg = cleaned
            record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


# Fields a record may carry (``extra=``) that JSON lines keep as fields of their own.
_CONTEXT_FIELDS = ("session", "transport", "user", "couple", "remote")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in _CONTEXT_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                payload[key] = value
        if record.exc_text:
            payload["exc"] = record.exc_text
        return json.dumps(payload, ensure_ascii=False)


def _handler(json_lines: bool) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler


def configure_logging(*, json_lines: bool = False, level: str = "INFO") -> None:
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(_handler(json_lines))
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    for name in _CONTENT_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
