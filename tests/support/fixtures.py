"""Fixtures shared by the integration and end-to-end tests: a real server process per backend
(SQLite file, PostgreSQL database), shared by a test module.

A module tunes the one ``server`` fixture with markers instead of redefining it:

- ``pytestmark = pytest.mark.server_env({"IEUM_LOG_LEVEL": "DEBUG"})``: variables merged over
  :data:`SERVER_ENV` for that module's server;
- ``pytestmark = pytest.mark.backends("sqlite")``: the module runs on those backends only (the
  items of the others are deselected at collection: they neither run nor count as skipped).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.postgres import throwaway_database
from tests.support.server import Cli, ServerProcess, free_port
from tests.support.tcp_proxy import ProxyFactory, TcpProxy, stop_proxies

__all__ = [
    "BACKENDS",
    "SERVER_ENV",
    "cli",
    "couple",
    "couple_pool",
    "database_url",
    "fake_aws",
    "http",
    "pytest_collection_modifyitems",
    "s3_server",
    "server",
    "tcp_proxy",
    "uploads_dir",
]

BACKENDS = ("sqlite", "postgresql")

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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the items of a backend their module's ``backends`` marker leaves out."""
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        marker = item.get_closest_marker("backends")
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("database_url") if callspec is not None else None
        if marker is not None and not set(marker.args) <= set(BACKENDS):
            raise pytest.UsageError(f"{item.nodeid}: backends {marker.args!r} not in {BACKENDS!r}")
        if marker is None or backend is None or backend in marker.args:
            kept.append(item)
        else:
            dropped.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'chat.db'}"
        return
    with throwaway_database() as url:
        yield url


@pytest.fixture(scope="module")
def cli(database_url: str) -> Cli:
    tool = Cli.for_database(database_url)
    tool.run("migrate")
    return tool


@pytest.fixture(scope="module")
def uploads_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the module's server keeps uploaded images (never the working directory)."""
    return tmp_path_factory.mktemp("uploads")


def server_env(node: pytest.Item | pytest.Collector) -> dict[str, str]:
    """:data:`SERVER_ENV` with the node's ``server_env`` markers over it (the closest last)."""
    env = dict(SERVER_ENV)
    for marker in reversed(list(node.iter_markers("server_env"))):
        (extra,) = marker.args
        env.update(extra)
    return env


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest,
    cli: Cli,
    uploads_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerProcess]:
    log_path: Path = tmp_path_factory.mktemp("log") / "server.log"
    env = {"IEUM_UPLOAD_DIR": str(uploads_dir), **server_env(request.node)}
    proc = ServerProcess(cli, log_path, extra_env=env).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def couple_pool(cli: Cli) -> Iterator[dict[str, str]]:
    return iter(cli.seed(60))


@pytest.fixture
async def http(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the module's server (REST, SockJS's HTTP transports)."""
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as client:
        yield client


@pytest.fixture
def couple(couple_pool: Iterator[dict[str, str]]) -> dict[str, str]:
    """A couple no other test has used: ``couple``, members ``a``/``b``, tokens ``ta``/``tb``."""
    return next(couple_pool)


@pytest.fixture(scope="module")
def tcp_proxy() -> Iterator[ProxyFactory]:
    """A factory of :class:`TcpProxy` to the given upstream ``(host, port)``; every proxy it
    made is stopped, with a deadline, when the module ends."""
    made: list[TcpProxy] = []

    def start(host: str, port: int) -> TcpProxy:
        proxy = TcpProxy(host, port)
        made.append(proxy)
        return proxy.start()

    try:
        yield start
    finally:
        stop_proxies(made)


FAKE_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
FAKE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.fixture
def fake_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """boto3's credential chain finds made-up keys in the environment and nothing else."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A real S3-protocol server (moto's, in a thread of the test process) on a free loopback
    port, for the whole session; its endpoint URL. Any credentials are accepted (fake_aws)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
