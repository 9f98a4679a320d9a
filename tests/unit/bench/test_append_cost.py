"""``python -m bench.append_cost``: the batches it sends, its table, and one short run against
the machine's PostgreSQL, for real."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from bench.append_cost import _parser, columns, main, render

from ieum_chat.store.records import NEW_MESSAGE_FIELDS
from tests.support.cli import assert_refused
from tests.support.postgres import ADMIN_URL, require_postgres

_COUPLES = [
    {"couple": str(uuid.uuid4()), "a": str(uuid.uuid4()), "b": str(uuid.uuid4())} for _ in range(3)
]


def test_a_batch_goes_round_the_couples_from_both_members() -> None:
    batch = columns(_COUPLES, 4, offset=2)
    assert len(batch) == len(NEW_MESSAGE_FIELDS)
    couple_ids = batch[NEW_MESSAGE_FIELDS.index("couple_id")]
    senders = batch[NEW_MESSAGE_FIELDS.index("sender_id")]
    order = [_COUPLES[i] for i in (2, 0, 1, 2)]
    assert couple_ids == [uuid.UUID(c["couple"]) for c in order]
    assert senders == [uuid.UUID(c[m]) for c, m in zip(order, "baba", strict=True)]
    temp_ids = batch[NEW_MESSAGE_FIELDS.index("temp_id")]
    assert len(set(temp_ids)) == 4
    assert all(len(column) == 4 for column in batch)


def test_the_table_has_a_row_per_size_with_the_ratio_of_the_medians() -> None:
    result = {
        "us_per_call": {
            "9": {"statement": [700.0, 740.0, 800.0], "function (0011)": [800.0, 840.0, 900.0]}
        }
    }
    assert "| 9 | 740 (700–800) | 840 (800–900) | 0.88 |" in render(result)


@pytest.mark.parametrize("args", [["--sizes", "0"], ["--sizes", "1,x"], ["--calls", "-1"]])
def test_numbers_that_cannot_run_are_refused(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert_refused(_parser(), args, capsys)


@pytest.mark.postgres
def test_a_short_run_times_both_forms(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_postgres()
    out = tmp_path / "result.json"
    argv = ["--sizes", "1,3", "--calls", "5", "--rounds", "2", "--couples", "2"]
    assert main([*argv, "--pg-admin-url", ADMIN_URL, "--out", str(out)]) == 0
    assert "| 3 |" in capsys.readouterr().out
    result = json.loads(out.read_text())
    for size in ("1", "3"):
        for form in ("statement", "function (0011)"):
            blocks = result["us_per_call"][size][form]
            assert len(blocks) == 2
            assert all(value > 0 for value in blocks)
