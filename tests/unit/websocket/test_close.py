"""Close codes (RFC 6455 §7.4): which may travel in a Close frame."""

from __future__ import annotations

import pytest

from ieum_chat.websocket import CloseCode
from ieum_chat.websocket._close import MAX_CLOSE_REASON, is_wire_code


def test_codes_of_the_rfc() -> None:
    assert CloseCode.NORMAL.value == 1000
    assert CloseCode.GOING_AWAY.value == 1001
    assert CloseCode.PROTOCOL_ERROR.value == 1002
    assert CloseCode.UNSUPPORTED_DATA.value == 1003
    assert CloseCode.INVALID_DATA.value == 1007
    assert CloseCode.POLICY_VIOLATION.value == 1008
    assert CloseCode.MESSAGE_TOO_BIG.value == 1009
    assert CloseCode.INTERNAL_ERROR.value == 1011
    assert MAX_CLOSE_REASON == 123


@pytest.mark.parametrize("code", list(CloseCode))
def test_local_only_codes_are_not_wire_codes(code: CloseCode) -> None:
    # §7.4.1: 1005, 1006 and 1015 "MUST NOT be set as a status code in a Close control frame".
    local_only = {1005, 1006, 1015}
    assert is_wire_code(code) is (code not in local_only)


def test_every_code_from_0_to_65535() -> None:
    wire = {code for code in range(65536) if is_wire_code(code)}
    registered = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
    assert wire == registered | set(range(3000, 5000))
