"""Settings, read from ``IEUM_*`` environment variables (and ``serve`` flags)."""

from __future__ import annotations

from functools import cached_property
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ieum_chat.media_types import CONTENT_TYPES, Kind, normalize

__all__ = ["DEV_JWT_SECRET", "Settings"]

# Used only when IEUM_JWT_SECRET is unset; `serve` warns loudly about it.
DEV_JWT_SECRET = "ieum-chat-dev-secret-change-me-0123456789abcdef"

MiB = 1024 * 1024
DEFAULT_MAX_BYTES: dict[Kind, int] = {
    Kind.IMAGE: 10 * MiB,
    Kind.AUDIO: 20 * MiB,
    Kind.VIDEO: 100 * MiB,
    Kind.FILE: 50 * MiB,
}
_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": MiB, "mb": MiB, "mib": MiB}
_UNITS |= {"g": 1024 * MiB, "gb": 1024 * MiB, "gib": 1024 * MiB}


def _byte_count(text: str) -> int:
    """``123``, ``10MiB``, ``1.5g``: a positive number of bytes (binary units)."""
    number = text.strip().lower()
    unit = number.lstrip("0123456789.")
    digits = number[: len(number) - len(unit)]
    if not digits or unit.strip() not in _UNITS:
        raise ValueError(f"{text!r} is not a size (a number of bytes, or like 10MiB)")
    count = int(float(digits) * _UNITS[unit.strip()])
    if count < 1:
        raise ValueError(f"{text!r} is not a positive size")
    return count


def _scheme(url: str) -> str:
    return url.strip().partition("://")[0].lower()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IEUM_", extra="ignore", frozen=True)

    database_url: str = "sqlite:///./ieum-chat.db"
    # a PostgreSQL streaming replica of a PostgreSQL database_url: history and resume reads go
    # there when it has replayed far enough, else to the primary (README "A read replica")
    database_replica_url: str | None = None
    redis_url: str | None = None  # redis://, rediss://, redis+cluster://: shared fan-out, presence
    redis_prefix: str = "ieum:"  # of every Redis key and channel (several deployments, one Redis)
    presence_ttl: float = Field(default=15.0, gt=0)  # seconds a dead node's sessions stay online

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
    # processes serving host:port under a supervisor (SO_REUSEPORT); more than one needs Redis
    workers: int = Field(default=1, ge=1, le=64)

    # STOMP
    max_frame_size: int = 65536
    heartbeat_ms: tuple[int, int] = (10000, 10000)
    connect_timeout: float = 10.0
    max_subscriptions: int = 64
    # Per WebSocket: every byte the server has produced for the peer and the peer has not yet
    # taken (messages, Pongs, Close); past it the socket stops being read, a STOMP session is
    # closed as a slow consumer.
    outbound_buffer_bytes: int = Field(default=1024 * 1024, ge=65536)

    # SockJS 0.3 fallback under /ws/chat (the SockJS reference server's defaults)
    sockjs_heartbeat: float = Field(default=25.0, gt=0)  # seconds between `h` frames
    sockjs_disconnect_delay: float = Field(default=5.0, gt=0)  # seconds a detached session lives
    sockjs_response_limit: int = Field(default=128 * 1024, gt=0)  # bytes per streaming response
    sockjs_cookie_needed: bool = False  # JSESSIONID cookie, for sticky load balancers
    sockjs_client_url: str = "https://cdn.jsdelivr.net/npm/sockjs-client@1/dist/sockjs.min.js"

    # chat
    max_text_length: int = 4000
    typing_interval: float = 1.0
    write_queue: int = 10000
    write_concurrency: int = Field(default=1, ge=1, le=16)  # group commits in flight
    unsend_window: float = Field(default=86400.0, ge=0)  # seconds a sender may unsend a message

    # images and uploads: IMAGE messages must name a file uploaded here, or one on these hosts
    # (comma-separated host names, "*.example.com" for subdomains, "*" for any host)
    image_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    upload_dir: str = "./uploads"
    upload_secret: str | None = None  # HMAC key of local upload URLs; derived from the JWT secret
    # the largest upload of each kind: one size for every kind ("10485760"), or
    # "image=10MiB,audio=20MiB,video=100MiB,file=50MiB" (kinds left out keep these defaults)
    upload_max_bytes: Annotated[dict[Kind, int], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_MAX_BYTES)
    )
    # the content types accepted (comma-separated; default every type the server can check)
    upload_content_types: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(CONTENT_TYPES)
    )
    upload_daily_bytes: int = Field(default=1024**3, gt=0)  # per couple per day (IEUM_TIMEZONE)
    # seconds a presigned upload URL stays valid; an upload no message names by then is deleted
    upload_ttl: int = Field(default=3600, gt=0)
    # media checks and thumbnails run in a child process with these limits (killed past them)
    media_timeout: float = Field(default=20.0, gt=0)  # seconds of wall time per job
    media_memory_bytes: int = Field(default=768 * 1024 * 1024, ge=64 * 1024 * 1024)
    media_max_pixels: int = Field(default=89_478_485, gt=0)  # Pillow's decompression-bomb limit
    ffmpeg: str = "ffmpeg"  # the ffmpeg and ffprobe programs (from the OS's packages)
    ffprobe: str = "ffprobe"
    s3_bucket: str | None = None  # set: presigned S3 uploads (pip install 'ieum-chat[s3]')
    s3_region: str | None = None
    s3_endpoint_url: str | None = None  # S3-compatible stores (MinIO, R2, ...)
    s3_public_url: str | None = None  # base URL images are served from (a CDN); default: bucket

    # the service API (/admin/v1) of the app's backend: comma-separated keys, each
    # "name:key" (the name is what the audit log shows) or a bare key (named key1, key2...)
    admin_api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list, repr=False)
    # days a dissolved couple's messages and uploads (and a deleted account) are kept
    dissolved_retention_days: float = Field(default=30.0, ge=0)
    purge_interval: float = Field(default=86400.0, ge=0)  # seconds between purges; 0: never

    # push notifications: a provider is on when its settings are (FCM: the service account's
    # JSON file; APNs: the .p8 key, its id, the team and the app's topic; Web Push: the VAPID
    # private key, PEM or base64url of the raw 32 bytes, and a mailto: or https: subject)
    fcm_credentials: str | None = None
    fcm_endpoint: str = "https://fcm.googleapis.com"
    apns_key_file: str | None = None
    apns_key_id: str | None = None
    apns_team_id: str | None = None
    apns_topic: str | None = None
    apns_endpoint: str = "https://api.push.apple.com"
    vapid_private_key: str | None = Field(default=None, repr=False)
    vapid_subject: str | None = None
    # Web Push endpoints on private, loopback or link-local addresses (refused by default: a
    # subscription must not make the server call into its own network)
    push_allow_private: bool = False
    # extra CA certificates (PEM) trusted when calling providers and the webhook receiver
    push_ca_file: str | None = None
    push_timeout: float = Field(default=10.0, gt=0)  # seconds per provider request
    push_concurrency: int = Field(default=32, ge=1, le=1024)  # requests in flight per provider
    # webhooks: every change POSTed, signed with the secret, to the app's backend
    webhook_url: str | None = None
    webhook_secret: str | None = Field(default=None, repr=False)
    # the longest wait between two tries of a delivery (back-off doubles up to it; a
    # provider's Retry-After is honoured up to an hour)
    delivery_retry_max: float = Field(default=60.0, gt=0)

    # per-user limits (every device of the user together, on this node)
    max_sessions_per_user: int = 10
    message_rate: float = 20.0
    message_burst: int = 40
    control_rate: float = 10.0
    control_burst: int = 20

    # new sessions this node admits per second (WebSocket handshakes and SockJS sessions
    # together), in bursts of up to admission_burst: a reconnect storm (a node died, its
    # clients all come here) is spread out instead of stampeding the database with
    # authentications and replays; the excess is refused 503 UNAVAILABLE with Retry-After
    admission_rate: float = Field(default=500.0, gt=0)
    admission_burst: int = Field(default=1000, ge=1)
    # ... and none while this many CONNECTs and SUBSCRIBEs are being handled: the node is
    # behind (its database is), and a new session would wait past its client's patience
    admission_backlog: int = Field(default=256, ge=1)

    shutdown_grace: float = 10.0

    log_json: bool = False
    log_level: str = "INFO"

    @field_validator(
        "jwt_algorithms", "allowed_origins", "image_hosts", "admin_api_keys", mode="before"
    )
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str) and not value.lstrip().startswith("["):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("upload_max_bytes", mode="before")
    @classmethod
    def _max_bytes_per_kind(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            return value
        if "=" not in value:  # one size for every kind
            size = _byte_count(value)
            return dict.fromkeys(Kind, size)
        sizes = dict(DEFAULT_MAX_BYTES)
        for part in filter(None, (p.strip() for p in value.split(","))):
            name, _, size_text = part.partition("=")
            try:
                kind = Kind(name.strip().upper())
            except ValueError:
                raise ValueError(
                    f"IEUM_UPLOAD_MAX_BYTES: {name.strip()!r} is not one of image, audio, "
                    "video, file"
                ) from None
            sizes[kind] = _byte_count(size_text)
        return sizes

    @field_validator("upload_content_types", mode="before")
    @classmethod
    def _known_content_types(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        if not isinstance(value, list):
            return value
        types = list(dict.fromkeys(normalize(str(v)) for v in value))
        unknown = [t for t in types if t not in CONTENT_TYPES]
        if unknown:
            raise ValueError(
                f"IEUM_UPLOAD_CONTENT_TYPES: the server cannot check {', '.join(unknown)}; "
                f"it knows {', '.join(CONTENT_TYPES)}"
            )
        if not types:
            raise ValueError("IEUM_UPLOAD_CONTENT_TYPES must name at least one type")
        return types

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

    @model_validator(mode="after")
    def _replica_of_postgres(self) -> Settings:
        if self.database_replica_url is None:
            return self
        if _scheme(self.database_url).startswith("sqlite"):
            raise ValueError(
                "IEUM_DATABASE_REPLICA_URL needs a PostgreSQL primary, but IEUM_DATABASE_URL "
                "is SQLite (which has no streaming replicas): unset IEUM_DATABASE_REPLICA_URL"
            )
        if not _scheme(self.database_replica_url).startswith("postgres"):
            raise ValueError(
                "IEUM_DATABASE_REPLICA_URL must name a PostgreSQL streaming replica of the "
                "primary: postgresql://user@host/dbname"
            )
        return self

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
