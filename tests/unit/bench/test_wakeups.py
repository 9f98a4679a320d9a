"""``python -m bench.wakeups``: where its blocks run, real round trips between two
processes, the table and the command."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from bench.wakeups import main, placements, render, round_trips


def test_the_blocks_run_on_one_core_and_on_two_where_there_are_two() -> None:
    assert placements([3, 1, 2]) == {"one core": (1, 1), "two cores": (1, 2)}
    assert placements([5]) == {"one core": (5, 5)}


@pytest.mark.parametrize("across", [False, True])
def test_a_round_trip_is_timed_on_both_sides_and_the_affinity_comes_back(across: bool) -> None:
    cores = sorted(os.sched_getaffinity(0))
    if across and len(cores) < 2:
        pytest.fail("this test needs two cores to run the echoer on the other one")
    before = os.sched_getaffinity(0)
    figures = round_trips(cores[0], cores[1] if across else cores[0], count=300)
    assert os.sched_getaffinity(0) == before
    assert set(figures) == {"round_trip_us", "sender_cpu_us", "echoer_cpu_us"}
    # A round trip is two sends, two receives and two wake-ups: it takes time on both sides,
    # and neither side's CPU exceeds the round trip's wall time.
    assert 0 < figures["sender_cpu_us"] <= figures["round_trip_us"]
    assert 0 < figures["echoer_cpu_us"] <= figures["round_trip_us"]


def test_the_table_gives_each_placements_median_and_range() -> None:
    run = {"round_trip_us": 40.0, "sender_cpu_us": 15.0, "echoer_cpu_us": 14.0}
    slower = {"round_trip_us": 80.0, "sender_cpu_us": 25.0, "echoer_cpu_us": 20.0}
    result = {
        "blocks": {"two cores": [run, slower, run]},
        "median": {"two cores": run},
    }
    lines = render(result).splitlines()
    assert lines[0].startswith("| placement | round trip µs")
    assert lines[2] == "| two cores | 40.0 (40.0–80.0) | 15.0 (15.0–25.0) | 14.0 (14.0–20.0) |"


def test_the_command_prints_the_table_and_writes_every_block(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "wakeups.json"
    assert main(["--count", "200", "--rounds", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["count"] == 200
    assert set(result["blocks"]) == set(result["cores"]) == set(result["median"])
    assert "one core" in result["blocks"]
    assert all(len(runs) == 2 for runs in result["blocks"].values())
    printed = capsys.readouterr().out
    assert all(f"| {name} |" in printed for name in result["blocks"])


def test_an_echoer_that_cannot_run_is_an_error_not_a_figure() -> None:
    # No process may be pinned to a core this machine does not have: the echoer ends at once.
    missing = max(os.sched_getaffinity(0)) + 1000
    with pytest.raises(OSError, match="the echoer ended"):
        round_trips(min(os.sched_getaffinity(0)), missing, count=100)
