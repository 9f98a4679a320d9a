"""The exception tree and the error codes that travel on the wire.

    ChatError                      an error a client caused; carries its wire code
    ├── AuthError                  AUTH_FAILED: missing, forged or expired token, unknown user
    │   └── AccountDeleted         ACCOUNT_DELETED: the token's user deleted their account
    ├── TokenExpired               TOKEN_EXPIRED: the session's token passed its ``exp``
    ├── Unauthorized               UNAUTHORIZED: not a member, or a forbidden destination
    ├── SendFailed                 SEND_FAILED: a message that could not be validated or stored
    │   ├── SendNotStored          ... because the database failed: retry with the same tempId
    │   └── ChangeFailed           ... a change of a sent message (edit, unsend, delete, react)
    ├── RateLimited                RATE_LIMITED
    ├── NotFound                   NOT_FOUND: no such room (REST), a dissolved couple, a message
    ├── Forbidden                  FORBIDDEN: only a message's sender may edit or unsend it
    ├── WindowExpired              WINDOW_EXPIRED: too late to unsend
    ├── BadRequest                 BAD_REQUEST (REST only): a malformed query, path or body
    ├── PayloadTooLarge            PAYLOAD_TOO_LARGE (REST only): a body or upload over its limit
    ├── UnsupportedMediaType       UNSUPPORTED_MEDIA_TYPE (REST only): an upload of a type we refuse
    ├── Conflict                   CONFLICT (REST only): done once already (a used upload URL),
    │                              a user already in a couple, a deleted account's id
    └── SignatureInvalid           SIGNATURE_INVALID (REST only): a tampered or expired upload URL
    StoreError                     the database failed (not the client's fault; REST: UNAVAILABLE)
    └── StoreUnavailable           the database could not be reached
    BrokerError                    the fan-out backend failed
    UploadStorageError             the upload storage (the local folder, the S3 bucket) failed

Driver exceptions (sqlalchemy, asyncpg, redis; botocore and the upload folder's OSError) are
translated at the backend edge with ``raise StoreError(...) from exc`` (``UploadStorageError``
for uploads) so that nothing above ``store``/``broker``/``uploads`` imports them.
"""

from __future__ import annotations

import enum
from typing import Any

import orjson

__all__ = [
    "AccountDeleted",
    "AuthError",
    "BadRequest",
    "BrokerError",
    "ChangeFailed",
    "ChatError",
    "Conflict",
    "ErrorCode",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "QuotaExceeded",
    "RateLimited",
    "SendFailed",
    "SendNotStored",
    "SignatureInvalid",
    "StoreError",
    "StoreUnavailable",
    "TokenExpired",
    "Unauthorized",
    "UnsupportedMediaType",
    "UploadStorageError",
    "WindowExpired",
    "error_body",
    "error_payload",
]


class ErrorCode(enum.StrEnum):
    AUTH_FAILED = "AUTH_FAILED"
    UNAUTHORIZED = "UNAUTHORIZED"
    SEND_FAILED = "SEND_FAILED"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    RATE_LIMITED = "RATE_LIMITED"
    NOT_FOUND = "NOT_FOUND"
    FORBIDDEN = "FORBIDDEN"
    WINDOW_EXPIRED = "WINDOW_EXPIRED"
    BAD_REQUEST = "BAD_REQUEST"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    SIGNATURE_INVALID = "SIGNATURE_INVALID"
    CONFLICT = "CONFLICT"
    # The couple's uploads of the day (IEUM_UPLOAD_DAILY_BYTES) are used up.
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    UNAVAILABLE = "UNAVAILABLE"
    SERVER_SHUTDOWN = "SERVER_SHUTDOWN"
    # STOMP ERROR frames only: the frame's `message` header is the code itself (one token,
    # which every STOMP client can parse); the JSON body says the rest.
    PROTOCOL_ERROR = "PROTOCOL_ERROR"
    FRAME_TOO_LARGE = "FRAME_TOO_LARGE"
    CONNECT_TIMEOUT = "CONNECT_TIMEOUT"
    NO_SUCH_DESTINATION = "NO_SUCH_DESTINATION"
    SLOW_CONSUMER = "SLOW_CONSUMER"
    HISTORY_UNAVAILABLE = "HISTORY_UNAVAILABLE"
    # The session's user was deleted (STOMP ERROR, then close); their tokens are refused.
    ACCOUNT_DELETED = "ACCOUNT_DELETED"
    # The couple the session is subscribed to was dissolved or deleted, or the user left it
    # (ERROR, close).
    COUPLE_DISSOLVED = "COUPLE_DISSOLVED"


# The plan's user-facing texts (Korean), kept verbatim: the Android client shows them.
DEFAULT_MESSAGES: dict[ErrorCode, str] = {
    ErrorCode.AUTH_FAILED: "인증에 실패했습니다.",
    ErrorCode.UNAUTHORIZED: "해당 채팅방에 접근 권한이 없습니다.",
    ErrorCode.SEND_FAILED: "메시지 전송에 실패했습니다.",
    ErrorCode.TOKEN_EXPIRED: "인증이 만료되었습니다. 다시 연결해 주세요.",
    ErrorCode.RATE_LIMITED: "요청이 너무 많습니다. 잠시 후 다시 시도해 주세요.",
    ErrorCode.NOT_FOUND: "찾을 수 없습니다.",
    ErrorCode.FORBIDDEN: "보낸 사람만 할 수 있습니다.",
    ErrorCode.WINDOW_EXPIRED: "보낸 지 오래되어 취소할 수 없습니다.",
    ErrorCode.BAD_REQUEST: "잘못된 요청입니다.",
    ErrorCode.PAYLOAD_TOO_LARGE: "파일이 너무 큽니다.",
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: "지원하지 않는 파일 형식입니다.",
    ErrorCode.SIGNATURE_INVALID: "업로드 주소가 만료되었거나 올바르지 않습니다.",
    ErrorCode.CONFLICT: "이미 처리된 요청입니다.",
    ErrorCode.QUOTA_EXCEEDED: "오늘 보낼 수 있는 파일 용량을 모두 사용했습니다.",
    ErrorCode.UNAVAILABLE: "일시적인 오류가 발생했습니다. 잠시 후 다시 시도해 주세요.",
    ErrorCode.SERVER_SHUTDOWN: "서버가 재시작 중입니다. 다시 연결해 주세요.",
    ErrorCode.PROTOCOL_ERROR: "잘못된 요청입니다. 다시 연결해 주세요.",
    ErrorCode.FRAME_TOO_LARGE: "메시지가 너무 큽니다.",
    ErrorCode.CONNECT_TIMEOUT: "연결 시간이 초과되었습니다. 다시 연결해 주세요.",
    ErrorCode.NO_SUCH_DESTINATION: "존재하지 않는 주소입니다.",
    ErrorCode.SLOW_CONSUMER: "연결이 너무 느립니다. 다시 연결해 주세요.",
    ErrorCode.HISTORY_UNAVAILABLE: "이전 메시지를 불러오지 못했습니다. 다시 연결해 주세요.",
    ErrorCode.ACCOUNT_DELETED: "탈퇴한 계정입니다.",
    ErrorCode.COUPLE_DISSOLVED: "커플 연결이 해제되었습니다.",
}


def error_payload(
    code: ErrorCode,
    message: str | None = None,
    *,
    temp_id: str | None = None,
    detail: str | None = None,
) -> dict[str, Any]:
    """The wire shape ``{"type":"ERROR","code":...,"message":...,"tempId"?,"detail"?}``."""
    payload: dict[str, Any] = {
        "type": "ERROR",
        "code": code.value,
        "message": message if message is not None else DEFAULT_MESSAGES[code],
    }
    if temp_id is not None:
        payload["tempId"] = temp_id
    if detail is not None:
        payload["detail"] = detail
    return payload


def error_body(
    code: ErrorCode,
    message: str | None = None,
    *,
    temp_id: str | None = None,
    detail: str | None = None,
) -> bytes:
    """:func:`error_payload` as the JSON bytes of an HTTP body or a STOMP frame."""
    return orjson.dumps(error_payload(code, message, temp_id=temp_id, detail=detail))


class ChatError(Exception):
    """An error the client caused. ``detail`` says what was wrong, in English, for developers."""

    code: ErrorCode = ErrorCode.BAD_REQUEST
    # The user-facing text, when not the code's (DEFAULT_MESSAGES).
    text: str | None = None

    def __init__(self, detail: str = "", *, temp_id: str | None = None) -> None:
        super().__init__(detail or self.code.value)
        self.detail = detail
        self.temp_id = temp_id

    def payload(self) -> dict[str, Any]:
        return error_payload(self.code, self.text, temp_id=self.temp_id, detail=self.detail or None)


class AuthError(ChatError):
    code = ErrorCode.AUTH_FAILED


class AccountDeleted(AuthError):
    code = ErrorCode.ACCOUNT_DELETED


class TokenExpired(ChatError):
    code = ErrorCode.TOKEN_EXPIRED


class Unauthorized(ChatError):
    code = ErrorCode.UNAUTHORIZED


class SendFailed(ChatError):
    code = ErrorCode.SEND_FAILED


class SendNotStored(SendFailed):
    """SEND_FAILED because the database failed, not the input: retry with the same tempId
    (REST answers 503 for it)."""


class ChangeFailed(SendFailed):
    """SEND_FAILED for a change of a sent message that could not be validated or applied:
    the same code (clients handle one), a text that does not speak of sending."""

    text = "요청을 처리하지 못했습니다."


class RateLimited(ChatError):
    code = ErrorCode.RATE_LIMITED


class NotFound(ChatError):
    code = ErrorCode.NOT_FOUND


class Forbidden(ChatError):
    code = ErrorCode.FORBIDDEN


class WindowExpired(ChatError):
    code = ErrorCode.WINDOW_EXPIRED


class BadRequest(ChatError):
    code = ErrorCode.BAD_REQUEST


class PayloadTooLarge(ChatError):
    code = ErrorCode.PAYLOAD_TOO_LARGE


class UnsupportedMediaType(ChatError):
    code = ErrorCode.UNSUPPORTED_MEDIA_TYPE


class SignatureInvalid(ChatError):
    code = ErrorCode.SIGNATURE_INVALID


class Conflict(ChatError):
    code = ErrorCode.CONFLICT


class QuotaExceeded(ChatError):
    """``retry_after``: seconds until the quota's day ends."""

    code = ErrorCode.QUOTA_EXCEEDED

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class StoreError(Exception):
    """The database failed; the operation may be retried. ``sqlstate``: the code of the
    server's error reply, when it answered with one."""

    sqlstate: str | None = None


class StoreUnavailable(StoreError):
    """The database could not be reached."""


class BrokerError(Exception):
    """The fan-out backend failed."""


class UploadStorageError(Exception):
    """The upload storage failed (a disk error, S3 refusing or unreachable); the operation
    may be retried."""
