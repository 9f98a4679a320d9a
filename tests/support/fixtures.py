"""Fixtures shared by the integration and end-to-end tests: a real server process per backend
(SQLite file, PostgreSQL database), shared by a test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import create_database, drop_database, require_postgres
from tests.support.server import Cli, ServerProcess

BACKENDS = ["sqlite", "postgresql"]

SERVER_ENV = {
    # Short enough for the tests to watch them fire; the defaults are 10 s each.
    "IEUM_CONNECT_TIMEOUT": "2",
    "IEUM_HEARTBEAT_MS": "[1000,1000]",
    "IEUM_TYPING_INTERVAL": "1.0",
    "IEUM_IMAGE_HOSTS": "cdn.example",  # test_stomp_chat's IMAGE messages point there
    # Tests pipeline bursts of SENDs; the per-user limits have tests of their own.
    "IEUM_MESSAGE_RATE": "1000",
    "IEUM_MESSAGE_BURST": "1000",
}


@pytest.fixture(scope="module", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'chat.db'}"
        return
    require_postgres()
    url = create_database()
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture(scope="module")
def cli(database_url: str) -> Cli:
    tool = Cli.for_database(database_url)
    tool.run("migrate")
    return tool


@pytest.fixture(scope="module")
def server(cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log_path: Path = tmp_path_factory.mktemp("log") / "server.log"
    proc = ServerProcess(cli, log_path, extra_env=SERVER_ENV).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def couple_pool(cli: Cli) -> Iterator[dict[str, str]]:
    return iter(cli.seed(60))


@pytest.fixture
def couple(couple_pool: Iterator[dict[str, str]]) -> dict[str, str]:
    """A couple no other test has used: ``couple``, members ``a``/``b``, tokens ``ta``/``tb``."""
    return next(couple_pool)
