"""Numbers out: percentiles, the merged result of the workers, the tables people read."""

from __future__ import annotations

import heapq
import math
import statistics
from array import array
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "compare_table",
    "floor_line",
    "idle_table",
    "latency_summary",
    "load_table",
    "merge_latencies",
    "percentile",
    "progress_line",
    "slowest_percent",
    "tail_spread",
    "waiting_pct",
]

TAIL_WINDOW = 0.05  # seconds: the slices of a run, by send time, that tail_spread counts in


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an ascending sequence (the value p% of samples are <=)."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def merge_latencies(chunks: Iterable[bytes]) -> list[float]:
    merged = array("d")
    for chunk in chunks:
        merged.frombytes(chunk)
    return sorted(merged)


def latency_summary(ordered: Sequence[float]) -> dict[str, float | int | None]:
    """Milliseconds, rounded to the microsecond."""

    def ms(value: float) -> float | None:
        return None if math.isnan(value) else round(value * 1000, 3)

    return {
        "count": len(ordered),
        "p50": ms(percentile(ordered, 50)),
        "p90": ms(percentile(ordered, 90)),
        "p99": ms(percentile(ordered, 99)),
        "max": ms(ordered[-1] if ordered else math.nan),
    }


def slowest_percent(latency: Sequence[float]) -> list[int]:
    """The indices of the slowest 1 % of ``latency`` (at least one, if any): those that make
    a run's p99."""
    if not latency:
        return []
    return heapq.nlargest(max(1, len(latency) // 100), range(len(latency)), latency.__getitem__)


def tail_spread(
    sent: Sequence[float], latency: Sequence[float], window: float = TAIL_WINDOW
) -> dict[str, Any] | None:
    """How a run's slowest 1 % of deliveries (those that make its p99) are spread over it:
    the run cut by send time into ``window``-second slices, and the fewest slices that hold
    half of those deliveries. A handful means the tail came in episodes (a slow disk flush, a
    stall); a tail spread evenly needs about half of the slices it falls in at all
    (``slow_windows``). ``sent[i]`` is when the delivery that took ``latency[i]`` was sent.
    """
    if len(sent) != len(latency):
        raise ValueError("one send time for each latency")
    if not latency:
        return None
    start = min(sent)
    slowest = slowest_percent(latency)
    per_slice: dict[int, int] = {}
    for i in slowest:
        index = int((sent[i] - start) / window)
        per_slice[index] = per_slice.get(index, 0) + 1
    slow = sum(per_slice.values())
    held = half_in = 0
    for count in sorted(per_slice.values(), reverse=True):
        held += count
        half_in += 1
        if 2 * held >= slow:
            break
    return {
        "window_ms": round(window * 1000, 3),
        "windows": int((max(sent) - start) / window) + 1,
        "slow": slow,
        "slow_windows": len(per_slice),
        "half_in": half_in,
    }


def waiting_pct(cpu_s: float | None, run_queue_s: float | None) -> float | None:
    """Of the time a process (or a group of them) was runnable, the share it spent waiting for
    a core, in percent: its run-queue seconds over its CPU seconds plus those."""
    if cpu_s is None or run_queue_s is None or cpu_s + run_queue_s <= 0:
        return None
    return 100 * run_queue_s / (cpu_s + run_queue_s)


def median_range(values: Sequence[float], digits: int = 0) -> str:
    """A probe's table cell: the median of ``values`` and their range, ``517 (464–562)``."""
    spec = f",.{digits}f"
    return f"{statistics.median(values):{spec}} ({min(values):{spec}}–{max(values):{spec}})"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A probe's table in compact Markdown: the header, its rule, a line a row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)


def _n(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if digits:
        return f"{value:,.{digits}f}"
    return f"{round(value):,}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "| " + " | ".join((first, *rest)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def progress_line(
    elapsed: float, phase: str, counts: dict[str, int], rates: tuple[float, float], server: str
) -> str:
    reactions = counts.get("reactions_sent", 0)
    return (
        f"[{elapsed:6.1f}s {phase:<8}] sent {counts.get('sent', 0):>10,}"
        f"  acked {counts.get('acked', 0):>10,}  delivered {counts.get('delivered', 0):>10,}"
        + (f"  reactions acked {counts.get('reactions_acked', 0):,}" if reactions else "")
        + f"  {rates[0]:>8,.0f} msg/s {rates[1]:>8,.0f} deliv/s"
        f"  dups {counts.get('duplicates', 0)}  closed {counts.get('closed', 0)}{server}"
    )


def _with_reactions(results: Iterable[dict[str, Any] | None]) -> bool:
    return any(r and r["config"].get("reactions") for r in results)


def _cpu_us(result: dict[str, Any], key: str) -> str:
    return _n(result.get("server", {}).get(key), 1)


def load_table(results: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """One row per run: throughput, latency, server cost, correctness. Deliveries are of
    chat messages and of reaction events; the reaction column shows when a run had any."""
    reactions = _with_reactions(r for _, r in results)
    header = [
        "target",
        "msgs/s",
        *(["reactions/s"] if reactions else []),
        "deliveries/s",
        "receipt p50/p99 ms",
        "delivery p50/p99 ms",
        "slowest 1 %: half in",
        "CPU µs/delivery",
        "+db",
        "RSS MB",
        "loss",
        "dups",
        "others' cores",
        "waiting for a core %",
    ]
    rows = []
    for label, r in results:
        rec, dl = r["latency_ms"]["receipt"], r["latency_ms"]["delivery"]
        server = r.get("server", {})
        rows.append(
            [
                label,
                _n(r["throughput"]["msgs_per_s"]),
                *([_n(r["throughput"].get("reactions_per_s"))] if reactions else []),
                _n(r["throughput"]["deliveries_per_s"]),
                f"{_n(rec['p50'], 1)} / {_n(rec['p99'], 1)}",
                f"{_n(dl['p50'], 1)} / {_n(dl['p99'], 1)}",
                _tail(r.get("delivery_tail"), r.get("host_spells")),
                _cpu_us(r, "cpu_us_per_delivery"),
                _cpu_us(r, "with_db_cpu_us_per_delivery"),
                _n((server.get("rss_kb_end") or 0) / 1024) if server else "-",
                str(r["loss"]["lost"]),
                str(r["loss"]["duplicates"]),
                _n(r.get("other_processes_cores"), 2),
                _waiting(r),
            ]
        )
    return _table(header, rows)


def _tail(tail: dict[str, Any] | None, spells: dict[str, Any] | None = None) -> str:
    """``tail_spread``'s figure as read: ``4 of 300 × 50 ms``; with the host's spells timed
    beside the run (``bench.steadiness``), how many of the slowest 1 % they hold and in how
    many of the windows they were: ``4 of 300 × 50 ms; 550 in spells (10 of 30 × 500 ms)``."""
    if not tail:
        return "-"
    text = f"{tail['half_in']} of {tail['windows']} × {_n(tail['window_ms'])} ms"
    if spells:
        text += (
            f"; {_n(spells['slowest_in_spells'])} in spells ({spells['slowed']} of "
            f"{spells['windows']} × {_n(spells['window_ms'])} ms)"
        )
    return text


def _waiting(result: dict[str, Any]) -> str:
    """The server's share of its runnable time spent waiting for a core, its database's
    (when watched) and the generator's: ``server / db / generator``."""
    server, generator = result.get("server", {}), result.get("generator", {})
    shares = [waiting_pct(server.get("cpu_s"), server.get("run_queue_s"))]
    if "db_cpu_s" in server:
        shares.append(waiting_pct(server.get("db_cpu_s"), server.get("db_run_queue_s")))
    shares.append(waiting_pct(generator.get("cpu_s"), generator.get("run_queue_s")))
    return " / ".join(_n(share) for share in shares)


def floor_line(row: dict[str, Any]) -> str:
    """Under the compare table: each half-load run's p99 beside the commit floor's p99
    measured right after it (``bench.commit_floor``; flushes back to back, then, where the
    row has them, paced for the half-load rate), and the floor runs' stalls."""

    def ms(value: float | None) -> str:
        return _n(value, 1 if value is None or value >= 1 else 2)

    paced = row.get("paced_floor_runs") or []
    columns = [row["half_runs"], row["floor_runs"], *([paced] if paced else [])]
    figures = [
        " / ".join(
            [ms(run["latency_ms"]["delivery"]["p99"]), *(ms(f["wait_ms"]["p99"]) for f in floors)]
        )
        for run, *floors in zip(*columns, strict=False)
    ]
    stalls = [f"{floor['stalls']} ({floor['stalled_pct']} %)" for floor in row["floor_runs"]]
    after = "the commit floor's p99 right after" + (
        " (back to back / paced for the half load)" if paced else ""
    )
    return (
        f"{row['label']} @½ p99 / {after}, ms: {', '.join(figures)}; "
        f"flushes of 10 ms or more in the floor's runs: {', '.join(stalls)}"
    )


def idle_table(results: Sequence[tuple[str, dict[str, Any]]]) -> str:
    header = ["target", "sessions", "open at end", "server RSS before/after MB", "KB/session"]
    rows = []
    for label, r in results:
        s = r["server"]
        rows.append(
            [
                label,
                _n(r["sessions"]),
                _n(r["open_at_end"]),
                f"{_n(s['rss_kb_before'] / 1024, 1)} / {_n(s['rss_kb_after'] / 1024, 1)}",
                _n(s["rss_kb_per_session"], 2),
            ]
        )
    return _table(header, rows)


def compare_table(rows: Sequence[dict[str, Any]]) -> str:
    """The summary table: one row per backend (and reaction mix), closed-loop peak and
    latency at half of it (of several runs there, the median p99's run, and the range of the
    p99s in brackets)."""
    reactions = _with_reactions(row["peak"] for row in rows)
    header = [
        "target",
        "msgs/s",
        *(["reactions/s"] if reactions else []),
        "deliveries/s",
        "p50 / p99 ms",
        "@½ rate msgs/s",
        "@½ p50 / p99 ms",
        "CPU µs/delivery",
        "loss",
        "dups",
    ]
    out = []
    for row in rows:
        peak, half = row["peak"], row.get("half")
        if peak is None:
            out.append([row["label"], "failed", *["-"] * (len(header) - 2)])
            continue
        dl = peak["latency_ms"]["delivery"]
        cpu = _cpu_us(peak, "cpu_us_per_delivery")
        with_db = peak.get("server", {}).get("with_db_cpu_us_per_delivery")
        if with_db is not None:
            cpu = f"{cpu} (+db {_n(with_db, 1)})"
        halves = row["half_runs"]
        lost = peak["loss"]["lost"] + sum(run["loss"]["lost"] for run in halves)
        dups = peak["loss"]["duplicates"] + sum(run["loss"]["duplicates"] for run in halves)
        if half:
            hdl = half["latency_ms"]["delivery"]
            p99s = [r["latency_ms"]["delivery"]["p99"] for r in halves]
            p99s = [v for v in p99s if v is not None]
            spread = f" ({_n(min(p99s), 1)}–{_n(max(p99s), 1)})" if len(p99s) > 1 else ""
            half_cells = [
                _n(half["throughput"]["msgs_per_s"]),
                f"{_n(hdl['p50'], 1)} / {_n(hdl['p99'], 1)}{spread}",
            ]
        else:
            half_cells = ["-", "-"]
        out.append(
            [
                row["label"],
                _n(peak["throughput"]["msgs_per_s"]),
                *([_n(peak["throughput"].get("reactions_per_s"))] if reactions else []),
                _n(peak["throughput"]["deliveries_per_s"]),
                f"{_n(dl['p50'], 1)} / {_n(dl['p99'], 1)}",
                *half_cells,
                cpu,
                str(lost),
                str(dups),
            ]
        )
    return _table(header, out)
