"""Close status codes (RFC 6455 §7.4) and which of them may travel in a Close frame."""

from __future__ import annotations

from enum import IntEnum
from typing import Final

__all__ = ["MAX_CLOSE_REASON", "CloseCode", "is_wire_code"]

# A control frame carries at most 125 bytes (§5.5), two of which are the code (§5.5.1).
MAX_CLOSE_REASON: Final = 123


class CloseCode(IntEnum):
    """The codes of §7.4.1 and the IANA "WebSocket Close Code Number Registry" (§11.7)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS_RECEIVED = 1005
    ABNORMAL_CLOSURE = 1006
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015


# 1004 is reserved; 1005, 1006 and 1015 only ever describe a closure locally (§7.4.1); the rest of
# 1000-2999 is unassigned; 3000-3999 are registered by libraries, 4000-4999 private (§7.4.2).
_ASSIGNED: Final = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
)


def is_wire_code(code: int) -> bool:
    """Whether `code` may appear in a Close frame."""
    return code in _ASSIGNED or 3000 <= code <= 4999
