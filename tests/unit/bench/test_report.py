"""Percentiles and summaries of the generator's results."""

from __future__ import annotations

import math
from array import array

from bench._report import latency_summary, merge_latencies, percentile


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
