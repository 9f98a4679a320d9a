"""A tally, once flushed, leaves its metric as the metric's own calls would have."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from ieum_chat.observability import metrics
from ieum_chat.observability.tallies import CounterTally, HistogramTally

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# On a bound, between bounds, below the first, past the last finite one, zero and negative.
_VALUES = (0.0005, 0.0007, 0.0001, 3.0, 0.0, -1.0, 0.001, 0.0031, 2.5, 0.07, 0.0031, 99.0)


def _samples(registry: CollectorRegistry) -> dict[str, float]:
    return {
        f"{s.name}{sorted(s.labels.items())}": s.value
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


def _pair(labels: tuple[str, ...] = ()) -> tuple[CollectorRegistry, Histogram, Histogram]:
    registry = CollectorRegistry()
    direct = Histogram("direct_seconds", "d", labels, buckets=_BUCKETS, registry=registry)
    tallied = Histogram("tallied_seconds", "t", labels, buckets=_BUCKETS, registry=registry)
    return registry, direct, tallied


def _compare(registry: CollectorRegistry) -> None:
    samples = _samples(registry)
    direct = {k.removeprefix("direct"): v for k, v in samples.items() if k.startswith("direct")}
    tallied = {k.removeprefix("tallied"): v for k, v in samples.items() if k.startswith("tallied")}
    assert direct.keys() == tallied.keys()
    for key, value in direct.items():
        if key.startswith("_seconds_sum"):
            assert tallied[key] == pytest.approx(value, rel=1e-12)
        else:
            assert tallied[key] == value, key


def test_a_flushed_histogram_tally_matches_the_histograms_own_observations() -> None:
    registry, direct, tallied = _pair()
    tally = HistogramTally(tallied)
    for round_ in range(3):
        for value in _VALUES[round_:]:
            direct.observe(value)
            tally.observe(value)
        tally.flush()
        _compare(registry)
    tally.flush()  # nothing kept since: nothing added
    _compare(registry)


def test_a_labelled_childs_tally_counts_for_that_child_only() -> None:
    registry, direct, tallied = _pair(("kind",))
    tally = HistogramTally(tallied.labels("messages"))
    for value in _VALUES:
        direct.labels("messages").observe(value)
        tally.observe(value)
    direct.labels("changes").observe(0.2)
    tallied.labels("changes").observe(0.2)
    assert 'tallied_seconds_count{kind="messages"} 0.0' in generate_latest(registry).decode()
    tally.flush()
    _compare(registry)


def test_nan_goes_to_the_sum_and_no_bucket_as_the_histogram_has_it() -> None:
    registry, direct, tallied = _pair()
    tally = HistogramTally(tallied)
    direct.observe(math.nan)
    tally.observe(math.nan)
    tally.flush()
    samples = _samples(registry)
    assert math.isnan(samples["direct_seconds_sum[]"])
    assert math.isnan(samples["tallied_seconds_sum[]"])
    assert samples["tallied_seconds_count[]"] == samples["direct_seconds_count[]"] == 0


def test_a_counter_tally_adds_what_it_kept_once() -> None:
    registry = CollectorRegistry()
    counter = Counter("things", "t", registry=registry)
    tally = CounterTally(counter)
    tally.inc()
    tally.inc(4)
    assert registry.get_sample_value("things_total") == 0
    tally.flush()
    tally.flush()
    assert registry.get_sample_value("things_total") == 5


def test_a_histogram_that_keeps_its_buckets_otherwise_is_refused() -> None:
    class Elsewhere:
        _upper_bounds = (1.0, math.inf)
        _buckets = (object(),)

    with pytest.raises(TypeError, match="does not keep its buckets"):
        HistogramTally(Elsewhere())


def test_the_metrics_show_the_message_paths_tallies_at_every_answer() -> None:
    stored = metrics.counter_tally(metrics.MESSAGES_STORED)
    committed = metrics.histogram_tally(metrics.SEND_TO_COMMIT)

    def scraped(name: str) -> float:
        for line in metrics.render().decode().splitlines():
            if line.startswith(f"{name} "):
                return float(line.split()[1])
        raise AssertionError(name)

    before = scraped("ieum_messages_stored_total"), scraped("ieum_send_commit_seconds_count")
    stored.inc(3)
    committed.observe(0.002)
    committed.observe(0.2)
    after = scraped("ieum_messages_stored_total"), scraped("ieum_send_commit_seconds_count")
    assert after == (before[0] + 3, before[1] + 2)
