"""The bench's ieum-chat server runs the package it is told to (installed, or a tree's src/),
in a session of its own, and its metrics are read sample by sample."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench._servers import IeumServer, database_url, read_metric, read_metrics

_SCRAPE = """# HELP ieum_messages_stored_total messages committed
# TYPE ieum_messages_stored_total counter
ieum_messages_stored_total 12.0
ieum_write_transaction_seconds_bucket{kind="messages",le="0.001"} 3.0
ieum_write_transaction_seconds_bucket{kind="messages",le="0.0025"} 9.0
ieum_write_transaction_seconds_bucket{kind="messages",le="+Inf"} 10.0
ieum_write_transaction_seconds_count{kind="messages"} 10.0
ieum_write_transaction_seconds_sum{kind="messages"} 0.02
ieum_write_transaction_seconds_bucket{kind="changes",le="0.001"} 1.0
ieum_write_transaction_seconds_count{kind="changes"} 1.0
"""


@pytest.fixture
def metrics_url() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = _SCRAPE.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_scrape_is_read_sample_by_sample(metrics_url: str) -> None:
    samples = read_metrics(metrics_url)
    assert samples["ieum_messages_stored_total"] == 12.0
    assert samples['ieum_write_transaction_seconds_count{kind="messages"}'] == 10.0
    assert read_metric(metrics_url, "ieum_messages_stored_total") == 12.0
    assert read_metric(metrics_url, "ieum_not_counted_yet_total") == 0.0


def test_a_source_tree_goes_first_on_the_servers_path(tmp_path: Path) -> None:
    server = IeumServer("sqlite", tmp_path, 1, src=Path("build/compiled"))
    assert server.env["PYTHONPATH"] == str(Path("build/compiled/src").resolve())


def test_without_one_the_server_imports_what_the_bench_does(tmp_path: Path) -> None:
    server = IeumServer("sqlite", tmp_path, 1)
    assert server.env.get("PYTHONPATH") == os.environ.get("PYTHONPATH")


def test_the_server_runs_in_a_session_of_its_own_as_a_daemon_does(tmp_path: Path) -> None:
    # Linux shares the CPU between sessions first: in the bench's session the server would
    # get one share with the generator, where RabbitMQ and PostgreSQL have one each.
    with IeumServer("sqlite", tmp_path, 1) as server:
        assert server.pid is not None
        assert os.getsid(server.pid) == server.pid
        assert os.getsid(server.pid) != os.getsid(0)


def test_a_database_url_names_the_database_on_the_admin_urls_server() -> None:
    admin = "postgresql://root@db.example:5433/postgres"
    assert database_url(admin, "ieum_bench_1") == "postgresql://root@db.example:5433/ieum_bench_1"


def test_a_database_url_keeps_the_admin_urls_query() -> None:
    # A server reached over its Unix socket: the directory is a query parameter.
    admin = "postgresql://root@/postgres?host=/var/run/postgresql"
    assert database_url(admin, "ieum_bench_1") == (
        "postgresql://root@/ieum_bench_1?host=/var/run/postgresql"
    )
