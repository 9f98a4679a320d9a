"""How steady the machine's cores are: the same fixed work, timed on each core over time.

A virtual machine's core can run slower for a while when the host gives the physical core to
something else as well (another guest on its other hyperthread, say): the guest sees no steal
time, only its code taking longer. A server at 70 % of two cores that loses a third of one core
for a second builds a queue, and a run's p99 is then that second's. This times a fixed piece
of pure-Python work (about 0.75 ms on a 2-core AMD EPYC guest) on every core, one process
pinned to each, in the process's own CPU time: waiting for a core does not count, running
slower does. Per ``--window`` seconds each core's median is compared with the core's fast time,
the 10th percentile of all its samples (a host slow for more than half of a run would make
its median the slow time); a window at ``--factor`` times that or more is slowed. A host slow
for the whole run shows in the work's time itself, not in its windows.

Alone, the work runs back to back and tells how steady the machine is at the moment. Beside a
run it starts one every 25 ms (3 to 6 % of each core): ``bench run --steadiness`` and ``bench
compare --steadiness`` do so (:class:`Beside`) and report how many of the run's slowest 1 % of
deliveries were sent in a window with a slowed core (:func:`tail_in_spells`, ``host_spells``
in the JSON); ``--period 0.025 --samples FILE`` here writes the samples, on
``CLOCK_MONOTONIC`` as the generator's send times are, for another run. (A work that follows
a sleep may take longer than one that follows another: on that guest 1.3 ms against 0.75 on
an idle machine. Each window is compared with the same core's fast time at the same period.)

    python -m bench.steadiness                          # 30 s on every core, back to back
    python -m bench.steadiness --seconds 60 --period 0.025 --samples /tmp/cores.json
    python -m bench run --seed seed.json --rate 6000 --steadiness
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from bench._args import _positive_number, _seconds
from bench._report import markdown_table, slowest_percent

__all__ = [
    "BESIDE_PERIOD",
    "WORK_STEPS",
    "Beside",
    "Samples",
    "fast_time",
    "main",
    "probe",
    "slowed_windows",
    "summarise",
    "tail_in_spells",
    "window_ratios",
    "work_ms",
]

WORK_STEPS = 20_000  # iterations of the fixed work
BESIDE_PERIOD = 0.025  # seconds from one work's start to the next beside a run
WINDOW = 0.5  # seconds
FACTOR = 1.25  # a window's median at this many times the core's fast time, or more, is slowed
FAST = 10  # the percentile of a core's work times taken as its fast time

Samples = list[tuple[float, float]]


def _work() -> int:
    total = 0
    for i in range(WORK_STEPS):
        total += i * i
    return total


def probe(core: int, seconds: float, period: float) -> Samples:
    """On ``core`` alone, for ``seconds``: the fixed work every ``period`` seconds, each as
    (``time.monotonic()`` at its end, the CPU seconds it took)."""
    os.sched_setaffinity(0, {core})
    samples: Samples = []
    end = time.monotonic() + seconds
    while (now := time.monotonic()) < end:
        started = time.thread_time()
        _work()
        samples.append((time.monotonic(), time.thread_time() - started))
        if period > 0:
            time.sleep(max(0.0, period - (time.monotonic() - now)))
    return samples


def fast_time(samples: Sequence[tuple[float, float]]) -> float:
    """The ``FAST``th percentile of the samples' work times: the core's time when unhindered."""
    ordered = sorted(d for _, d in samples)
    return ordered[len(ordered) * FAST // 100]


def work_ms(samples: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    """A core's fast and median work times in milliseconds (None without samples)."""
    if not samples:
        return None
    median = statistics.median(d for _, d in samples)
    return round(fast_time(samples) * 1000, 3), round(median * 1000, 3)


def window_ratios(
    samples: Sequence[tuple[float, float]], start: float, window: float
) -> dict[int, float]:
    """Each ``window``-second slice from ``start`` (by index) with its median work time over
    the fast time of all the samples (:func:`fast_time`)."""
    if not samples:
        return {}
    overall = fast_time(samples)
    slices: dict[int, list[float]] = {}
    for at, duration in samples:
        if at >= start:
            slices.setdefault(int((at - start) / window), []).append(duration)
    return {index: statistics.median(values) / overall for index, values in sorted(slices.items())}


def summarise(
    samples: Sequence[tuple[float, float]], start: float, window: float, factor: float
) -> dict[str, Any]:
    """One core's run: its fast and median work times, how many windows were slowed (a
    median at ``factor`` times the core's fast time or more), the longest run of slowed
    windows in seconds, and the median slowdown of the slowed ones."""
    ratios = window_ratios(samples, start, window)
    slowed = [index for index, ratio in ratios.items() if ratio >= factor]
    fast, median = work_ms(samples) or (None, None)
    longest = run = 0
    previous = None
    for index in slowed:
        run = run + 1 if previous is not None and index == previous + 1 else 1
        longest = max(longest, run)
        previous = index
    return {
        "fast_ms": fast,
        "median_ms": median,
        "windows": len(ratios),
        "slowed": len(slowed),
        "slowed_pct": round(100 * len(slowed) / len(ratios), 1) if ratios else None,
        "longest_s": round(longest * window, 3),
        "slowdown_p50": round(statistics.median(ratios[i] for i in slowed), 2) if slowed else None,
    }


def slowed_windows(
    cores: Mapping[str, Sequence[tuple[float, float]]],
    start: float,
    end: float,
    *,
    window: float = WINDOW,
    factor: float = FACTOR,
) -> set[int]:
    """The ``window``-second slices from ``start`` to ``end`` (by index) in which any core's
    median work time was ``factor`` times its fast time or more."""
    last = (end - start) / window
    return {
        index
        for samples in cores.values()
        for index, ratio in window_ratios(samples, start, window).items()
        if ratio >= factor and index < last
    }


def tail_in_spells(
    sent: Sequence[float],
    latency: Sequence[float],
    cores: Mapping[str, Sequence[tuple[float, float]]],
    start: float,
    end: float,
    *,
    window: float = WINDOW,
    factor: float = FACTOR,
) -> dict[str, Any]:
    """How much of a run's tail the host's spells hold: of the windows from ``start`` to
    ``end``, those with a slowed core, and how many of the slowest 1 % of the deliveries
    (``latency[i]``, sent at ``sent[i]``) were sent in them."""
    if len(sent) != len(latency):
        raise ValueError("one send time for each latency")
    slowed = slowed_windows(cores, start, end, window=window, factor=factor)
    slowest = slowest_percent(latency)
    held = sum(1 for i in slowest if int((sent[i] - start) / window) in slowed)
    return {
        "window_ms": round(window * 1000, 3),
        "factor": factor,
        # Each core's fast and median work time: a host slow all along shows here.
        "work_ms": {core: list(times) for core, s in cores.items() if (times := work_ms(s))},
        "windows": math.ceil((end - start) / window),
        "slowed": len(slowed),
        "slowest": len(slowest),
        "slowest_in_spells": held,
    }


class Beside:
    """The fixed work on every core, every ``period`` seconds for ``seconds``, in a process
    pinned to each, while the caller goes on; ``samples`` waits for them. As a context
    manager it ends them at its exit, should the caller give up before."""

    def __init__(self, seconds: float, period: float = BESIDE_PERIOD) -> None:
        self._cores = sorted(os.sched_getaffinity(0))
        self._pool = get_context("spawn").Pool(len(self._cores))
        self._runs = [
            self._pool.apply_async(probe, (core, seconds, period)) for core in self._cores
        ]

    def samples(self) -> dict[str, Samples]:
        return {str(c): run.get() for c, run in zip(self._cores, self._runs, strict=True)}

    def __enter__(self) -> Beside:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.terminate()
        self._pool.join()


def measure(seconds: float, period: float, window: float, factor: float) -> dict[str, Any]:
    start = time.monotonic()
    with Beside(seconds, period) as beside:
        cores = beside.samples()
    return {
        "seconds": seconds,
        "period_s": period,
        "window_s": window,
        "factor": factor,
        "cores": {
            core: summarise(samples, start, window, factor) for core, samples in cores.items()
        },
        "samples": cores,
    }


def render(result: dict[str, Any]) -> str:
    header = [
        "core",
        "work ms (fast / median)",
        f"windows of {result['window_s']:g} s",
        f"slowed (≥ {result['factor']:g}×)",
        "longest slowed s",
        "median slowdown",
    ]
    return markdown_table(
        header,
        (
            [
                core,
                f"{c['fast_ms']} / {c['median_ms']}",
                str(c["windows"]),
                f"{c['slowed']} ({c['slowed_pct']} %)",
                str(c["longest_s"]),
                str(c["slowdown_p50"]) if c["slowdown_p50"] else "-",
            ]
            for core, c in result["cores"].items()
        ),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.steadiness", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--seconds", type=_positive_number, default=30.0, help="how long (30)")
    parser.add_argument(
        "--period", type=_seconds, default=0.0, help="seconds from one work's start to the next (0)"
    )
    parser.add_argument(
        "--window", type=_positive_number, default=WINDOW, help="seconds a window (0.5)"
    )
    parser.add_argument("--factor", type=_positive_number, default=FACTOR, help="slowed at (1.25)")
    parser.add_argument("--samples", type=Path, help="JSON of every core's samples")
    args = parser.parse_args(argv)
    result = measure(args.seconds, args.period, args.window, args.factor)
    samples = result.pop("samples")
    print(render(result))
    if args.samples is not None:
        args.samples.write_text(json.dumps({**result, "samples": samples}))
        print(f"samples written to {args.samples}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
