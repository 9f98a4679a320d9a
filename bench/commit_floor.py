"""The disk's commit floor as a message meets it: the wait for a flush that began after it.

``pg_test_fsync`` reports the mean time of one 8 kB write and its ``fdatasync``: what a commit
costs on a quiet disk. But a disk's flushes are not all alike (a virtual machine's disk may
stall one for tens of milliseconds a few times a minute), and a message that arrives during
such a stall waits it out whatever the server does: a durable commit needs a flush that began
after the message arrived. So the floor that a p99 of messages is held to is the p99 of that
wait over the moments messages arrive, not the mean flush.

This writes 8 kB and calls ``fdatasync`` back to back (``pg_test_fsync``'s "one 8kB write"
test, on a file of one WAL segment's size in ``--dir``, which should be on the file system
PostgreSQL's WAL is on) for ``--duration`` seconds, then reports each flush's duration and the
wait of arrivals spread evenly over the run: from an arrival to the end of the first flush that
began after it (the rest of the flush under way, then a whole one).

A disk kept busy that way may answer faster than one that a commit finds idle: a virtual
machine's disk has been seen to take 0.06 ms for a flush right after another and about 1 ms
for one after a pause of a millisecond. With ``--rate`` the flushes are paced as a group commit
would make them for that many arrivals a second, evenly spaced: a flush starts as soon as an
arrival is waiting (the loop sleeps until the next one otherwise) and covers every arrival
before its start, and the waits are those arrivals'.

    python -m bench.commit_floor                      # 15 s in /var/tmp
    python -m bench.commit_floor --duration 30 --dir /var/lib/postgresql
    python -m bench.commit_floor --rate 5000          # paced for 5,000 arrivals a second
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench._report import percentile

__all__ = ["STALL", "arrival_waits", "flush_spans", "main", "measure", "summarise"]

BLOCK = 8192  # pg_test_fsync's write size, PostgreSQL's page
SEGMENT = 16 << 20  # the file one WAL segment is
STALL = 0.010  # seconds: a flush at least this long counts as a stall
ARRIVAL_STEP = 20e-6  # seconds between the evenly spread arrivals


def flush_spans(
    directory: Path, duration: float, rate: float | None = None
) -> list[tuple[float, float]]:
    """(start, end) of each write-and-``fdatasync`` of ``BLOCK`` bytes for ``duration``
    seconds, on a fresh segment-sized file in ``directory`` (removed after): back to back, or
    with ``rate`` as a group commit for that many arrivals a second (the first at the first
    flush's start) would make them."""
    pace = 1.0 / rate if rate else 0.0
    fd, name = tempfile.mkstemp(prefix="ieum-floor-", dir=directory)
    try:
        # Written out and flushed first, as a recycled WAL segment is: the loop then measures
        # the flush of a page, not the allocation of new blocks.
        block = b"\0" * BLOCK
        for offset in range(0, SEGMENT, BLOCK):
            os.pwrite(fd, block, offset)
        os.fsync(fd)
        page = os.urandom(BLOCK)
        spans: list[tuple[float, float]] = []
        offset = 0
        clock = time.monotonic
        stop = clock() + duration
        due = clock()  # the first arrival that no flush has started after yet
        while True:
            start = clock()
            if pace and due > start:
                time.sleep(due - start)  # nothing to commit until then
                start = clock()
            if start >= stop:
                break
            if pace:
                due += pace * (int((start - due) / pace) + 1)
            os.pwrite(fd, page, offset)
            os.fdatasync(fd)
            spans.append((start, clock()))
            offset = (offset + BLOCK) % SEGMENT
        return spans
    finally:
        os.close(fd)
        os.unlink(name)


def arrival_waits(spans: Sequence[tuple[float, float]], step: float = ARRIVAL_STEP) -> list[float]:
    """For arrivals every ``step`` seconds from the first flush's start up to the last's, the
    time from each to the end of the first flush that started at or after it; ascending."""
    if len(spans) < 2:
        return []
    starts = [start for start, _ in spans]
    first, last = starts[0], starts[-1]
    waits = []
    for i in range(int((last - first) / step) + 1):
        arrival = first + i * step
        if arrival > last:  # rounding: no flush starts after it
            break
        span = spans[bisect.bisect_left(starts, arrival)]
        waits.append(span[1] - arrival)
    waits.sort()
    return waits


def summarise(
    spans: Sequence[tuple[float, float]], duration: float, step: float = ARRIVAL_STEP
) -> dict[str, Any]:
    """Milliseconds: each flush's p50 / p99 / max, the wait p50 / p99 / p99.9 of arrivals every
    ``step`` seconds, and the share of the run spent in flushes of ``STALL`` or longer."""
    flushes = sorted(end - start for start, end in spans)
    waits = arrival_waits(spans, step)

    def ms(ordered: Sequence[float], p: float) -> float | None:
        return round(percentile(ordered, p) * 1000, 3) if ordered else None

    stalled = sum(d for d in flushes if d >= STALL)
    return {
        "flushes": len(flushes),
        "flushes_per_s": round(len(flushes) / duration, 1) if duration > 0 else None,
        "flush_ms": {
            "p50": ms(flushes, 50),
            "p99": ms(flushes, 99),
            "max": round(flushes[-1] * 1000, 3) if flushes else None,
        },
        "wait_ms": {"p50": ms(waits, 50), "p99": ms(waits, 99), "p99.9": ms(waits, 99.9)},
        "stalls": sum(1 for d in flushes if d >= STALL),
        "stalled_pct": round(100 * stalled / duration, 3) if duration > 0 else None,
    }


def measure(directory: Path, duration: float, rate: float | None = None) -> dict[str, Any]:
    """One run: the flushes for ``duration`` seconds in ``directory``, back to back or paced
    for ``rate`` arrivals a second, summarised."""
    spans = flush_spans(directory, duration, rate)
    out = summarise(spans, duration, 1.0 / rate if rate else ARRIVAL_STEP)
    out["dir"] = str(directory)
    out["duration_s"] = duration
    out["rate"] = rate
    return out


def render(result: dict[str, Any]) -> str:
    f, w = result["flush_ms"], result["wait_ms"]
    paced = f", paced for {result['rate']:,.0f} arrivals/s" if result.get("rate") else ""
    return (
        f"commit floor ({result['dir']}, {result['duration_s']:g} s{paced}): "
        f"{result['flushes']:,} flushes, each p50 {f['p50']} / p99 {f['p99']} / max {f['max']} ms; "
        f"{result['stalls']} of {STALL * 1000:g} ms or more, {result['stalled_pct']} % of the run; "
        f"an arrival's wait p50 {w['p50']} / p99 {w['p99']} / p99.9 {w['p99.9']} ms"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.commit_floor", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--duration", type=float, default=15.0, help="seconds (default 15)")
    parser.add_argument(
        "--dir", type=Path, default=Path("/var/tmp"), help="where the file goes (/var/tmp)"
    )
    parser.add_argument(
        "--rate", type=float, help="arrivals a second: flush as a group commit would for them"
    )
    parser.add_argument("--json", action="store_true", help="the result as JSON")
    args = parser.parse_args(argv)
    if args.duration <= 0:
        parser.error("--duration must be positive")
    if args.rate is not None and args.rate <= 0:
        parser.error("--rate must be positive")
    result = measure(args.dir, args.duration, args.rate)
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
