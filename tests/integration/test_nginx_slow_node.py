"""The shipped nginx config in a reconnect storm: the last live node is slow to accept (its
listen queue full while it sets sessions up), and must not be taken out of the upstream for
it. If a connect timeout counted as a failure, nginx would skip that node for
``fail_timeout``; with the other node dead, that is every node, and every reconnect in the
meantime would get 502 "no live upstreams" instead of reaching the one node that can serve.

The slow node here is a plain listening socket whose accept queue the test fills (so the
kernel drops nginx's SYNs and its connect times out, as it does for a node behind on its
accepts), which then starts answering. The dead node is a port nothing listens on."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.nginx import NginxProcess
from tests.support.server import free_port

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nalive"


class SlowNode:
    """A listener with a full accept queue until :meth:`recover`, then an HTTP server that
    answers every request with 200."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port: int = self.sock.getsockname()[1]
        # Fill the accept queue (a backlog of 0 holds one connection); nothing is accepted
        # until recover(), so the kernel drops every further SYN.
        self._fillers = [socket.create_connection(("127.0.0.1", self.port), timeout=5)]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._recovered = threading.Event()
        self.served = 0

    def recover(self) -> None:
        self._recovered.set()
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while self._recovered.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    request = conn.recv(65536)
                except OSError:
                    continue
                if request:  # the fillers send nothing: they are not requests
                    self.served += 1
                    conn.sendall(ANSWER)

    def close(self) -> None:
        self._recovered.clear()
        for filler in self._fillers:
            filler.close()
        self.sock.close()


@pytest.fixture
def slow_node() -> Iterator[SlowNode]:
    node = SlowNode()
    yield node
    node.close()


def status_of(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def test_a_node_slow_to_accept_is_not_taken_out_of_the_upstream(
    slow_node: SlowNode, tmp_path: Path
) -> None:
    dead = free_port()
    nginx = NginxProcess([dead, slow_node.port], tmp_path).start()
    try:
        url = nginx.http_url + "/readyz"
        started = time.monotonic()
        status, _ = status_of(url)  # the dead node refuses; the slow one times out
        waited = time.monotonic() - started
        assert status in (502, 504), status
        assert waited >= 4, f"nginx answered after {waited:.1f} s, before its connect timeout"
        assert "timed out" in nginx.error_log.read_text()

        slow_node.recover()
        for _ in range(3):  # round robin would try the dead node first half the time
            status, body = status_of(url)
            assert (status, body) == (200, "alive"), nginx.error_log.read_text()[-2000:]
        assert slow_node.served == 3
        assert "no live upstreams" not in nginx.error_log.read_text()
    finally:
        nginx.stop()
