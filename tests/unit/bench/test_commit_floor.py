"""The commit floor: flushes timed on a real file, and the wait of arrivals spread over them."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from bench._report import floor_line
from bench.commit_floor import arrival_waits, flush_spans, main, summarise


def _back_to_back(durations: list[float]) -> list[tuple[float, float]]:
    spans, at = [], 100.0
    for duration in durations:
        spans.append((at, at + duration))
        at += duration
    return spans


def test_an_arrival_waits_for_the_rest_of_the_flush_under_way_and_then_a_whole_one() -> None:
    spans = _back_to_back([0.001, 0.001, 0.050, 0.001, 0.001])
    waits = arrival_waits(spans, step=0.0005)
    # From 100.0 to 100.053 (the last flush's start) every 0.5 ms: 107 arrivals.
    assert len(waits) == 107
    # One at a flush's start waits for that flush: 1 ms, the least; one half-way through a
    # 1 ms flush waits for its rest and the next: 1.5 ms.
    assert waits[0] == pytest.approx(0.001)
    assert sum(1 for w in waits if abs(w - 0.0015) < 1e-9) >= 2
    # Those from just before the stall to its end wait for the stall or for its rest and the
    # flush after it: 97 arrivals inside it, and the two just before, wait over 2.2 ms; the
    # longest wait is the stall and one flush, at most.
    assert sum(1 for w in waits if w > 0.0022) == 99
    assert 0.050 <= waits[-1] <= 0.051 + 1e-9


def test_the_floor_p99_is_a_stall_when_stalls_hold_more_than_a_percent_of_the_time() -> None:
    quiet = [0.0001] * 9_800
    # 0.98 s of 0.1 ms flushes, then one stall of 20 ms: 2 % of the run.
    spans = _back_to_back([*quiet, 0.020, *quiet[:10]])
    result = summarise(spans, duration=spans[-1][1] - spans[0][0])
    assert result["flushes"] == 9_811
    assert result["flush_ms"]["p50"] == 0.1
    assert result["flush_ms"]["p99"] == 0.1  # one flush in nearly ten thousand
    assert result["flush_ms"]["max"] == pytest.approx(20.0)
    assert result["stalls"] == 1
    assert result["stalled_pct"] == pytest.approx(2.0, abs=0.05)
    # ...but 2 % of the arrivals came during it, so their p99 is inside the stall.
    assert result["wait_ms"]["p50"] < 0.2
    assert result["wait_ms"]["p99"] > 5.0
    without = summarise(_back_to_back(quiet), duration=0.98)
    assert without["stalls"] == 0
    assert without["wait_ms"]["p99"] < 0.2


def test_fewer_than_two_flushes_give_no_waits() -> None:
    assert arrival_waits([]) == []
    assert arrival_waits([(1.0, 1.001)]) == []
    assert summarise([], duration=1.0)["wait_ms"]["p99"] is None


def test_flushes_are_timed_back_to_back_on_a_file_that_is_removed_after(tmp_path: Path) -> None:
    spans = flush_spans(tmp_path, 0.2)
    assert len(spans) > 10
    assert all(start <= end for start, end in spans)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
    assert spans[-1][0] - spans[0][0] < 0.2  # none starts after the 0.2 s
    assert list(tmp_path.iterdir()) == []


def test_the_command_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--duration", "0.2", "--dir", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["dir"] == str(tmp_path)
    assert result["flushes"] > 10
    assert set(result["wait_ms"]) == {"p50", "p99", "p99.9"}
    with pytest.raises(SystemExit):
        main(["--duration", "0"])


def test_compare_shows_each_half_load_p99_beside_the_floor_after_it() -> None:
    def run(p99: float) -> dict[str, object]:
        return {"latency_ms": {"delivery": {"p99": p99}}}

    def floor(p99: float, stalls: int, pct: float) -> dict[str, object]:
        return {"wait_ms": {"p99": p99}, "stalls": stalls, "stalled_pct": pct}

    row = {
        "label": "ieum-chat PostgreSQL",
        "half_runs": [run(4.26), run(0.8)],
        "floor_runs": [floor(57.25, 2, 3.3), floor(0.076, 0, 0.0)],
    }
    assert floor_line(row) == (
        "ieum-chat PostgreSQL @½ p99 / the commit floor's p99 right after, ms: 4.3 / 57.2, "
        "0.80 / 0.08; flushes of 10 ms or more in the floor's runs: 2 (3.3 %), 0 (0.0 %)"
    )
    paced = {**row, "paced_floor_runs": [floor(2.21, 0, 0.0), floor(1.9, 0, 0.0)]}
    assert floor_line(paced) == (
        "ieum-chat PostgreSQL @½ p99 / the commit floor's p99 right after (back to back / paced "
        "for the half load), ms: 4.3 / 57.2 / 2.2, 0.80 / 0.08 / 1.9; flushes of 10 ms or more "
        "in the floor's runs: 2 (3.3 %), 0 (0.0 %)"
    )


def test_paced_flushes_start_no_sooner_than_an_arrival_waits(tmp_path: Path) -> None:
    rate, duration = 200.0, 0.5
    spans = flush_spans(tmp_path, duration, rate)
    starts = [start for start, _ in spans]
    # An arrival every 5 ms from the first flush's start: each flush covers those before it,
    # so one starts at most once an arrival, and none before the arrival it is for.
    assert rate * duration * 0.5 <= len(spans) <= rate * duration + 1
    first = starts[0]
    assert all(start - first >= (i - 1e-6) / rate for i, start in enumerate(starts)), (
        "a flush started before the arrival it covers"
    )
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
    assert list(tmp_path.iterdir()) == []
    # Each arrival waits for the first flush that starts at or after it: at most the longest
    # gap between two flushes' starts, then that flush. (Not one arrival step and the longest
    # flush: a flush starts late when the process waits for a core after its sleep, and an
    # arrival during a flush longer than the step waits for that flush and the next.)
    result = summarise(spans, duration, step=1 / rate)
    assert result["wait_ms"]["p50"] is not None
    longest_gap = max((b - a for a, b in itertools.pairwise(starts)), default=0.0)
    longest_flush = max(end - start for start, end in spans)
    assert result["wait_ms"]["p99"] <= 1000 * (longest_gap + longest_flush) + 0.001


def test_the_command_paces_with_a_rate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--duration", "0.3", "--dir", str(tmp_path), "--rate", "100", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["rate"] == 100
    assert 10 <= result["flushes"] <= 31
    with pytest.raises(SystemExit):
        main(["--duration", "1", "--rate", "0"])
