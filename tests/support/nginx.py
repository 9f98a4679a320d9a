"""Real nginx (the Debian package) in front of test servers, configured with the shipped
``deploy/nginx/ieum-chat.conf``.

Only what must differ on a test machine is replaced in the shipped file: the upstream server
addresses (their parameters are kept), the listen address and the log paths. Each
replacement must match exactly as often as expected, so a reshaped config fails loudly here
instead of being tested half. nginx runs in the foreground as a subprocess with its prefix,
pid file, logs and temp files in a temporary directory.

When nginx is not installed, tests that need it are skipped on a developer's machine and
FAIL when ``CI`` is set (``.ci/run`` installs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.postgres import throwaway_database
from tests.support.redis import REDIS_URL, delete_prefix, require_redis, unique_prefix
from tests.support.server import Cli, ServerProcess, free_port
from tests.support.stomp_client import StompTestClient

__all__ = [
    "SHIPPED_CONFIG",
    "Cluster",
    "NginxProcess",
    "render_site",
    "require_nginx",
    "running_cluster",
]

SHIPPED_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "ieum-chat.conf"

_UPSTREAM = re.compile(r"(?ms)^(upstream ieum_chat \{\n)(.*?)(^\})")
_UPSTREAM_SERVER = re.compile(r"(?m)^(\s*)server \S+(.*);$")
_LISTEN = re.compile(r"(?m)^(\s*)listen 80;$")
_LOG_DIR = "/var/log/nginx/"


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def require_nginx() -> str:
    binary = nginx_binary()
    if binary is None:
        reason = "nginx is not installed (apt-get install nginx)"
        if os.environ.get("CI"):
            pytest.fail(f"nginx is required on CI: {reason}")
        pytest.skip(reason)
    return binary


def render_site(shipped: str, *, upstreams: Sequence[int], listen_port: int, log_dir: Path) -> str:
    """The shipped site config with test addresses; everything else verbatim."""
    block = _UPSTREAM.search(shipped)
    assert block is not None, "deploy/nginx/ieum-chat.conf has no 'upstream ieum_chat {' block"
    servers = _UPSTREAM_SERVER.findall(block.group(2))
    assert servers, "the upstream block lists no server"
    indent, params = servers[0]
    body = _UPSTREAM_SERVER.sub("", block.group(2))
    body = re.sub(r"\n{2,}", "\n", body)
    body += "".join(f"{indent}server 127.0.0.1:{port}{params};\n" for port in upstreams)
    site = shipped[: block.start(2)] + body + shipped[block.end(2) :]
    site, listens = _LISTEN.subn(rf"\g<1>listen 127.0.0.1:{listen_port};", site)
    assert listens == 1, f"expected one 'listen 80;', found {listens}"
    logs = site.count(_LOG_DIR)
    assert logs == 2, f"expected the access and error log under {_LOG_DIR}, found {logs}"
    return site.replace(_LOG_DIR, f"{log_dir}/")


class NginxProcess:
    def __init__(self, upstreams: Sequence[int], workdir: Path) -> None:
        self.binary = require_nginx()
        self.upstreams = list(upstreams)
        self.dir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/chat"

    @property
    def access_log(self) -> Path:
        return self.dir / "logs" / "ieum-chat.access.log"

    @property
    def error_log(self) -> Path:
        return self.dir / "logs" / "ieum-chat.error.log"

    def write_config(self) -> Path:
        logs, temp = self.dir / "logs", self.dir / "temp"
        logs.mkdir(parents=True, exist_ok=True)
        temp.mkdir(parents=True, exist_ok=True)
        site = render_site(
            SHIPPED_CONFIG.read_text(),
            upstreams=self.upstreams,
            listen_port=self.port,
            log_dir=logs,
        )
        (self.dir / "ieum-chat.conf").write_text(site)
        # As root the workers would drop to "nobody", who cannot enter pytest's 0700 temp dirs.
        user = "user root;\n" if os.geteuid() == 0 else ""
        temp_paths = "".join(
            f"    {kind}_temp_path {temp}/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        main = self.dir / "nginx.conf"
        main.write_text(
            f"{user}worker_processes 1;\n"
            f"error_log {logs}/error.log info;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            f"{temp_paths}"
            f"    include {self.dir}/ieum-chat.conf;\n"
            "}\n"
        )
        return main

    def start(self) -> NginxProcess:
        main = self.write_config()
        self._out = (self.dir / "logs" / "stderr.log").open("ab")
        self.proc = subprocess.Popen(
            [
                self.binary,
                "-p",
                str(self.dir),
                "-e",
                str(self.dir / "logs" / "error.log"),
                "-c",
                str(main),
                "-g",
                f"daemon off; pid {self.dir}/nginx.pid;",
            ],
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"nginx exited: {self.logs()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"nginx did not listen: {self.logs()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # fast shutdown: open sockets are closed
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        self.proc = None

    def logs(self) -> str:
        parts = []
        for name in ("stderr.log", "error.log"):
            path = self.dir / "logs" / name
            if path.exists():
                parts.append(path.read_text(errors="replace")[-3000:])
        return "\n".join(parts)


@dataclass
class Cluster:
    """``ieum-chat serve`` processes sharing a database and Redis, with nginx in front."""

    cli: Cli
    workdir: Path
    env: Mapping[str, str]
    prefix: str
    nodes: list[ServerProcess] = field(default_factory=list)
    nginx: NginxProcess | None = None

    node_env: dict[int, Mapping[str, str]] = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        database_url: str,
        workdir: Path,
        *,
        size: int = 3,
        env: Mapping[str, str] | None = None,
        node_env: Mapping[int, Mapping[str, str]] | None = None,
    ) -> Cluster:
        """``env`` goes to every node, ``node_env[i]`` to node i on top of it."""
        require_redis()
        require_nginx()
        prefix = unique_prefix()
        cli = Cli.for_database(database_url, IEUM_REDIS_URL=REDIS_URL, IEUM_REDIS_PREFIX=prefix)
        cli.run("migrate")
        cluster = cls(cli, workdir, dict(env or {}), prefix, node_env=dict(node_env or {}))
        try:
            for index in range(size):
                cluster.nodes.append(cluster._node(index, free_port()).start())
            cluster.nginx = NginxProcess([n.port for n in cluster.nodes], workdir / "nginx")
            cluster.nginx.start()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _node(self, index: int, port: int) -> ServerProcess:
        env = {**self.env, **self.node_env.get(index, {})}
        return ServerProcess(self.cli, self.workdir / f"node{index}.log", extra_env=env, port=port)

    @property
    def proxy(self) -> NginxProcess:
        assert self.nginx is not None
        return self.nginx

    def node_of(self, session_id: str, timeout: float = 5.0) -> int:
        """Which node serves the STOMP session (the ``session`` header of CONNECTED)."""
        needle = f"session {session_id}:"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for index, node in enumerate(self.nodes):
                if needle in node.log_text():
                    return index
            time.sleep(0.05)
        raise AssertionError(f"no node logged {needle!r}")

    async def connect(
        self,
        token: str,
        *,
        avoid: Collection[int] = (),
        connect_headers: Mapping[str, str] | None = None,
    ) -> tuple[StompTestClient, int]:
        """A STOMP session through nginx (the token in the query string) on a node not in
        ``avoid``, and that node's index; nginx spreads new connections round-robin, so a few
        tries land elsewhere. ``connect_headers`` go on the CONNECT frame."""
        for _ in range(12):
            client = await StompTestClient.open(self.proxy.ws_url, token=token)
            headers = {"accept-version": "1.2", "host": "ieum", "heart-beat": "0,0"}
            await client.send("CONNECT", {**headers, **(connect_headers or {})})
            frame = await client.expect("CONNECTED")
            node = await asyncio.to_thread(self.node_of, frame.get("session") or "")
            if node not in avoid:
                return client, node
            await client.close()
        raise AssertionError(f"nginx never sent a connection outside nodes {sorted(avoid)}")

    def kill(self, index: int) -> None:
        """SIGKILL: no drain, no goodbye to Redis; its sessions expire by TTL."""
        self.nodes[index].stop(signal.SIGKILL)

    def restart(self, index: int) -> None:
        node = self.nodes[index]
        if node.proc is not None:
            node.stop()
        self.nodes[index] = self._node(index, node.port).start()

    def stop(self) -> None:
        if self.nginx is not None:
            self.nginx.stop()
        for node in self.nodes:
            node.stop()
        delete_prefix(self.prefix)


@contextlib.contextmanager
def running_cluster(
    workdir: Path,
    *,
    size: int = 3,
    env: Mapping[str, str] | None = None,
    node_env: Mapping[int, Mapping[str, str]] | None = None,
) -> Iterator[Cluster]:
    """A throwaway PostgreSQL database and a cluster on it, both gone afterwards (``env``
    and ``node_env`` as for :meth:`Cluster.start`)."""
    with throwaway_database() as url:
        cluster = Cluster.start(url, workdir, size=size, env=env or {}, node_env=node_env)
        try:
            yield cluster
        finally:
            cluster.stop()
