"""The ``ieum-chat`` command, run as a user would, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid

import jwt
import pytest

from tests.support.server import TEST_SECRET, Cli


def test_user_couple_token_flow(cli: Cli) -> None:
    a = cli.run("user", "add", "--name", "홍길동", "--profile-image", "https://p/1.png").stdout
    b = cli.run("user", "add", "--name", "Jane").stdout
    a_id, b_id = uuid.UUID(a.strip()), uuid.UUID(b.strip())
    couple = uuid.UUID(cli.run("couple", "add", str(a_id), str(b_id)).stdout.strip())
    assert couple.version == 4
    token = cli.run("token", str(a_id), "--ttl", "120").stdout.strip()
    claims = jwt.decode(token, TEST_SECRET, algorithms=["HS256"])
    assert claims["sub"] == str(a_id)
    assert 100 <= claims["exp"] - claims["iat"] <= 120


def test_seed_prints_couples_with_tokens(cli: Cli) -> None:
    rows = json.loads(cli.run("seed", "--couples", "3", "--ttl", "60").stdout)
    assert len(rows) == 3
    assert len({r["couple"] for r in rows}) == 3
    for row in rows:
        assert set(row) == {"couple", "a", "b", "ta", "tb"}
        assert jwt.decode(row["ta"], TEST_SECRET, algorithms=["HS256"])["sub"] == row["a"]
        assert jwt.decode(row["tb"], TEST_SECRET, algorithms=["HS256"])["sub"] == row["b"]


def test_migrate_is_idempotent(cli: Cli) -> None:
    assert "up to date" in cli.run("migrate").stdout
    assert "up to date" in cli.run("migrate").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["couple", "add", "not-a-uuid", "x"], "not a UUID"),
        (["token", str(uuid.UUID(int=1))], "no user"),
        (["seed", "--couples", "0"], "must be positive"),
        (["seed", "--couples", "many"], "not an integer"),
        (["user", "add", "--name", "  "], "must not be blank"),
        (["token", str(uuid.UUID(int=1)), "--ttl", "-5"], "must be positive"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line(cli: Cli, args: list[str], message: str) -> None:
    proc = cli.run(*args, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_couple_add_refusals(cli: Cli) -> None:
    a = cli.run("user", "add", "--name", "A").stdout.strip()
    b = cli.run("user", "add", "--name", "B").stdout.strip()
    c = cli.run("user", "add", "--name", "C").stdout.strip()
    for args in ([a, a], [a, str(uuid.uuid4())]):
        proc = cli.run("couple", "add", *args, check=False)
        assert proc.returncode == 2
        assert proc.stderr.startswith("ieum-chat: error:")
        assert len(proc.stderr.strip().splitlines()) == 1
    cli.run("couple", "add", a, b)
    proc = cli.run("couple", "add", a, c, check=False)
    assert proc.returncode == 2
    assert "already" in proc.stderr


def test_bad_database_url_is_one_line(cli: Cli) -> None:
    broken = Cli({**cli.env, "IEUM_DATABASE_URL": "mysql://nobody@nowhere/x"})
    proc = broken.run("migrate", check=False)
    assert proc.returncode != 0
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr
