from __future__ import annotations

import pytest

from ieum_chat.config import Settings


def test_defaults_match_the_contract() -> None:
    s = Settings()
    assert s.database_url == "sqlite:///./ieum-chat.db"
    assert s.redis_url is None
    assert s.jwt_algorithms == ["HS256"]
    assert s.timezone == "UTC"
    assert s.uses_dev_secret


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IEUM_JWT_ALGORITHMS", "HS256, HS384")
    monkeypatch.setenv("IEUM_TIMEZONE", "Asia/Seoul")
    monkeypatch.setenv("IEUM_JWT_SECRET", "x" * 40)
    s = Settings()
    assert s.jwt_algorithms == ["HS256", "HS384"]
    assert str(s.zone) == "Asia/Seoul"
    assert not s.uses_dev_secret


@pytest.mark.parametrize("algs", ["none", "HS256,none", "NONE", ""])
def test_none_algorithm_is_refused(monkeypatch: pytest.MonkeyPatch, algs: str) -> None:
    monkeypatch.setenv("IEUM_JWT_ALGORITHMS", algs)
    with pytest.raises(ValueError, match="algorithm"):
        Settings()


def test_unknown_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        Settings(timezone="Mars/Olympus")
