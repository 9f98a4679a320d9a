"""Settings, read from ``IEUM_*`` environment variables (and ``serve`` flags)."""

from __future__ import annotations

from functools import cached_property
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["DEV_JWT_SECRET", "Settings"]

# Used only when IEUM_JWT_SECRET is unset; `serve` warns loudly about it.
DEV_JWT_SECRET = "ieum-chat-dev-secret-change-me-0123456789abcdef"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IEUM_", extra="ignore", frozen=True)

    database_url: str = "sqlite:///./ieum-chat.db"
    redis_url: str | None = None

    jwt_secret: str = DEV_JWT_SECRET
    jwt_algorithms: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["HS256"])
    jwt_public_key: str | None = None
    jwt_jwks_url: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_leeway: float = 0.0

    timezone: str = "UTC"
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["*"])

    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = None

    # STOMP
    max_frame_size: int = 65536
    heartbeat_ms: tuple[int, int] = (10000, 10000)
    connect_timeout: float = 10.0
    max_subscriptions: int = 64
    outbound_queue_frames: int = 1024

    # chat
    max_text_length: int = 4000
    typing_interval: float = 1.0
    write_queue: int = 10000

    log_json: bool = False
    log_level: str = "INFO"

    @field_validator("jwt_algorithms", "allowed_origins", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str) and not value.lstrip().startswith("["):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("jwt_algorithms")
    @classmethod
    def _no_none_algorithm(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("IEUM_JWT_ALGORITHMS must name at least one algorithm")
        if any(alg.lower() == "none" for alg in value):
            raise ValueError("the 'none' JWT algorithm is never accepted")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def uses_dev_secret(self) -> bool:
        return (
            self.jwt_secret == DEV_JWT_SECRET
            and self.jwt_public_key is None
            and self.jwt_jwks_url is None
        )
