"""``python -m bench.db_time``: its reading of histograms and WAL statistics, and one short run
against the machine's PostgreSQL, for real."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench.db_time import (
    _parser,
    backend_state,
    histogram_delta,
    main,
    processes,
    render,
    wal_per_message,
)

from tests.support.cli import assert_refused
from tests.support.postgres import ADMIN_URL, require_postgres


def test_a_histogram_counts_what_came_between_two_scrapes_for_its_labels() -> None:
    before = {
        'ieum_write_transaction_seconds_bucket{kind="messages",le="0.001"}': 1.0,
        'ieum_write_transaction_seconds_bucket{kind="messages",le="0.0025"}': 1.0,
        'ieum_write_transaction_seconds_bucket{kind="messages",le="+Inf"}': 2.0,
        'ieum_write_transaction_seconds_count{kind="messages"}': 2.0,
        'ieum_write_transaction_seconds_sum{kind="messages"}': 0.004,
    }
    after = {
        **before,
        'ieum_write_transaction_seconds_bucket{kind="messages",le="0.001"}': 3.0,
        'ieum_write_transaction_seconds_bucket{kind="messages",le="0.0025"}': 5.0,
        'ieum_write_transaction_seconds_bucket{kind="messages",le="+Inf"}': 6.0,
        'ieum_write_transaction_seconds_count{kind="messages"}': 6.0,
        'ieum_write_transaction_seconds_sum{kind="messages"}': 0.012,
        'ieum_write_transaction_seconds_bucket{kind="changes",le="0.001"}': 50.0,
        'ieum_write_transaction_seconds_count{kind="changes"}': 50.0,
    }
    delta = histogram_delta(before, after, "ieum_write_transaction_seconds", 'kind="messages"')
    assert delta["count"] == 4
    assert delta["mean_s"] == pytest.approx(0.002)
    assert delta["share_within"] == {0.001: 0.5, 0.0025: 1.0, float("inf"): 1.0}
    nothing = histogram_delta(after, after, "ieum_send_commit_seconds")
    assert nothing == {"count": 0.0, "mean_s": 0.0, "share_within": {}}


def test_backend_states_name_what_it_waits_on() -> None:
    assert backend_state("active", None, None) == "running"
    assert backend_state("active", "IO", "WALSync") == "IO/WALSync"
    assert backend_state("idle", "Client", "ClientRead") == "idle"
    assert backend_state(None, None, None) == "gone"


def test_wal_is_counted_per_message_stored_the_most_bytes_first() -> None:
    rows = [
        {"record": "Heap/INSERT", "count": 100, "bytes": 18_000},
        {"record": "Btree/INSERT_LEAF", "count": 500, "bytes": 42_000},
    ]
    per = wal_per_message(rows, 100)
    assert [row["record"] for row in per] == ["Btree/INSERT_LEAF", "Heap/INSERT"]
    assert per[0]["records_per_message"] == 5.0
    assert per[0]["bytes_per_message"] == 420.0
    assert per[0]["share_of_bytes"] == pytest.approx(0.7)
    assert wal_per_message(rows, 0)[0]["bytes_per_message"] == 0.0


def test_the_table_shows_each_part() -> None:
    result = {
        "rate": 4000.0,
        "seconds": 10.0,
        "messages": 40_000.0,
        "batches": 8_000.0,
        "load": {"delivery_ms": {"p50": 2.7, "p99": 5.9}},
        "processes": processes(
            {
                "window_s": 10.0,
                "server": {"cpu_s": 6.0, "run_queue_s": 2.0, "db_cpu_s": 4.0},
                "generator": {"cpu_s": 3.5, "run_queue_s": 3.5},
            }
        ),
        "backend_states": {"idle": 52, "IO/WALSync": 34, "running": 14},
        "wal_flushes": 7_980,
        "wal_bytes_per_message": 1020.4,
        "wal_records_per_message": 10.2,
        "wal": wal_per_message(
            [{"record": "Heap/INSERT", "count": 40_000, "bytes": 7_160_000}], 40_000
        ),
        "histograms": {
            "its batch's transaction": {
                "count": 8_000.0,
                "mean_s": 0.00097,
                "share_within": {0.001: 0.612, 0.0025: 0.997, 0.005: 1.0, 0.01: 1.0},
            }
        },
    }
    table = render(result)
    assert (
        "an open loop at 4,000 msgs/s: 40,000 messages stored in 10.0 s (4,000/s), 5.0 a batch"
        in table
    )
    assert "| the server | 0.60 | 25 % |" in table
    assert "| its database | 0.40 | - |" in table  # its waits unread: none reported
    assert "| the generator | 0.35 | 50 % |" in table
    assert "| IO/WALSync | 34.0 % |" in table
    assert "WAL flushes: 798/s; WAL a message: 1,020 bytes in 10.2 records" in table
    assert "| Heap/INSERT | 1.00 | 179 | 100.0 % |" in table
    assert "| its batch's transaction | 0.97 | 61.2 % | 99.7 % | 100.0 % | 100.0 % |" in table


@pytest.mark.parametrize(
    "args",
    [["--rate", "-1"], ["--couples", "0"], ["--duration", "nan"], ["--every", "x"]],
)
def test_numbers_that_cannot_run_are_refused(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert_refused(_parser(), args, capsys)


@pytest.mark.postgres
def test_a_short_run_reads_the_backend_the_wal_and_the_histograms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_postgres()
    out = tmp_path / "result.json"
    code = main(
        [
            *("--rate", "200", "--couples", "2", "--duration", "1.5", "--warmup", "0.5"),
            *("--pg-admin-url", ADMIN_URL, "--out", str(out), "--quiet"),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "| the appending backend | share of samples |" in printed
    assert "| the server |" in printed
    result = json.loads(out.read_text())
    assert result["messages"] > 100
    assert sum(result["backend_states"].values()) > 10
    records = {row["record"] for row in result["wal"]}
    assert {"Heap/INSERT", "Btree/INSERT_LEAF", "Transaction/COMMIT"} <= records
    assert result["wal_bytes_per_message"] > 0
    for name in ("the server", "its database", "the generator"):
        assert result["processes"][name]["cores"] > 0
        assert 0 <= result["processes"][name]["waiting_pct"] < 100
    transaction = result["histograms"]["its batch's transaction"]
    assert transaction["count"] > 0
    assert 0 < transaction["mean_s"] < 1
