"""Counts and timings the message path takes many times a second, kept in plain fields and
added to their prometheus metrics in bulk.

prometheus-client's ``Counter.inc()`` is Python code behind a lock, about 4,300 instructions a
call, and ``Histogram.observe()`` about 9,100 (a loop over the buckets, each bucket's value
behind its lock): for a message received, stored and delivered to both members, about 22,000,
a tenth of what the server executes for it. Here an increment adds to an int and an
observation to a bucket's count and the sum. :meth:`CounterTally.flush` and
:meth:`HistogramTally.flush` hand what was kept to the metric, which from then on shows it as
if each count and observation had been made there (buckets add up; the sum is added once, so
its last bits of floating-point rounding may differ). ``metrics.sample`` flushes every tally
before each ``/metrics`` answer and, with several worker processes, every
``metrics.SAMPLE_INTERVAL`` seconds and as a worker ends.

A tally is for one thread: the event loop's, where the message path runs. Compiled, its
fields change without another thread running in between; uncompiled, two threads could lose
each other's increments.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CounterTally", "HistogramTally"]


class CounterTally:
    """What is counted for ``counter`` (a prometheus ``Counter``, or a labelled child of one)
    and not yet added to it."""

    def __init__(self, counter: Any) -> None:
        self.counter = counter
        self.pending = 0

    def inc(self, amount: int = 1) -> None:
        self.pending += amount

    def flush(self) -> None:
        pending = self.pending
        if pending:
            self.pending = 0
            self.counter.inc(pending)


class HistogramTally:
    """The observations for ``histogram`` (a prometheus ``Histogram``, or a labelled child of
    one) not yet added to it: a count a bucket, as the histogram keeps them (each value in the
    first bucket whose bound it does not exceed), and their sum."""

    def __init__(self, histogram: Any) -> None:
        # The histogram's own bounds (the last is +Inf) and its bucket and sum values: what
        # its observe() adds to, which flush() adds to in bulk.
        bounds = [float(bound) for bound in histogram._upper_bounds]
        if len(histogram._buckets) != len(bounds) or not hasattr(histogram, "_sum"):
            raise TypeError(f"{histogram!r} does not keep its buckets as this tally expects")
        self.histogram = histogram
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.total = 0.0
        self.observed = 0

    def observe(self, value: float) -> None:
        self.total += value
        self.observed += 1
        for index, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[index] += 1
                return
        # NaN exceeds no bound and is below none: in the sum only, as the histogram does

    def flush(self) -> None:
        if not self.observed:
            return
        histogram = self.histogram
        counts = self.counts
        for index in range(len(counts)):
            count = counts[index]
            if count:
                counts[index] = 0
                histogram._buckets[index].inc(count)
        total = self.total
        self.total = 0.0
        self.observed = 0
        histogram._sum.inc(total)
