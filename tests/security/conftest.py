"""The in-process app of the REST tests (real lifespan, chat service and SQLite file behind
httpx's ASGI transport), shared here so the threat tests need no server process."""

from tests.unit.api.conftest import api, settings_overrides, template_db

__all__ = ["api", "settings_overrides", "template_db"]
