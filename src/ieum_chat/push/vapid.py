"""The server's VAPID key (RFC 8292): read once from ``IEUM_VAPID_PRIVATE_KEY``, and the public
half that browsers subscribe with (``applicationServerKey``).

The key is given as PEM (any EC P-256 private key encoding ``cryptography`` reads) or as
base64url of the raw 32-byte private scalar, the form ``web-push generate-vapid-keys`` and
most Web Push libraries print.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)

__all__ = ["b64url", "b64url_decode", "load_private_key", "public_key_b64url", "public_point"]


def b64url_decode(value: str) -> bytes:
    """base64url with or without its padding."""
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def b64url(raw: bytes) -> str:
    """base64url without padding, as Web Push writes keys."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def load_private_key(value: str) -> ec.EllipticCurvePrivateKey:
    """The P-256 private key in ``value`` (PEM, or base64url of the raw 32 bytes); ValueError
    saying what is wrong with it otherwise."""
    value = value.strip()
    if value.startswith("-----BEGIN"):
        try:
            key = load_pem_private_key(value.encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise ValueError("IEUM_VAPID_PRIVATE_KEY: unreadable PEM private key") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise ValueError("IEUM_VAPID_PRIVATE_KEY: not an EC P-256 key")
        return key
    try:
        raw = b64url_decode(value)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ValueError("IEUM_VAPID_PRIVATE_KEY: neither PEM nor base64url of 32 raw bytes")
    try:
        return ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
    except ValueError as exc:  # zero, or not below the curve's order
        raise ValueError("IEUM_VAPID_PRIVATE_KEY: not a valid P-256 private key") from exc


def public_point(key: ec.EllipticCurvePrivateKey) -> str:
    """base64url (no padding) of the key's uncompressed public point, 65 bytes starting 0x04
    (RFC 8292 §3.2): the ``applicationServerKey``, and VAPID's ``k``."""
    return b64url(key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint))


def public_key_b64url(private_key: str) -> str:
    """The ``applicationServerKey`` of the key in ``private_key``."""
    return public_point(load_private_key(private_key))
