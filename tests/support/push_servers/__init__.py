"""Local push services that speak the real protocols over TLS on 127.0.0.1: FCM (with its
OAuth2 token endpoint), APNs (HTTP/2 only) and a Web Push service with the browser's side.

Each is an async context manager; ``fail`` and ``hang`` script its next answers.
"""

from ._server import Planned, TlsServer
from ._tls import TlsFiles, make_tls
from .apns import ApnsPush, ApnsServer, apns_error
from .credentials import (
    ApnsKey,
    ServiceAccountKey,
    VapidKey,
    make_vapid_key,
    write_apns_key,
    write_service_account,
)
from .fcm import FcmServer, ReceivedMessage, fcm_error
from .webpush import WebPushDelivery, WebPushServer

__all__ = [
    "ApnsKey",
    "ApnsPush",
    "ApnsServer",
    "FcmServer",
    "Planned",
    "ReceivedMessage",
    "ServiceAccountKey",
    "TlsFiles",
    "TlsServer",
    "VapidKey",
    "WebPushDelivery",
    "WebPushServer",
    "apns_error",
    "fcm_error",
    "make_tls",
    "make_vapid_key",
    "write_apns_key",
    "write_service_account",
]
