"""REST routes over the chat service and the store: room, history, send, read marks, changes
of sent messages (edit, unsend, delete for me, reactions), uploads, the export, push devices
and settings.

Thin FastAPI routes: validation, idempotency, ordering and broadcast live in
:mod:`ieum_chat.chat`; :func:`install_api` adds the routes, the error handlers that give every
error the contract's JSON shape, and the OpenAPI document at ``/openapi.json``.
"""

from __future__ import annotations

from fastapi import FastAPI

from ieum_chat.api.admin import build_admin_router
from ieum_chat.api.changes import build_changes_router
from ieum_chat.api.devices import build_devices_router
from ieum_chat.api.errors import install_error_handlers
from ieum_chat.api.export import build_export_router
from ieum_chat.api.openapi import install_openapi
from ieum_chat.api.rooms import build_rooms_router
from ieum_chat.api.uploads import build_uploads_router
from ieum_chat.config import Settings

__all__ = ["install_api"]


def install_api(app: FastAPI, settings: Settings) -> None:
    app.include_router(build_rooms_router(settings))
    app.include_router(build_changes_router(settings))
    app.include_router(build_uploads_router(settings))
    app.include_router(build_export_router())
    app.include_router(build_devices_router(settings))
    app.include_router(build_admin_router(settings))
    install_error_handlers(app)
    install_openapi(app)
