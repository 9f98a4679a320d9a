"""Fresh provider credentials written the way the real consoles hand them out: a Google
service account's JSON key, an APNs .p8 key, a VAPID key pair. Each comes with the Settings
keyword arguments that turn its provider on, and with the public half a server verifies with.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

__all__ = [
    "ApnsKey",
    "ServiceAccountKey",
    "VapidKey",
    "make_vapid_key",
    "write_apns_key",
    "write_service_account",
]


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _pkcs8(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


@dataclass(frozen=True, slots=True)
class ServiceAccountKey:
    path: str
    project_id: str
    client_email: str
    token_uri: str
    public_key: rsa.RSAPublicKey

    def settings(self) -> dict[str, Any]:
        return {"fcm_credentials": self.path}


def write_service_account(
    directory: Path, token_uri: str, *, project_id: str = "ieum-test"
) -> ServiceAccountKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    email = f"push-{secrets.token_hex(3)}@{project_id}.iam.gserviceaccount.com"
    info = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": _pkcs8(key),
        "client_email": email,
        "client_id": str(secrets.randbelow(10**20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "universe_domain": "googleapis.com",
    }
    path = directory / f"{project_id}-service-account.json"
    path.write_text(json.dumps(info, indent=2))
    return ServiceAccountKey(str(path), project_id, email, token_uri, key.public_key())


@dataclass(frozen=True, slots=True)
class ApnsKey:
    path: str
    key_id: str
    team_id: str
    topic: str
    public_key: ec.EllipticCurvePublicKey

    def settings(self) -> dict[str, Any]:
        return {
            "apns_key_file": self.path,
            "apns_key_id": self.key_id,
            "apns_team_id": self.team_id,
            "apns_topic": self.topic,
        }


def write_apns_key(
    directory: Path, *, team_id: str = "TEAM123456", topic: str = "com.example.ieum"
) -> ApnsKey:
    key = ec.generate_private_key(ec.SECP256R1())
    key_id = secrets.token_hex(5).upper()  # Apple's key ids are 10 characters
    path = directory / f"AuthKey_{key_id}.p8"
    path.write_text(_pkcs8(key))
    return ApnsKey(str(path), key_id, team_id, topic, key.public_key())


@dataclass(frozen=True, slots=True)
class VapidKey:
    private_raw: str  # base64url of the 32-byte scalar
    private_pem: str
    public_b64url: str  # the applicationServerKey, an uncompressed point

    def settings(self, *, pem: bool = False, subject: str = "mailto:ops@example.com") -> dict[str, Any]:
        return {
            "vapid_private_key": self.private_pem if pem else self.private_raw,
            "vapid_subject": subject,
        }


def make_vapid_key() -> VapidKey:
    key = ec.generate_private_key(ec.SECP256R1())
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    raw = key.private_numbers().private_value.to_bytes(32, "big")
    return VapidKey(b64url(raw), _pkcs8(key), b64url(point))
