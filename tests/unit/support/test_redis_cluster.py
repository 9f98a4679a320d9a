"""The test suite's own Redis Cluster: its ports, and a node whose port was taken."""

from __future__ import annotations

import socket
from pathlib import Path

import redis

from tests.support.redis_cluster import RedisClusterServer, _outgoing_ports_from, _spare_ports


def test_spare_ports_and_their_bus_ports_stay_below_the_outgoing_connections() -> None:
    first = _outgoing_ports_from()
    ports = _spare_ports(50)
    assert len(set(ports)) == 50
    assert all(port + 10000 < first for port in ports)
    assert not set(_spare_ports(20, taken=ports)) & set(ports)


def test_a_node_whose_port_is_taken_starts_on_another(tmp_path: Path) -> None:
    RedisClusterServer.require()
    cluster = RedisClusterServer(tmp_path)
    taken = cluster.ports[0]
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        try:
            cluster.start()
            assert taken not in cluster.ports
            client = redis.RedisCluster(host="127.0.0.1", port=cluster.ports[0])
            try:
                client.set("k", "v")
                assert client.get("k") == b"v"
            finally:
                client.close()
        finally:
            cluster.stop()
