"""Logging set-up: human-readable or JSON lines, with every token redacted.

Tokens can reach a log line through a query string (uvicorn logs the WebSocket request
line), an ``Authorization`` header, a CONNECT frame or an error text; the filter rewrites the
final message of every record, whatever logger produced it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

__all__ = ["JsonFormatter", "RedactingFilter", "configure_logging", "redact"]

_PATTERNS = (
    # A JWT anywhere: three base64url parts, the first of which starts with '{"' encoded.
    (re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*"), "[REDACTED]"),
    (re.compile(r"(?i)(token=)[^&\s\"']+"), r"\1[REDACTED]"),
    (re.compile(r"(?i)(bearer\s+)[^\s\"',]+"), r"\1[REDACTED]"),
    (re.compile(r"(?i)(passcode[:=]\s*)[^\s\"',]+"), r"\1[REDACTED]"),
)


def redact(text: str) -> str:
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
