"""Unmasking client payloads (RFC 6455 §5.3): the C routine of `websockets` when it is built,
else one XOR of two big integers, which is still linear and runs in C."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["unmask", "xor_mask"]


def xor_mask(data: bytes, mask: bytes) -> bytes:
    """`data` XOR `mask` repeated (§5.3: octet i is XORed with mask octet i MOD 4)."""
    size = len(data)
    repeated = mask * (size >> 2) + mask[: size & 3]
    return (int.from_bytes(data, "little") ^ int.from_bytes(repeated, "little")).to_bytes(
        size, "little"
    )


def _load() -> Callable[[bytes, bytes], bytes]:
    # websockets (a declared dependency) ships a C extension; a pure-Python wheel of it does not.
    # Importing it runs websockets/__init__, which costs ~60 ms once per process (it reads its
    # version through importlib.metadata) but opens nothing.
    try:
        from websockets.speedups import apply_mask
    except ImportError:
        return xor_mask
    return apply_mask


unmask: Callable[[bytes, bytes], bytes] = _load()
