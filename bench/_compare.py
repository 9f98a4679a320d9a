"""`python -m bench compare`: the same traffic against ieum-chat (SQLite, PostgreSQL) and RabbitMQ
Web-STOMP, one after the other on this machine, in one table.

For each backend: a closed-loop run (each member keeps `window` SENDs awaiting their RECEIPT),
which finds the peak; then `half_runs` open-loop runs at half of that peak, which give the
latency a server shows when it is not saturated. One such run's p99 follows whatever stalls
the machine during its few seconds, so the row shows the run with the median p99 (``half``)
and the range of all of them (every run is kept, in ``half_runs``). On PostgreSQL, each
half-load run is followed by two measurements as long of the disk's commit floor
(:mod:`bench.commit_floor`): the wait for a flush that a message arriving at a random moment
has on that disk, whatever the server, with the flushes back to back (``floor_runs``) and paced
as a group commit of the half-load rate's arrivals would make them (``paced_floor_runs``; a
disk may flush slower after a pause). Optionally, a crowd of idle sessions on a fresh server.

With ``mixes`` (fractions of the SENDs that are reactions), each ieum-chat backend runs that pair
once per mix, each on a fresh server and database, one after the other in the given order: the
cost of reactions beside plain chat, in one sitting. RabbitMQ has no reactions: plain chat only.
"""

from __future__ import annotations

import math
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from ._fleet import BenchError
from ._load import IdleSpec, LoadSpec, run_idle, run_load
from ._proc import machine_info
from ._report import compare_table, floor_line, idle_table, load_table
from ._servers import PG_ADMIN_URL, IeumServer, ensure_web_stomp
from ._targets import RABBITMQ, Target, synthetic_couples
from .commit_floor import measure as measure_floor

__all__ = ["BACKENDS", "CompareSpec", "median_run", "run_compare"]

BACKENDS = ("sqlite", "postgresql", "rabbitmq")
_LABELS = {
    "sqlite": "ieum-chat SQLite",
    "postgresql": "ieum-chat PostgreSQL",
    "rabbitmq": "RabbitMQ Web-STOMP",
}


@dataclass(frozen=True, slots=True)
class CompareSpec:
    backends: tuple[str, ...] = BACKENDS
    couples: int = 50
    window: int = 1
    duration: float = 15.0
    warmup: float = 3.0
    drain: float = 10.0
    procs: int = 2
    message_bytes: int = 32
    mixes: tuple[float, ...] = (0.0,)  # fractions of SENDs that are reactions, one row each
    half_rate: bool = True
    half_runs: int = 3  # open-loop runs at half of the peak; the row shows the median p99's
    idle_sessions: int = 0
    idle_rabbitmq: int = 0  # its own count: a stock RabbitMQ allows ~900 open files
    idle_hold: float = 10.0
    rabbitmq_url: str = "ws://127.0.0.1:15674/ws"
    enable_rabbitmq: bool = True
    pg_admin_url: str = PG_ADMIN_URL
    server_src: Path | None = None  # a tree whose src/ the ieum-chat servers run
    progress: bool = True
    quiet_wait: float = 0.0
    steadiness: bool = False  # bench.steadiness beside each load run
    floor: bool = True  # the commit floor after each PostgreSQL half-load run
    floor_dir: Path = Path("/var/tmp")  # on the file system of PostgreSQL's WAL


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _mix_label(backend: str, mix: float) -> str:
    return f"{_LABELS[backend]}, {round(mix * 100, 2):g}% reactions" if mix else _LABELS[backend]


def _load_pair(spec: CompareSpec, base: LoadSpec, *, floor: bool = False) -> dict[str, Any]:
    _say(f"== {base.label}: closed loop, window {spec.window}, {spec.duration:g} s")
    peak = run_load(base)
    out: dict[str, Any] = {
        "peak": peak,
        "half": None,
        "half_runs": [],
        "floor_runs": [],
        "paced_floor_runs": [],
    }
    rate = peak["throughput"]["sends_per_s"] / 2  # the open loop's rate counts every SEND
    if spec.half_rate and rate > 0:
        for i in range(spec.half_runs):
            _say(
                f"== {base.label}: open loop at {rate:,.0f} msgs/s (half of the peak), "
                f"run {i + 1} of {spec.half_runs}"
            )
            out["half_runs"].append(run_load(replace(base, rate=rate)))
            if floor:
                _say(f"== the commit floor in {spec.floor_dir}, {spec.duration:g} s, twice")
                try:
                    out["floor_runs"].append(measure_floor(spec.floor_dir, spec.duration))
                    out["paced_floor_runs"].append(
                        measure_floor(spec.floor_dir, spec.duration, rate=rate)
                    )
                except OSError as exc:
                    raise BenchError(f"the commit floor in {spec.floor_dir}: {exc}") from exc
        out["half"] = median_run(out["half_runs"])
    return out


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run whose send -> partner delivery p99 is the median of ``runs`` (of an even
    number, the lower of the two middle ones): a whole run, whose figures belong together. A
    run that timed no delivery counts as the slowest."""

    def p99(run: dict[str, Any]) -> float:
        value = run["latency_ms"]["delivery"]["p99"]
        return math.inf if value is None else float(value)

    return sorted(runs, key=p99)[(len(runs) - 1) // 2]


def _idle(spec: CompareSpec, backend: str, workdir: Path) -> dict[str, Any] | None:
    # Session memory does not depend on the database: one ieum-chat backend is enough.
    first_ieum = next((b for b in spec.backends if b != RABBITMQ), None)
    sessions = spec.idle_rabbitmq if backend == RABBITMQ else spec.idle_sessions
    if sessions <= 0 or backend not in (first_ieum, RABBITMQ):
        return None
    couples = math.ceil(sessions / 2)
    _say(f"== {_LABELS[backend]}: {2 * couples:,} idle sessions, held {spec.idle_hold:g} s")
    if backend == RABBITMQ:
        pid = ensure_web_stomp(Target(RABBITMQ, spec.rabbitmq_url).port, spec.enable_rabbitmq)
        return run_idle(
            IdleSpec(
                Target(RABBITMQ, spec.rabbitmq_url),
                synthetic_couples(couples),
                procs=spec.procs,
                hold=spec.idle_hold,
                server_pid=pid,
                progress=spec.progress,
                label=_LABELS[backend],
            )
        )
    # A fresh server: memory freed by a load run would otherwise be reused by the sessions
    # and hide what they cost.
    kind: Literal["sqlite", "postgresql"] = "sqlite" if backend == "sqlite" else "postgresql"
    idle_dir = workdir / f"idle-{backend}"
    idle_dir.mkdir()
    with IeumServer(kind, idle_dir, couples, spec.pg_admin_url, src=spec.server_src) as server:
        return run_idle(
            IdleSpec(
                Target("ieum", server.url),
                server.couples,
                procs=spec.procs,
                hold=spec.idle_hold,
                server_pid=server.pid,
                progress=spec.progress,
                label=_LABELS[backend],
            )
        )


def _backend_runs(spec: CompareSpec, backend: str, mix: float, workdir: Path) -> dict[str, Any]:
    label = _mix_label(backend, mix)
    if backend == RABBITMQ:
        target = Target(RABBITMQ, spec.rabbitmq_url)
        pid = ensure_web_stomp(target.port, spec.enable_rabbitmq)
        couples = synthetic_couples(spec.couples)
        return _load_pair(spec, _base(spec, target, couples=couples, pid=pid, label=label))
    kind: Literal["sqlite", "postgresql"] = "sqlite" if backend == "sqlite" else "postgresql"
    with IeumServer(kind, workdir, spec.couples, spec.pg_admin_url, src=spec.server_src) as server:
        base = _base(
            spec,
            Target("ieum", server.url),
            couples=server.couples,
            pid=server.pid,
            db_match=server.db_match,
            label=label,
            reactions=mix,
        )
        return _load_pair(spec, base, floor=spec.floor and kind == "postgresql")


def run_compare(spec: CompareSpec) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ieum-bench-") as tmp:
        for backend in spec.backends:
            mixes = (0.0,) if backend == RABBITMQ else spec.mixes
            for i, mix in enumerate(mixes):
                workdir = Path(tmp) / f"{backend}-{i}"
                workdir.mkdir()
                rows.append(_row(spec, backend, mix, workdir, idle=i == 0))
    return {
        "mode": "compare",
        "machine": machine_info(),
        "config": {
            "couples": spec.couples,
            "window": spec.window,
            "duration_s": spec.duration,
            "warmup_s": spec.warmup,
            "procs": spec.procs,
            "message_bytes": spec.message_bytes,
            "mixes": list(spec.mixes),
            "idle_sessions": spec.idle_sessions,
            "idle_rabbitmq": spec.idle_rabbitmq,
            "server_src": str(spec.server_src) if spec.server_src else None,
        },
        "rows": rows,
        "ratios": _ratios(rows),
    }


def _row(
    spec: CompareSpec, backend: str, mix: float, workdir: Path, *, idle: bool
) -> dict[str, Any]:
    label = _mix_label(backend, mix)
    row: dict[str, Any] = {
        "backend": backend,
        "reactions": mix,
        "label": label,
        "peak": None,
        "half": None,
        "half_runs": [],
        "floor_runs": [],
        "paced_floor_runs": [],
    }
    # One backend failing (a broker not running) still leaves the others' figures.
    try:
        row.update(_backend_runs(spec, backend, mix, workdir))
        row["idle"] = _idle(spec, backend, workdir) if idle else None
    except BenchError as exc:
        row["error"] = str(exc)
        _say(f"{label}: {exc}")
    runs = [(label, row["peak"])]
    runs += [(f"{label} @½ #{i + 1}", run) for i, run in enumerate(row["half_runs"])]
    if row["peak"]:
        _say(load_table(runs))
    return row


def _base(
    spec: CompareSpec,
    target: Target,
    *,
    couples: list[Any],
    pid: int | None,
    label: str,
    db_match: tuple[str, ...] = (),
    reactions: float = 0.0,
) -> LoadSpec:
    return LoadSpec(
        target=target,
        couples=couples,
        procs=spec.procs,
        window=spec.window,
        duration=spec.duration,
        warmup=spec.warmup,
        drain=spec.drain,
        message_bytes=spec.message_bytes,
        reactions=reactions,
        server_pid=pid,
        db_match=db_match,
        progress=spec.progress,
        label=label,
        quiet_wait=spec.quiet_wait,
        steadiness=spec.steadiness,
    )


def _ratios(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Plain chat against RabbitMQ (msgs/s); each reaction mix against plain chat on the same
    backend (SENDs/s: a reaction replaces a message, so msgs/s alone drops with the mix)."""
    plain = {
        r["backend"]: r["peak"]["throughput"]["msgs_per_s"]
        for r in rows
        if r["peak"] and not r.get("reactions")
    }
    out = {}
    for backend in ("sqlite", "postgresql"):
        if backend in plain and plain.get(RABBITMQ):
            out[f"{backend}_vs_rabbitmq"] = round(plain[backend] / plain[RABBITMQ], 3)
    for r in rows:
        mix, backend = r.get("reactions"), r["backend"]
        if mix and r["peak"] and plain.get(backend):
            pct = f"{round(mix * 100, 2):g}%"
            sends = r["peak"]["throughput"]["sends_per_s"]
            out[f"{backend}_{pct}_reactions_vs_none_sends_per_s"] = round(sends / plain[backend], 3)
    return out


def render(result: dict[str, Any]) -> str:
    rows = result["rows"]
    parts = [compare_table(rows)]
    if result["ratios"]:
        parts.append(
            "throughput ratio: "
            + ", ".join(f"{k.replace('_', ' ')} {v:.2f}" for k, v in result["ratios"].items())
        )
    parts += [floor_line(r) for r in rows if r.get("floor_runs")]
    idle = [(r["label"], r["idle"]) for r in rows if r.get("idle")]
    if idle:
        parts.append(idle_table(idle))
    return "\n\n".join(parts)
