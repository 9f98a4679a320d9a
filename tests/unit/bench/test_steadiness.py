"""The cores' steadiness: windows of a fixed work's times against the core's own median."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import pytest
from bench.steadiness import (
    Beside,
    main,
    probe,
    slowed_windows,
    summarise,
    tail_in_spells,
    window_ratios,
)


def _samples(
    durations: list[float], start: float = 100.0, step: float = 0.1
) -> list[tuple[float, float]]:
    return [(start + i * step, d) for i, d in enumerate(durations)]


def test_a_window_is_its_median_over_the_cores_fast_time() -> None:
    # Ten windows of 0.5 s, five samples each; the fourth and fifth at 1.6 times the rest.
    durations = [0.001] * 15 + [0.0016] * 10 + [0.001] * 25
    ratios = window_ratios(_samples(durations), start=100.0, window=0.5)
    assert list(ratios) == list(range(10))
    assert ratios[3] == pytest.approx(1.6)
    assert ratios[4] == pytest.approx(1.6)
    assert all(ratios[i] == pytest.approx(1.0) for i in (0, 1, 2, 5, 6, 7, 8, 9))


def test_slowed_windows_their_longest_run_and_their_slowdown() -> None:
    durations = [0.001] * 15 + [0.0016] * 10 + [0.001] * 10 + [0.0013] * 5 + [0.001] * 10
    result = summarise(_samples(durations), start=100.0, window=0.5, factor=1.25)
    assert result["fast_ms"] == 1.0
    assert result["median_ms"] == 1.0
    assert result["windows"] == 10
    assert result["slowed"] == 3  # windows 3, 4 and 7
    assert result["slowed_pct"] == 30.0
    assert result["longest_s"] == 1.0  # 3 and 4, back to back
    assert result["slowdown_p50"] == 1.6
    steady = summarise(_samples([0.001] * 50), start=100.0, window=0.5, factor=1.25)
    assert steady["slowed"] == 0
    assert steady["longest_s"] == 0
    assert steady["slowdown_p50"] is None


def test_a_host_slow_for_most_of_the_run_is_measured_against_its_fast_time() -> None:
    # Six windows of ten at 1.5 times: their median is the slow time, the 10th percentile not.
    durations = [0.001] * 10 + [0.0015] * 30 + [0.001] * 10 + [0.0015] * 30 + [0.001] * 20
    result = summarise(_samples(durations, step=0.05), start=100.0, window=0.5, factor=1.25)
    assert result["fast_ms"] == 1.0
    assert result["median_ms"] == 1.5
    assert result["slowed"] == 6
    assert result["longest_s"] == 1.5


def test_samples_before_the_start_count_in_the_fast_time_but_in_no_window() -> None:
    samples = [(99.0, 0.005), *_samples([0.001] * 10)]
    assert window_ratios(samples, start=100.0, window=0.5) == {0: 1.0, 1: 1.0}
    assert summarise([], start=0.0, window=0.5, factor=1.25)["windows"] == 0


def test_the_probe_works_on_the_core_it_is_given() -> None:
    core = min(os.sched_getaffinity(0))
    before = os.sched_getaffinity(0)
    try:
        samples = probe(core, seconds=0.3, period=0.01)
        assert os.sched_getaffinity(0) == {core}
    finally:
        os.sched_setaffinity(0, before)
    assert len(samples) >= 3  # about 30 on an idle machine
    assert all(b > a for (a, _), (b, _) in itertools.pairwise(samples))
    assert all(0 < duration < 0.2 for _, duration in samples)


def test_main_prints_every_core_and_writes_the_samples(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cores.json"
    assert main(["--seconds", "0.6", "--period", "0.01", "--samples", str(out)]) == 0
    printed = capsys.readouterr().out
    written = json.loads(out.read_text())
    cores = {str(c) for c in os.sched_getaffinity(0)}
    assert set(written["cores"]) == cores == set(written["samples"])
    for core in cores:
        assert f"| {core} |" in printed
        assert written["cores"][core]["windows"] >= 1
        assert len(written["samples"][core]) >= 10


def test_a_window_is_slowed_when_any_core_was_and_only_within_the_span() -> None:
    # Core 0 slowed in windows 3 and 4, core 1 in window 7 and in window 12, after the end.
    core0 = _samples([0.001] * 15 + [0.0016] * 10 + [0.001] * 40)
    core1 = _samples([0.001] * 35 + [0.0014] * 5 + [0.001] * 20 + [0.0015] * 5)
    cores = {"0": core0, "1": core1}
    assert slowed_windows(cores, start=100.0, end=105.0) == {3, 4, 7}
    assert slowed_windows(cores, start=100.0, end=105.0, factor=1.5) == {3, 4}
    assert slowed_windows({}, start=100.0, end=105.0) == set()


def test_the_tail_in_spells_counts_the_slowest_percent_sent_in_slowed_windows() -> None:
    cores = {"0": _samples([0.001] * 15 + [0.0016] * 10 + [0.001] * 25)}  # 3 and 4 slowed
    # 1,000 deliveries over the 5 s; the 10 slowest: 6 sent in window 3, 4 in window 8.
    sent = [100.0 + i * 0.005 for i in range(1000)]
    latency = [0.002] * 1000
    for i in (300, 310, 320, 330, 340, 350, 800, 810, 820, 830):
        latency[i] = 0.010
    result = tail_in_spells(sent, latency, cores, start=100.0, end=105.0)
    assert result == {
        "window_ms": 500.0,
        "factor": 1.25,
        "work_ms": {"0": [1.0, 1.0]},
        "windows": 10,
        "slowed": 2,
        "slowest": 10,
        "slowest_in_spells": 6,
    }
    assert tail_in_spells([], [], cores, start=100.0, end=105.0)["slowest"] == 0
    with pytest.raises(ValueError, match="one send time for each latency"):
        tail_in_spells([100.0], [], cores, start=100.0, end=105.0)


def test_beside_a_run_every_core_is_sampled_while_the_caller_goes_on() -> None:
    with Beside(0.3) as beside:
        cores = beside.samples()
    assert set(cores) == {str(c) for c in os.sched_getaffinity(0)}
    for samples in cores.values():
        assert len(samples) >= 2  # about 12 at one work every 25 ms
        assert all(duration > 0 for _, duration in samples)
