"""Presigned media uploads: a local folder the server serves itself (the embedded default) or
an S3-compatible bucket (``IEUM_S3_BUCKET``), behind one ABC that also publishes checked
files and lists, reads and deletes a couple's stored files; and the checks of uploaded media
(``inspect``), which run in child processes.

The names below are imported on first use: a media job's child process imports this package
on its way to its own module and needs none of them (nor the settings they bring along).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ieum_chat.uploads.base import (
        CONTENT_TYPES,
        READ_CHUNK,
        THUMBNAIL_SUFFIX,
        StoredFile,
        UploadBackend,
        UploadTicket,
        content_disposition,
        content_type_of,
        parse_key,
        thumbnail_key,
    )
    from ieum_chat.uploads.factory import create_upload_backend, public_base_url
    from ieum_chat.uploads.local import LocalUploads

__all__ = [
    "CONTENT_TYPES",
    "READ_CHUNK",
    "THUMBNAIL_SUFFIX",
    "LocalUploads",
    "StoredFile",
    "UploadBackend",
    "UploadTicket",
    "content_disposition",
    "content_type_of",
    "create_upload_backend",
    "parse_key",
    "public_base_url",
    "thumbnail_key",
]

_HOMES = {name: "base" for name in __all__}
_HOMES.update(LocalUploads="local", create_upload_backend="factory", public_base_url="factory")


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
