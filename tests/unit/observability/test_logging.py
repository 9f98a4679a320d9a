from __future__ import annotations

import logging

import pytest

from ieum_chat.observability.logging import RedactingFilter, redact

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    "line",
    [
        f'127.0.0.1:5000 - "WebSocket /ws/chat?token={JWT}" [accepted]',
        f"/ws/chat?x=1&token={JWT}&y=2",
        f"Authorization: Bearer {JWT}",
        f"CONNECT\npasscode:{JWT}\n",
        f"error while verifying {JWT}",
    ],
)
def test_tokens_are_redacted(line: str) -> None:
    cleaned = redact(line)
    assert JWT not in cleaned
    assert "[REDACTED]" in cleaned


def test_filter_redacts_arguments(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("ieum_chat.test_redaction")
    logger.addFilter(RedactingFilter())
    try:
        with caplog.at_level(logging.INFO, logger=logger.name):
            logger.info("handshake %s", f"/ws/chat?token={JWT}")
    finally:
        logger.filters.clear()
    assert JWT not in caplog.text
    assert "token=[REDACTED]" in caplog.text


def test_json_lines_carry_context_fields_and_stay_redacted() -> None:
    import json

    from ieum_chat.observability.logging import JsonFormatter

    record = logging.LogRecord(
        "ieum_chat.gateway", logging.INFO, __file__, 1, "session %s: token=%s", ("s1", JWT), None
    )
    record.session = "s1"
    record.transport = "websocket"
    record.user = "u-1"
    RedactingFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["session"] == "s1"
    assert line["transport"] == "websocket"
    assert line["user"] == "u-1"
    assert line["level"] == "INFO"
    assert JWT not in line["message"]
