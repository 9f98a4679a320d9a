"""``python -m bench.message_ids``: its table, its refusals, and one short run against the
machine's PostgreSQL, for real."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench.message_ids import BLOCKS, KINDS, _parser, main, render

from tests.support.cli import assert_refused
from tests.support.postgres import ADMIN_URL, require_postgres


def test_the_table_has_a_row_per_kind_and_block_with_medians_and_ranges() -> None:
    figures = {"wal_bytes_a_message": [2400.0, 2300.0, 2500.0], "cpu_us_a_call": [480.0, 500.0]}
    result = {
        "rows": 2_000_000,
        "size": 8,
        "calls": 1500,
        "rounds": 3,
        "blocks": {"random (v4)": {"after a checkpoint": figures}},
    }
    table = render(result)
    assert "2,000,000 messages stored first; blocks of 1500 calls of 8 messages" in table
    assert "| random (v4) | after a checkpoint | 2,400 (2,300–2,500) | 490 (480–500) |" in table


@pytest.mark.parametrize("args", [["--rows", "0"], ["--size", "x"], ["--rounds", "-1"]])
def test_numbers_that_cannot_run_are_refused(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert_refused(_parser(), args, capsys)


@pytest.mark.postgres
def test_a_short_run_measures_every_kind_of_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_postgres()
    out = tmp_path / "result.json"
    argv = ["--rows", "80", "--size", "3", "--calls", "4", "--rounds", "2", "--couples", "2"]
    assert main([*argv, "--pg-admin-url", ADMIN_URL, "--out", str(out)]) == 0
    assert "| time-ordered (v7) | after a checkpoint |" in capsys.readouterr().out
    blocks = json.loads(out.read_text())["blocks"]
    assert sorted(blocks) == sorted(kind for kind, _, _ in KINDS)
    for kind in blocks.values():
        assert sorted(kind) == sorted(BLOCKS)
        for figures in kind.values():
            assert len(figures["wal_bytes_a_message"]) == len(figures["cpu_us_a_call"]) == 2
            assert all(value > 0 for value in figures["wal_bytes_a_message"])
            assert all(value > 0 for value in figures["cpu_us_a_call"])
