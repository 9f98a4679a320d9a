"""The service API's keys: every configured entry is a key as a whole (the contract), a
``name:secret`` entry is also accepted as its secret and named in the audit log, and a short
key works with a warning."""

from __future__ import annotations

import logging

import pytest

from ieum_chat.api.admin import AdminKeys

LONG = "s" * 24


def test_whole_entries_and_named_secrets_match() -> None:
    keys = AdminKeys([f"backend:{LONG}", "x" * 20, "not a name:" + LONG + "2"])
    assert keys.match(f"backend:{LONG}") == "backend"
    assert keys.match(LONG) == "backend"
    assert keys.match("x" * 20) == "key2"
    assert keys.match("not a name:" + LONG + "2") == "key3"  # a space: no name
    assert keys.match(LONG + "2") is None
    for wrong in ("", LONG[:-1], LONG + "s", "backend", "backend:", "X" * 20):
        assert keys.match(wrong) is None, wrong


def test_no_keys_and_short_keys(caplog: pytest.LogCaptureFixture) -> None:
    assert not AdminKeys([])
    with caplog.at_level(logging.WARNING, logger="ieum_chat.api.admin"):
        short = AdminKeys(["admin:secret"])
    assert short.match("admin:secret") == "admin"
    assert short.match("secret") == "admin"
    assert "key admin is shorter than 16 characters" in caplog.text
    assert "secret" not in caplog.text  # the key itself is never logged
