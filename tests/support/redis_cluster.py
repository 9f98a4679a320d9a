"""A Redis Cluster of a test's own: six ``redis-server`` processes (three masters, three
replicas) on spare loopback ports in a temporary folder, without persistence, torn down after.

``cluster-node-timeout`` is short (2 s) so that a test can kill a master with SIGKILL and see
its replica promoted within seconds.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import redis
from redis.exceptions import RedisError

__all__ = ["RedisClusterServer", "redis_cluster", "running_redis_cluster"]

NODE_TIMEOUT_MS = 2000
# A node's cluster bus listens on its port + 10000.
_BUS_OFFSET = 10000
_LOWEST_PORT = 10000
# Times a node is started on other ports when it could not take its own.
_START_ATTEMPTS = 3


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _outgoing_ports_from() -> int:
    """The first port the kernel hands out for outgoing connections."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _spare_ports(count: int, taken: Sequence[int] = ()) -> list[int]:
    """Ports whose cluster bus port (the port + 10000) is spare too, both below the ports the
    kernel hands out for outgoing connections: there, another test's connection (the suite
    runs in several processes) could take one between this check and the node's bind."""
    top = max(_outgoing_ports_from() - _BUS_OFFSET, _LOWEST_PORT + 1000)
    ports: list[int] = []
    while len(ports) < count:
        port = random.randrange(_LOWEST_PORT, top)
        if port not in ports and port not in taken and _free(port) and _free(port + _BUS_OFFSET):
            ports.append(port)
    return ports


def _served_by(pid: int) -> Callable[[redis.Redis], bool]:
    """A check that the redis-server answering is the process ``pid``."""
    return lambda client: client.info("server").get("process_id") == pid


class RedisClusterServer:
    def __init__(self, workdir: Path, *, masters: int = 3) -> None:
        self.workdir = workdir
        self.ports = _spare_ports(masters * 2)
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports[:3])

    @staticmethod
    def require() -> None:
        for tool in ("redis-server", "redis-cli"):
            if shutil.which(tool) is None:
                if os.environ.get("CI"):
                    pytest.fail(f"{tool} is required on CI (Debian package redis-server)")
                pytest.skip(f"{tool} is not installed")

    def _spawn(self, port: int) -> None:
        folder = self.workdir / str(port)
        folder.mkdir(parents=True, exist_ok=True)
        self.procs[port] = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(folder / "nodes.conf"),
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
                "--appendonly",
                "no",
                "--save",
                "",
                "--dir",
                str(folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def start(self) -> RedisClusterServer:
        for port in self.ports:
            self._spawn(port)
        for index in range(len(self.ports)):
            self._started(index)
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in self.ports),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=60,
        )
        for port in self.ports:
            self.wait_ok(port)
        self._wait(self._replicated, self.ports[0], "never saw a replica of every master")
        return self

    def _started(self, index: int) -> None:
        """Until the node at ``index`` answers, itself and not whatever else listens there.
        One that exits at once could not take its port (something took it after the check):
        it starts again on another."""
        for attempt in range(1, _START_ATTEMPTS + 1):
            port = self.ports[index]
            proc = self.procs[port]
            if self._poll(_served_by(proc.pid), port, proc):
                return
            if proc.poll() is None or attempt == _START_ATTEMPTS:
                raise AssertionError(f"redis-server on port {port} did not start")
            del self.procs[port]
            [self.ports[index]] = _spare_ports(1, taken=self.ports)
            self._spawn(self.ports[index])

    @staticmethod
    def _replicated(client: redis.Redis) -> bool:
        """Every master has a replica that is in sync (so that a failover can happen)."""
        slots = client.execute_command("CLUSTER", "SLOTS")  # type: ignore[no-untyped-call]
        if not slots or any(len(entry) < 4 for entry in slots):
            return False
        for entry in slots:
            replica = redis.Redis(host="127.0.0.1", port=int(entry[3][1]), socket_timeout=2)
            try:
                info = replica.info("replication")
            finally:
                replica.close()
            if info.get("master_link_status") != "up":
                return False
        return True

    def _client(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, socket_timeout=2)

    def _poll(
        self,
        check: Callable[[redis.Redis], object],
        port: int,
        proc: subprocess.Popen[bytes] | None = None,
        timeout: float = 30,
    ) -> bool:
        """Whether ``check`` held for the node on ``port`` within ``timeout``; False at once if
        ``proc`` (the node, when given) has exited."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (proc is None or proc.poll() is None):
            client = self._client(port)
            try:
                if check(client):
                    return True
            except (RedisError, OSError):
                pass
            finally:
                client.close()
            time.sleep(0.1)
        return False

    def _wait(
        self, check: Callable[[redis.Redis], object], port: int, what: str, timeout: float = 30
    ) -> None:
        if not self._poll(check, port, timeout=timeout):
            raise AssertionError(f"redis-server on port {port} {what}")

    def wait_ok(self, port: int | None = None, timeout: float = 30) -> None:
        """Until the node (every live node by default) reports cluster_state:ok."""
        ports = [port] if port is not None else list(self.procs)

        def ok(client: redis.Redis) -> bool:
            info = client.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
            return b"cluster_state:ok" in info

        for p in ports:
            self._wait(ok, p, "never reported cluster_state:ok", timeout)

    def master_of(self, key: str) -> int:
        """The port of the master that serves ``key``'s slot now."""
        client = self._client(next(iter(self.procs)))
        try:
            slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))  # type: ignore[no-untyped-call]
            slots = client.execute_command("CLUSTER", "SLOTS")  # type: ignore[no-untyped-call]
            for start, end, master, *_ in slots:
                if start <= slot <= end:
                    return int(master[1])
        finally:
            client.close()
        raise AssertionError(f"no master serves slot of {key!r}")

    def masters(self) -> list[int]:
        client = self._client(next(iter(self.procs)))
        try:
            slots = client.execute_command("CLUSTER", "SLOTS")  # type: ignore[no-untyped-call]
        finally:
            client.close()
        return sorted({int(entry[2][1]) for entry in slots})

    def delete_prefix(self, prefix: str) -> None:
        """Every key under ``prefix`` gone from every master (as after a restart of the
        cluster without persistence, for this prefix)."""
        for port in self.masters():
            client = self._client(port)
            try:
                for key in list(client.scan_iter(match=f"{prefix}*", count=1000)):
                    client.delete(key)
            finally:
                client.close()

    def hand_over(self, key: str, timeout: float = 30) -> int:
        """A manual failover of ``key``'s master (``CLUSTER FAILOVER`` on a replica of it):
        the replica becomes master, the old master its replica, no process dies. Returns the
        new master's port once every node agrees the cluster is ok."""
        client = self._client(next(iter(self.procs)))
        try:
            slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))  # type: ignore[no-untyped-call]
            slots = client.execute_command("CLUSTER", "SLOTS")  # type: ignore[no-untyped-call]
        finally:
            client.close()
        replica = next(int(nodes[1][1]) for start, end, *nodes in slots if start <= slot <= end)
        client = self._client(replica)
        try:
            client.execute_command("CLUSTER", "FAILOVER")  # type: ignore[no-untyped-call]
        finally:
            client.close()
        deadline = time.monotonic() + timeout
        while self.master_of(key) != replica:
            if time.monotonic() > deadline:
                raise AssertionError(f"port {replica} did not take over {key!r}")
            time.sleep(0.1)
        self.wait_ok(timeout=timeout)
        return replica

    def kill(self, port: int) -> None:
        """SIGKILL one node (no goodbye to the cluster)."""
        proc = self.procs.pop(port)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def wait_promoted(self, dead: int, key: str, timeout: float = 30) -> int:
        """Until another master serves ``key`` (after ``dead`` was killed); its port."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                port = self.master_of(key)
                if port != dead:
                    self.wait_ok(timeout=timeout)
                    return port
            except (RedisError, OSError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"no replica took over from port {dead}")

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.kill()
        for proc in self.procs.values():
            proc.wait(timeout=10)
        self.procs.clear()


@contextlib.contextmanager
def running_redis_cluster(workdir: Path) -> Iterator[RedisClusterServer]:
    """A cluster started in ``workdir``, its processes gone afterwards."""
    RedisClusterServer.require()
    server = RedisClusterServer(workdir)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServer]:
    """A cluster shared by the tests that leave it whole (each uses a key prefix of its own);
    a test that kills nodes starts its own with :func:`running_redis_cluster`."""
    with running_redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as server:
        yield server
