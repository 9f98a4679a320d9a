"""The two runs the generator knows: a message load, and a crowd of idle sessions."""

from __future__ import annotations

import contextlib
import datetime
import math
import os
import time
import uuid
from array import array
from dataclasses import dataclass
from typing import Any

from ._fleet import BenchError, Fleet, Progress
from ._proc import flush_dirty_pages, machine_info, raise_nofile_limit, wait_for_quiet
from ._report import latency_summary, merge_latencies, progress_line, tail_spread
from ._targets import Couple, Target
from ._watch import Sample, ServerWatch
from ._worker import Schedule, WorkerConfig
from .steadiness import Beside, Samples, tail_in_spells

__all__ = ["IdleSpec", "LoadSpec", "run_idle", "run_load"]

_START_DELAY = 0.5  # seconds between "start" and the first SEND, for every worker to be waiting
_REPORT_GRACE = 30.0  # seconds after the drain before a silent worker is given up on


@dataclass(frozen=True, slots=True)
class LoadSpec:
    target: Target
    couples: list[Couple]
    procs: int = 2
    window: int = 1  # closed loop: SENDs awaiting their RECEIPT, per member
    rate: float = 0.0  # open loop: messages/s over all members; 0 = closed loop
    duration: float = 10.0
    warmup: float = 2.0
    drain: float = 10.0
    message_bytes: int = 32
    reactions: float = 0.0  # fraction of SENDs that are reactions instead of chat messages
    server_pid: int | None = None
    db_match: tuple[str, ...] = ()
    connect_timeout: float = 60.0
    progress: bool = True
    label: str = ""
    quiet_wait: float = 0.0  # seconds to wait for a quiet machine before the traffic starts
    steadiness: bool = False  # time a fixed work on every core beside the run (bench.steadiness)


@dataclass(frozen=True, slots=True)
class IdleSpec:
    target: Target
    couples: list[Couple]  # both members of each open a session
    procs: int = 2
    hold: float = 10.0
    settle: float = 3.0
    server_pid: int | None = None
    connect_concurrency: int = 64
    connect_timeout: float = 120.0
    progress: bool = True
    label: str = ""


def _now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _server_status(watch: ServerWatch, last: list[Sample]) -> str:
    if watch.pid is None:
        return ""
    sample = watch.sample(with_db=False)
    text = ""
    if last and sample.server_cpu is not None and last[0].server_cpu is not None:
        wall = sample.machine.total - last[0].machine.total
        cores = os.cpu_count() or 1
        if wall > 0:
            pct = 100 * (sample.server_cpu - last[0].server_cpu) / (wall / cores)
            text += f"  server cpu {pct:4.0f}%"
    if sample.server_rss_kb:
        text += f" rss {sample.server_rss_kb / 1024:,.0f} MB"
    last[:] = [sample]
    return text


def run_load(spec: LoadSpec) -> dict[str, Any]:
    if not spec.couples:
        raise BenchError("no couples to drive")
    raise_nofile_limit()
    members = 2 * len(spec.couples)
    base = WorkerConfig(
        target=spec.target,
        couples=[],
        first_index=[],
        mode="load",
        run_id=uuid.uuid4().hex[:8],
        window=spec.window,
        rate=spec.rate / members if spec.rate > 0 else 0.0,
        message_bytes=spec.message_bytes,
        reactions=spec.reactions,
        connect_timeout=spec.connect_timeout,
    )
    watch = ServerWatch(spec.server_pid, spec.db_match)
    progress = Progress(spec.progress)
    # Before the sessions open: a broker may close a silent session after a while (RabbitMQ's
    # Web-STOMP does after 60 s), and the sessions are silent until the start.
    flushed = flush_dirty_pages()
    busy_before = wait_for_quiet(spec.quiet_wait) if spec.quiet_wait > 0 else None
    started_at = _now_iso()
    samples: dict[str, Sample] = {}
    beside: Beside | None = None
    cores: dict[str, Samples] | None = None
    with Fleet(base, spec.couples, spec.procs) as fleet, contextlib.ExitStack() as stack:
        ready = fleet.wait_ready(spec.connect_timeout + 30, progress.show)
        failed = sum(r["failed"] for r in ready)
        if failed:
            first = next(f for r in ready for f in r["failures"])
            raise BenchError(f"{failed} of {members} sessions failed to open: {first}")
        t0 = time.monotonic() + _START_DELAY
        sched = Schedule(t0, t0 + spec.warmup, t0 + spec.warmup + spec.duration, spec.drain)
        fleet.broadcast(("start", sched))
        if spec.steadiness:
            # Until a little past the window's end; it starts well before it (the warm-up).
            beside = stack.enter_context(Beside(sched.measure_to + 1.0 - time.monotonic()))
        shown = [(t0, 0, 0)]
        last_sample: list[Sample] = []

        def on_message(index: int, kind: str, payload: Any) -> None:
            if kind != "progress":
                return
            now = time.monotonic()
            totals = fleet.totals()
            then, acked, delivered = shown[0]
            if now - then < 0.9:
                return
            rates = (
                (totals["acked"] - acked) / (now - then),
                (totals["delivered"] - delivered) / (now - then),
            )
            shown[0] = (now, totals["acked"], totals["delivered"])
            phase = (
                "warm-up"
                if now < sched.measure_from
                else "measure"
                if now < sched.measure_to
                else "drain"
            )
            server = _server_status(watch, last_sample)
            progress.show(progress_line(now - t0, phase, totals, rates, server), force=True)

        give_up = sched.measure_to + spec.drain + _REPORT_GRACE
        while len(fleet.results) < len(fleet.conns):
            now = time.monotonic()
            if "from" not in samples and now >= sched.measure_from:
                samples["from"] = watch.sample()
            if "to" not in samples and now >= sched.measure_to:
                samples["to"] = watch.sample()
            if now > give_up:
                raise BenchError("workers did not report after the drain")
            wake = [now + 0.25]
            wake += [sched.measure_from] if "from" not in samples else []
            wake += [sched.measure_to] if "to" not in samples else []
            fleet.poll(min(wake) - now, on_message)
        progress.done()
        results = [fleet.results[i] for i in range(len(fleet.conns))]
        if beside is not None:
            cores = beside.samples()
    if not any(r["counts"]["sent"] for r in results):
        errors = [e for r in results for e in r["errors"]]
        raise BenchError(f"no message was sent: {errors[0] if errors else 'no session'}")
    result = _load_result(spec, results, samples, started_at)
    if cores is not None:
        sent, latency = _partner_deliveries(results)
        result["host_spells"] = tail_in_spells(
            sent, latency, cores, sched.measure_from, sched.measure_to
        )
    result["machine_busy_before_pct"] = None if busy_before is None else round(busy_before, 1)
    result["flushed_before"] = flushed
    return result


def _delta(results: list[dict[str, Any]], key: str) -> int:
    return sum(int(r["window"]["to"][key] - r["window"]["from"][key]) for r in results)


def _partner_deliveries(results: list[dict[str, Any]]) -> tuple[array[float], array[float]]:
    """The send times and latencies of every worker's partner deliveries, in the same order
    (each worker sent its own in the same order)."""
    sent, latency = array("d"), array("d")
    for result in results:
        sent.frombytes(result["delivery_sent"])
        latency.frombytes(result["delivery_latency"])
    return sent, latency


def _delivery_tail(results: list[dict[str, Any]]) -> dict[str, Any] | None:
    """``tail_spread`` of the partner deliveries of every worker."""
    return tail_spread(*_partner_deliveries(results))


def _load_result(
    spec: LoadSpec,
    results: list[dict[str, Any]],
    samples: dict[str, Sample],
    started_at: str,
) -> dict[str, Any]:
    window_s = max(r["window"]["to"]["at"] - r["window"]["from"]["at"] for r in results)
    acked = _delta(results, "acked")
    reactions_acked = _delta(results, "reactions_acked")
    # A REACTION event is a delivery like a message: one payload to each member's session.
    delivered = _delta(results, "delivered") + _delta(results, "reactions_delivered")
    partner = _delta(results, "delivered_partner") + _delta(results, "reactions_delivered_partner")
    gen_cpu = sum(r["window"]["to"]["cpu_s"] - r["window"]["from"]["cpu_s"] for r in results)
    generator: dict[str, Any] = {
        "cpu_s": round(gen_cpu, 3),
        "cores_used": round(gen_cpu / window_s, 2),
    }
    waits = [
        (r["window"]["from"].get("run_queue_s"), r["window"]["to"].get("run_queue_s"))
        for r in results
    ]
    if all(first is not None and last is not None for first, last in waits):
        generator["run_queue_s"] = round(sum(last - first for first, last in waits), 3)
    totals = {k: sum(r["counts"][k] for r in results) for k in results[0]["counts"]}
    lost_partner = sum(r["lost_partner"] for r in results)
    lost_self = sum(r["lost_self"] for r in results)
    server = ServerWatch.window(samples["from"], samples["to"], delivered, acked + reactions_acked)
    if spec.server_pid is not None:
        server["pid"] = spec.server_pid
    # Everything else the machine ran meanwhile (other jobs on a shared host), in cores: a run
    # with a busy neighbour measures the neighbour too.
    others = server["machine_busy_s"] - gen_cpu - server.get("cpu_s", 0) - server.get("db_cpu_s", 0)
    errors = [e for r in results for e in r["errors"]][:20]
    return {
        "mode": "load",
        "label": spec.label or spec.target.label,
        "started_at": started_at,
        "target": {"kind": spec.target.kind, "url": spec.target.url},
        "config": {
            "couples": len(spec.couples),
            "sessions": 2 * len(spec.couples),
            "procs": len(results),
            "loop": "closed" if spec.rate <= 0 else "open",
            "window": spec.window if spec.rate <= 0 else None,
            "rate": spec.rate or None,
            "duration_s": spec.duration,
            "warmup_s": spec.warmup,
            "drain_s": spec.drain,
            "message_bytes": spec.message_bytes,
            "reactions": spec.reactions,
        },
        "machine": machine_info(),
        "window_s": round(window_s, 3),
        "throughput": {
            "msgs_per_s": round(acked / window_s, 1),
            "reactions_per_s": round(reactions_acked / window_s, 1),
            "sends_per_s": round((acked + reactions_acked) / window_s, 1),
            "deliveries_per_s": round(delivered / window_s, 1),
            "partner_deliveries_per_s": round(partner / window_s, 1),
            "sent_per_s": round(
                (_delta(results, "sent") + _delta(results, "reactions_sent")) / window_s, 1
            ),
        },
        "counts": totals,
        "latency_ms": {
            "receipt": latency_summary(merge_latencies(r["receipt_latency"] for r in results)),
            "delivery": latency_summary(merge_latencies(r["delivery_latency"] for r in results)),
            "reaction_receipt": latency_summary(
                merge_latencies(r["reaction_receipt_latency"] for r in results)
            ),
            "reaction_delivery": latency_summary(
                merge_latencies(r["reaction_delivery_latency"] for r in results)
            ),
        },
        "delivery_tail": _delivery_tail(results),
        "loss": {
            "lost": lost_partner + lost_self,
            "lost_partner": lost_partner,
            "lost_self": lost_self,
            "unacked": sum(r["unacked"] for r in results),
            "rejected": totals["rejected"],
            "reactions_lost": sum(r["reactions_lost"] for r in results),
            "duplicates": totals["duplicates"],
            "seq_gaps": sum(r["seq_gaps"] for r in results),
            "seq_backwards": sum(r["seq_backwards"] for r in results),
            "receipt_out_of_order": sum(r["receipt_out_of_order"] for r in results),
            "misrouted": sum(r["misrouted"] for r in results),
            "foreign": sum(r["foreign"] for r in results),
            "drain_s": round(max(r["drain_s"] for r in results), 3),
        },
        "server": server,
        "generator": generator,
        "other_processes_cores": round(max(0.0, others) / window_s, 2),
        "errors": errors,
    }


def run_idle(spec: IdleSpec) -> dict[str, Any]:
    if not spec.couples:
        raise BenchError("no couples to open sessions for")
    raise_nofile_limit()
    sessions = 2 * len(spec.couples)
    base = WorkerConfig(
        target=spec.target,
        couples=[],
        first_index=[],
        mode="idle",
        run_id=uuid.uuid4().hex[:8],
        connect_concurrency=spec.connect_concurrency,
        connect_timeout=spec.connect_timeout,
    )
    watch = ServerWatch(spec.server_pid)
    progress = Progress(spec.progress)
    started_at = _now_iso()
    before = watch.sample(with_db=False)
    started = time.monotonic()
    with Fleet(base, spec.couples, spec.procs) as fleet:
        # Handshakes run at a few hundred per second on a small machine: allow for that.
        ready = fleet.wait_ready(spec.connect_timeout + 60 + sessions / 50, progress.show)
        opened = sum(r["sessions"] for r in ready)
        failures = [f for r in ready for f in r["failures"]]
        connect_s = time.monotonic() - started
        fleet.broadcast(("start", None))
        settle_until = time.monotonic() + spec.settle
        hold_until = settle_until + spec.hold
        after: Sample | None = None
        last_sample: list[Sample] = []

        def on_message(index: int, kind: str, payload: Any) -> None:
            if kind == "progress":
                totals = fleet.totals()
                line = (
                    f"[{time.monotonic() - started:6.1f}s hold    ] {totals.get('open', 0):,}"
                    f" sessions open, {totals.get('closed', 0)} closed"
                    f"{_server_status(watch, last_sample)}"
                )
                progress.show(line)

        while time.monotonic() < hold_until:
            now = time.monotonic()
            if after is None and now >= settle_until:
                after = watch.sample(with_db=False)
            fleet.poll(
                min(hold_until, settle_until if after is None else hold_until) - now, on_message
            )
        end = watch.sample(with_db=False)
        fleet.broadcast(("stop",))
        deadline = time.monotonic() + 30
        while len(fleet.results) < len(fleet.conns) and time.monotonic() < deadline:
            fleet.poll(deadline - time.monotonic(), on_message)
        progress.done()
        results = list(fleet.results.values())
    after = after or end
    server: dict[str, Any] = {"pid": spec.server_pid}
    if before.server_rss_kb is not None and after.server_rss_kb is not None and opened:
        grown = after.server_rss_kb - before.server_rss_kb
        server.update(
            rss_kb_before=before.server_rss_kb,
            rss_kb_after=after.server_rss_kb,
            rss_kb_end=end.server_rss_kb,
            rss_kb_per_session=round(grown / opened, 2),
        )
    if before.server_cpu is not None and end.server_cpu is not None:
        server["cpu_s_total"] = round(end.server_cpu - before.server_cpu, 2)
    if after.server_cpu is not None and end.server_cpu is not None:
        # The hold alone (after the settle): what sessions cost while nothing happens but
        # heart-beats (`--heartbeat-ms`).
        server["hold_cpu_s"] = round(end.server_cpu - after.server_cpu, 3)
    return {
        "mode": "idle",
        "label": spec.label or spec.target.label,
        "started_at": started_at,
        "target": {"kind": spec.target.kind, "url": spec.target.url},
        "config": {
            "sessions": sessions,
            "procs": len(fleet.conns),
            "hold_s": spec.hold,
            "settle_s": spec.settle,
        },
        "machine": machine_info(),
        "sessions": opened,
        "failed": sessions - opened,
        "failures": failures[:5],
        "connect_s": round(connect_s, 2),
        "sessions_per_s": round(opened / connect_s, 1) if connect_s else math.nan,
        "open_at_end": sum(r.get("open", 0) for r in results),
        "closed_during_hold": sum(r["counts"]["closed"] for r in results),
        "server": server,
        "errors": [e for r in results for e in r["errors"]][:20],
    }
