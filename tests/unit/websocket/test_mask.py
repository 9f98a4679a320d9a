"""Unmasking (RFC 6455 §5.3): the pure-Python XOR against a byte-by-byte reference, and the C
routine the parser picks when `websockets` ships it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ieum_chat.websocket import _mask

masks = st.binary(min_size=4, max_size=4)


def reference(data: bytes, mask: bytes) -> bytes:
    return bytes(byte ^ mask[index % 4] for index, byte in enumerate(data))


@given(st.binary(max_size=1000), masks)
def test_xor_mask_matches_the_definition(data: bytes, mask: bytes) -> None:
    assert _mask.xor_mask(data, mask) == reference(data, mask)


@given(st.binary(max_size=1000), masks)
def test_unmask_matches_the_definition(data: bytes, mask: bytes) -> None:
    assert _mask.unmask(data, mask) == reference(data, mask)


def test_rfc_example() -> None:
    # §5.7: "Hello" masked with 37 fa 21 3d.
    masked = bytes.fromhex("7f9f4d5158")
    assert _mask.xor_mask(masked, bytes.fromhex("37fa213d")) == b"Hello"
    assert _mask.unmask(masked, bytes.fromhex("37fa213d")) == b"Hello"


def test_leading_and_trailing_zero_bytes_survive() -> None:
    # int.from_bytes drops nothing, but to_bytes must give back the full width.
    mask = b"\x00\x00\x00\x00"
    assert _mask.xor_mask(b"\x00\x00abc\x00", mask) == b"\x00\x00abc\x00"
    assert _mask.xor_mask(b"", b"abcd") == b""


def test_the_c_routine_is_used_when_websockets_has_it() -> None:
    from websockets.speedups import apply_mask

    assert _mask.unmask is apply_mask
