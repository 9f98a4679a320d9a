"""`schemathesis run` against the server's own OpenAPI document, on SQLite and PostgreSQL.

Every check is on: no 5xx, statuses, content types, headers and bodies as documented,
schema-invalid input refused, schema-valid input accepted, auth not ignored, `Allow` on 405.
Exceptions, configured below: the send operation's per-type rules (TEXT must be non-blank,
an IMAGE must name a file uploaded here) and those of the changes of a sent message (one
emoji; only the sender's TEXT message can be edited) are not expressible in JSON Schema; a
schema-valid request that breaks them gets the documented 400 SEND_FAILED (or 403/404). And a
message deleted for the caller is not gone: the stateful phase's use-after-free check is off
for the message routes. And a push device registration has rules beyond its schema (below).

The server has Web Push configured (a VAPID key made here), so the key's route answers 200.

Bounded: a few dozen examples per operation, so each backend's run takes seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from tests.support.server import ServerProcess

Couple = dict[str, str]

MAX_EXAMPLES = 30

VAPID_PEM = (
    ec.generate_private_key(ec.SECP256R1())
    .private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    .decode()
)

pytestmark = pytest.mark.server_env(
    {"IEUM_VAPID_PRIVATE_KEY": VAPID_PEM, "IEUM_VAPID_SUBJECT": "mailto:ops@ieum.test"}
)

# 413: an upload declared over the size limit breaks the documented `maximum` (negative data)
# and is answered 413 as the contract says; schemathesis's default list lacks it.
NEGATIVE_STATUSES = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "429"]


def _toml(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string or array is valid TOML


def config_for(couple: Couple) -> str:
    return f"""
headers = {{ Authorization = {_toml("Bearer " + couple["ta"])} }}

# Room operations target the caller's own room, so the happy paths run; unknown and foreign
# rooms are tested in tests/integration/test_rest.py.
[parameters]
roomId = {_toml(couple["couple"])}

[checks]
enabled = true

[checks.negative_data_rejection]
expected-statuses = {_toml(NEGATIVE_STATUSES)}

[[operations]]
include-path = "/chat/rooms/{{roomId}}/messages"
include-method = "POST"
checks.positive_data_acceptance.enabled = false

# DELETE .../messages/{{messageId}} is delete for me: the message still exists (for the
# partner, and for the caller's own changes: unsending a message hidden for oneself is how
# the partner stops seeing it too), so later requests to it are not a use after free.
[[operations]]
include-path-regex = "^/chat/rooms/[{{]roomId[}}]/messages/[{{]messageId[}}]"
checks.positive_data_acceptance.enabled = false
checks.use_after_free.enabled = false

# A registration's token is at most 4096 bytes of UTF-8 (the schema can count characters
# only), p256dh must be a point of the curve, and a Web Push endpoint must resolve to public
# addresses: schema-valid registrations that break these get the documented 400.
[[operations]]
include-path = "/chat/devices/{{deviceId}}"
include-method = "PUT"
checks.positive_data_acceptance.enabled = false
"""


@pytest.fixture(scope="module")
def rest_couple(couple_pool: Iterator[Couple]) -> Couple:
    return next(couple_pool)


def test_schemathesis_finds_nothing(
    server: ServerProcess, rest_couple: Couple, tmp_path: Path
) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(config_for(rest_couple))
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "--no-color",
        "run",
        f"{server.http_url}/openapi.json",
        "--include-path-regex",
        "^/(chat|uploads)/",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--generation-database",
        "none",
        "--request-timeout",
        "10",
    ]
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=150, cwd=tmp_path, check=False
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-8000:]
    assert "Tested: 20" in report, report[-3000:]
    assert " passed" in report, report[-3000:]
    assert "❌" not in report, report[-8000:]
