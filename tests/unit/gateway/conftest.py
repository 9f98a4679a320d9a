"""A fresh gateway world per test (see harness.py); a module overrides ``world_settings``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.gateway.harness import World, template_database, world


@pytest.fixture(scope="session")
def gateway_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return template_database(tmp_path_factory.mktemp("gateway-template"))


@pytest.fixture
def world_settings() -> dict[str, Any]:
    return {}


@pytest.fixture
async def w(
    tmp_path: Path, gateway_template: Path, world_settings: dict[str, Any]
) -> AsyncIterator[World]:
    async with world(tmp_path, gateway_template, **world_settings) as made:
        yield made
