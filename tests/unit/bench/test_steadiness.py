"""The cores' steadiness: windows of a fixed work's times against the core's own median."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import pytest
from bench.steadiness import main, probe, summarise, window_ratios


def _samples(
    durations: list[float], start: float = 100.0, step: float = 0.1
) -> list[tuple[float, float]]:
    return [(start + i * step, d) for i, d in enumerate(durations)]


def test_a_window_is_its_median_over_the_whole_runs_median() -> None:
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


def test_samples_before_the_start_count_in_the_median_but_in_no_window() -> None:
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
