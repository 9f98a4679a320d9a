"""Three nodes behind nginx, sharing PostgreSQL and Redis, with the local push services: every
message sent through any node is pushed exactly once to the offline device, whichever node
committed it and however the nodes' sweeps race; a device watching its couple through one
node gets none for messages committed on the others."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.push.conftest import Services, fcm_to
from tests.support.nginx import Cluster, running_cluster
from tests.support.push_servers.threaded import wait_until

pytestmark = pytest.mark.postgres

MESSAGES = 30


@pytest.fixture(scope="module")
def cluster(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    workdir: Path = tmp_path_factory.mktemp("push-cluster")
    with running_cluster(workdir, size=3, env=services.env) as running:
        yield running


async def test_each_push_is_sent_once_by_one_node(cluster: Cluster, services: Services) -> None:
    (couple,) = cluster.cli.seed(1)
    phone, ipad = f"fcm-{uuid.uuid4().hex}", f"fcm-{uuid.uuid4().hex}"
    base = cluster.proxy.http_url
    b = {"Authorization": f"Bearer {couple['tb']}"}
    a = {"Authorization": f"Bearer {couple['ta']}"}
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        for device, token in (("b-phone", phone), ("b-ipad", ipad)):
            response = await http.put(
                f"/chat/devices/{device}", json={"platform": "fcm", "token": token}, headers=b
            )
            assert response.is_success, response.text
        # the iPad watches the couple through one node ...
        session, _ = await cluster.connect(couple["tb"], connect_headers={"x-device-id": "b-ipad"})
        await session.subscribe(f"/topic/couple/{couple['couple']}")
        # ... while messages are committed on all three (nginx spreads the requests)
        ids = []
        for i in range(MESSAGES):
            response = await http.post(
                f"/chat/rooms/{couple['couple']}/messages",
                json={"type": "TEXT", "content": f"m{i}", "tempId": f"t{i}"},
                headers=a,
            )
            assert response.is_success, response.text
            ids.append(response.json()["id"])
    wait_until(lambda: len(fcm_to(services, phone)) >= MESSAGES, 20, "every push to the phone")
    committed_by = Counter(
        n for n, server in enumerate(cluster.nodes) if "ieum" in server.log_text()
    )
    assert committed_by  # the nodes ran
    pushed = Counter(m["data"]["messageId"] for m in fcm_to(services, phone))
    assert set(pushed) == set(ids)
    assert max(pushed.values()) == 1, [i for i, n in pushed.items() if n > 1]
    assert fcm_to(services, ipad) == []  # watching through one node the whole time
    await session.close()
