"""Percentiles and summaries of the generator's results."""

from __future__ import annotations

import math
from array import array
from typing import Any

import pytest
from bench._compare import median_run
from bench._report import (
    compare_table,
    latency_summary,
    load_table,
    markdown_table,
    median_range,
    merge_latencies,
    percentile,
    tail_spread,
    waiting_pct,
)


def test_nearest_rank_percentiles() -> None:
    ordered = [float(i) for i in range(1, 101)]
    assert percentile(ordered, 50) == 50.0
    assert percentile(ordered, 99) == 99.0
    assert percentile(ordered, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_merge_and_summarise_in_milliseconds() -> None:
    chunks = [array("d", [0.003, 0.001]).tobytes(), array("d", [0.002]).tobytes()]
    ordered = merge_latencies(chunks)
    assert ordered == [0.001, 0.002, 0.003]
    assert latency_summary(ordered) == {"count": 3, "p50": 2.0, "p90": 3.0, "p99": 3.0, "max": 3.0}
    assert latency_summary([])["p99"] is None


def _run(p50: float, p99: float, lost: int = 0) -> dict[str, Any]:
    return {
        "throughput": {"msgs_per_s": 1000.0, "deliveries_per_s": 2000.0},
        "latency_ms": {"delivery": {"p50": p50, "p99": p99}},
        "loss": {"lost": lost, "duplicates": 0},
        "server": {},
        "config": {"reactions": 0.0},
    }


def test_the_half_load_row_is_the_run_with_the_median_p99() -> None:
    runs = [_run(3.0, 16.0), _run(3.1, 7.0), _run(2.9, 8.0)]
    assert median_run(runs) is runs[2]
    assert median_run(runs[:2]) is runs[1]  # of two, the lower
    assert median_run(runs[:1]) is runs[0]
    silent = _run(0.0, 0.0)
    silent["latency_ms"]["delivery"]["p99"] = None  # timed no delivery: the slowest
    assert median_run([silent, runs[1], runs[2]]) is runs[2]
    row = {"label": "x", "peak": _run(10.0, 20.0), "half": runs[2], "half_runs": runs}
    runs[0]["loss"]["lost"] = 2  # a loss in any run shows
    [line] = compare_table([row]).splitlines()[2:]
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    assert cells[5] == "2.9 / 8.0 (7.0–16.0)"
    assert cells[7] == "2"


def test_waiting_for_a_core_is_a_share_of_the_runnable_time() -> None:
    assert waiting_pct(3.0, 1.0) == 25.0
    assert waiting_pct(1.0, 0.0) == 0.0
    assert waiting_pct(None, 1.0) is None
    assert waiting_pct(1.0, None) is None  # a kernel without schedstat
    assert waiting_pct(0.0, 0.0) is None  # never ran


def test_each_run_shows_how_long_the_server_its_database_and_the_generator_waited() -> None:
    peak = _run(10.0, 20.0)
    peak["latency_ms"]["receipt"] = {"p50": 9.0, "p99": 19.0}
    peak["server"] = {"cpu_s": 6.0, "run_queue_s": 2.0, "db_cpu_s": 3.0, "db_run_queue_s": 1.0}
    peak["generator"] = {"cpu_s": 1.0, "run_queue_s": 1.0}
    peak["other_processes_cores"] = 0.01
    broker = _run(1.0, 2.0)  # no database; a kernel that keeps no run-queue times
    broker["latency_ms"]["receipt"] = {"p50": 1.0, "p99": 2.0}
    broker["server"] = {"cpu_s": 5.0}
    broker["generator"] = {"cpu_s": 1.0}
    lines = load_table([("ieum", peak), ("broker", broker)]).splitlines()
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    assert cells[0][-1] == "waiting for a core %"
    assert cells[0][5] == "slowest 1 %: half in"
    assert cells[2][5] == "-"  # a result without send times
    assert cells[2][-1] == "25 / 25 / 50"
    assert cells[3][-1] == "- / -"


def _deliveries(
    slow_at: list[float], *, seconds: int = 10, per_second: int = 1000
) -> tuple[list[float], list[float]]:
    """Deliveries sent evenly over the run, each taking 1 ms but those sent at ``slow_at``
    (seconds into the run), which take 20."""
    sent = [i / per_second for i in range(seconds * per_second)]
    latency = [0.001] * len(sent)
    for at in slow_at:
        latency[round(at * per_second)] = 0.020
    return sent, latency


def test_a_tail_that_came_in_episodes_is_held_by_few_windows() -> None:
    # 100 slow deliveries, the slowest 1 % of 10,000: 40 sent in the 50 ms from 2.00 s, 45 in
    # those from 7.00 s, 15 in the next.
    slow = [2.0 + i / 1000 for i in range(40)] + [7.0 + i / 1000 for i in range(45)]
    slow += [7.05 + i / 1000 for i in range(15)]
    sent, latency = _deliveries(slow)
    tail = tail_spread(sent, latency)
    assert tail == {
        "window_ms": 50.0,
        "windows": 200,
        "slow": 100,
        "slow_windows": 3,
        "half_in": 2,  # 45 at 7.00 s, then 40 at 2.00 s: 85 of the 100
    }


def test_a_tail_spread_over_the_run_needs_half_of_its_windows() -> None:
    slow = [i / 10 for i in range(100)]  # one slow delivery every 100 ms
    sent, latency = _deliveries(slow)
    tail = tail_spread(sent, latency)
    assert tail is not None
    assert (tail["slow"], tail["slow_windows"], tail["half_in"]) == (100, 100, 50)


def test_the_window_is_a_parameter_and_the_inputs_must_pair() -> None:
    sent, latency = _deliveries([0.5, 0.52, 5.0])
    tail = tail_spread(sent, latency, window=1.0)
    assert tail is not None
    assert (tail["windows"], tail["window_ms"], tail["slow"]) == (10, 1000.0, 100)
    assert tail["half_in"] == 1  # the three slow ones, then ties of 1 ms in send order
    assert tail_spread([], []) is None
    with pytest.raises(ValueError, match="one send time for each latency"):
        tail_spread([0.0], [])


def test_the_load_table_shows_how_the_slowest_deliveries_are_spread() -> None:
    run = _run(1.0, 20.0)
    run["latency_ms"]["receipt"] = {"p50": 1.0, "p99": 2.0}
    sent, latency = _deliveries([2.0 + i / 1000 for i in range(100)])
    run["delivery_tail"] = tail_spread(sent, latency)
    lines = load_table([("ieum", run)]).splitlines()
    cells = [cell.strip() for cell in lines[2].strip("|").split("|")]
    assert cells[5] == "1 of 200 × 50 ms"


def test_the_load_table_shows_how_much_of_the_tail_the_hosts_spells_hold() -> None:
    run = _run(1.0, 20.0)
    run["latency_ms"]["receipt"] = {"p50": 1.0, "p99": 2.0}
    sent, latency = _deliveries([2.0 + i / 1000 for i in range(100)])
    run["delivery_tail"] = tail_spread(sent, latency)
    run["host_spells"] = {
        "window_ms": 500.0,
        "factor": 1.25,
        "windows": 20,
        "slowed": 3,
        "slowest": 100,
        "slowest_in_spells": 100,
    }
    lines = load_table([("ieum", run)]).splitlines()
    cells = [cell.strip() for cell in lines[2].strip("|").split("|")]
    assert cells[5] == "1 of 200 × 50 ms; 100 in spells (3 of 20 × 500 ms)"


def test_a_probes_cell_is_the_median_and_the_range() -> None:
    assert median_range([562.0, 464.0, 517.4]) == "517 (464–562)"
    assert median_range([40.0, 80.04, 38.76], 1) == "40.0 (38.8–80.0)"
    assert median_range([1234.0, 5678.0]) == "3,456 (1,234–5,678)"


def test_a_probes_table_is_compact_markdown() -> None:
    table = markdown_table(["size", "µs"], [["1", "260 (250–272)"], ["8", "517"]])
    assert table.splitlines() == [
        "| size | µs |",
        "|---|---|",
        "| 1 | 260 (250–272) |",
        "| 8 | 517 |",
    ]
    assert markdown_table(["a"], []) == "| a |\n|---|"
