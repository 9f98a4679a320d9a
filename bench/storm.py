"""Reconnect storm: every session of a node dropped at once, then back, behind nginx.

Two nodes share a fresh PostgreSQL database and the machine's Redis behind real nginx (the
shipped ``deploy/nginx/ieum-chat.conf``, as the multi-node tests run it). Every session
connects while nginx knows only node A, so all of them live on A; then node B starts, nginx
is reloaded with both, and A is SIGKILLed. nginx sends every reconnect to B: N clients (the
Python SDK's ``ChatClient``, with its jittered backoff and the Retry-After floor) hit one node
in the same instant. Meanwhile
one member of ``--probes`` couples sends a message over REST; the partner must get it once,
by the resume (``x-resume-after-seq``) or live.

Reported: seconds from the kill until every session is subscribed again (and percentiles),
what node B refused (``ieum_admissions_refused_total``), and PostgreSQL during the storm:
peak connections of the database and peak CPU of all its processes (sampled from /proc every
0.25 s), with B's own CPU. ``--compare`` runs a second storm with admission opened wide
(IEUM_ADMISSION_RATE, _BURST and _BACKLOG at 1e6), so its effect shows in one run.

    python -m bench.storm --sessions 10000
    python -m bench.storm --sessions 2000 --compare

Everything shares this machine's cores (clients, nginx, both nodes, PostgreSQL), so the times
are this machine's, not a deployment's; the ratio between the two storms is the figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from tests.support.nginx import SHIPPED_CONFIG, render_site, require_nginx
from tests.support.postgres import create_database, drop_database
from tests.support.redis import REDIS_URL, delete_prefix, unique_prefix
from tests.support.server import Cli, ServerProcess, free_port

from bench._servers import read_metric

CLIENT_PROCS = 4
TICK = 0.25  # seconds between two samples of PostgreSQL


# -- the clients (worker processes) -----------------------------------------------------------


@dataclass
class _Member:
    token: str
    couple: str
    name: str  # "<couple>:a" or "<couple>:b"
    connects: list[float] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)


async def _drive(conn: Connection, members: list[_Member], url: str) -> None:
    from ieum_chat.client import ChatClient, ChatMessage, Connected, Disconnected

    clients: list[ChatClient] = []
    reasons: dict[str, int] = {}

    async def follow(member: _Member) -> None:
        # The couples are new: their history is empty, so the stream is followed from seq 0
        # (an app passes the last seq its history showed).
        client = ChatClient(
            url,
            lambda: member.token,
            couple_id=member.couple,
            resume_after_seq=0,
            heartbeat=(0, 0),
        )
        clients.append(client)
        client.start()
        while True:
            event = await client.next_event()
            if isinstance(event, Connected):
                member.connects.append(time.time())
            elif isinstance(event, ChatMessage):
                member.seqs.append(event.seq)
            elif isinstance(event, Disconnected):
                reason = event.reason.split(":")[0][:60]
                reasons[reason] = reasons.get(reason, 0) + 1

    tasks = [asyncio.create_task(follow(m)) for m in members]
    loop = asyncio.get_running_loop()
    try:
        while True:
            command = await loop.run_in_executor(None, conn.recv)
            if command == "stop":
                break
            conn.send(
                {
                    "connects": [m.connects for m in members],
                    "seqs": {m.name: m.seqs for m in members if m.seqs},
                    "reasons": reasons,
                }
            )
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        conn.send("stopped")


def _worker(conn: Connection, rows: list[tuple[str, str, str]], url: str) -> None:
    members = [_Member(token, couple, name) for token, couple, name in rows]
    asyncio.run(_drive(conn, members, url))


class Clients:
    """The sessions, spread over a few processes; ``status`` asks every process."""

    def __init__(self, rows: list[tuple[str, str, str]], url: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs: list[BaseProcess] = []
        for k in range(CLIENT_PROCS):
            here, there = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(there, rows[k::CLIENT_PROCS], url))
            proc.start()
            self.pipes.append(here)
            self.procs.append(proc)

    def status(self) -> tuple[list[list[float]], dict[str, list[int]]]:
        connects: list[list[float]] = []
        seqs: dict[str, list[int]] = {}
        self.reasons: dict[str, int] = {}
        for pipe in self.pipes:
            pipe.send("status")
        for pipe in self.pipes:
            answer = pipe.recv()
            connects += answer["connects"]
            seqs.update(answer["seqs"])
            for reason, count in answer["reasons"].items():
                self.reasons[reason] = self.reasons.get(reason, 0) + count
        return connects, seqs

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send("stop")
        for proc in self.procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()


# -- what is measured on the side -------------------------------------------------------------


def _cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def _postgres_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-x", "postgres"], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]


@dataclass
class Sampler:
    """PostgreSQL's connections to one database and the CPU of its processes, and node B's."""

    database: str
    node_pid: int
    peak_connections: int = 0
    peak_pg_cpu: float = 0.0  # cores busy, over one tick
    pg_cpu: float = 0.0
    node_cpu: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)

    def _connections(self) -> int:
        sql = f"select count(*) from pg_stat_activity where datname = '{self.database}'"
        out = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-Atc", sql],
            capture_output=True,
            text=True,
            check=False,
        )
        return int(out.stdout.strip() or 0)

    def run(self) -> None:
        pg_start = last = _cpu_seconds(_postgres_pids())
        node_start = _cpu_seconds([self.node_pid])
        while not self._stop.wait(TICK):
            now = _cpu_seconds(_postgres_pids())
            self.peak_pg_cpu = max(self.peak_pg_cpu, (now - last) / TICK)
            last = now
            self.peak_connections = max(self.peak_connections, self._connections())
        self.pg_cpu = _cpu_seconds(_postgres_pids()) - pg_start
        self.node_cpu = _cpu_seconds([self.node_pid]) - node_start

    @contextlib.contextmanager
    def running(self) -> Iterator[Sampler]:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()


# -- nginx with room for the sessions ---------------------------------------------------------


class Nginx:
    """nginx in the foreground with the shipped site; ``upstreams`` can change by a reload."""

    def __init__(self, upstreams: list[int], workdir: Path, port: int) -> None:
        self.port = port
        self.dir = workdir
        logs, temp = workdir / "logs", workdir / "temp"
        logs.mkdir(parents=True, exist_ok=True)
        temp.mkdir(parents=True, exist_ok=True)
        self._write_site(upstreams)
        user = "user root;\n" if os.geteuid() == 0 else ""
        temps = "".join(
            f"    {kind}_temp_path {temp}/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        # Two workers, each under the process's descriptor limit; reuseport spreads accepts.
        (workdir / "nginx.conf").write_text(
            f"{user}worker_processes 2;\nworker_rlimit_nofile 19000;\n"
            f"error_log {logs}/error.log warn;\npid {workdir}/nginx.pid;\n"
            "events { worker_connections 18000; }\n"
            f"http {{\n{temps}    include {workdir}/site.conf;\n}}\n"
        )
        command = [require_nginx(), "-p", str(workdir), "-c", str(workdir / "nginx.conf")]
        self.proc = subprocess.Popen(
            [*command, "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=(logs / "stderr.log").open("ab"),
        )
        time.sleep(0.5)
        if self.proc.poll() is not None:
            raise SystemExit(f"nginx did not start: {(logs / 'stderr.log').read_text()[-500:]}")

    def _write_site(self, upstreams: list[int]) -> None:
        site = render_site(
            SHIPPED_CONFIG.read_text(),
            upstreams=upstreams,
            listen_port=self.port,
            log_dir=self.dir / "logs",
        )
        site = site.replace(
            f"listen 127.0.0.1:{self.port};", f"listen 127.0.0.1:{self.port} reuseport;"
        )
        (self.dir / "site.conf").write_text(site)

    def reload(self, upstreams: list[int]) -> None:
        """New workers with the new upstreams (and no memory of failed ones); the old workers
        keep the tunnels they hold until those close."""
        self._write_site(upstreams)
        self.proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# -- one storm ---------------------------------------------------------------------------------


def _post(url: str, token: str, couple: str, text: str) -> None:
    body = json.dumps({"type": "TEXT", "content": text, "tempId": uuid.uuid4().hex}).encode()
    request = urllib.request.Request(
        f"{url}/chat/rooms/{couple}/messages",
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    # Patient: in the storm nginx answers 502/504 while it finds no node that accepts in time,
    # and the node 503 while it is behind; the member's app retries as long as that lasts.
    deadline = time.monotonic() + 600
    while True:
        try:
            with urllib.request.urlopen(request, timeout=10):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _wait(predicate: Any, seconds: float, what: str) -> float:
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value:
            return float(value)
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.5)


def storm(  # noqa: PLR0917
    sessions: int,
    probes: int,
    extra_env: dict[str, str],
    label: str,
    keep: Path | None = None,
    profile: Path | None = None,
) -> dict[str, Any]:
    couples = sessions // 2
    database = create_database("ieum_storm")
    prefix = unique_prefix()
    env = {
        "IEUM_REDIS_URL": REDIS_URL,
        "IEUM_REDIS_PREFIX": prefix,
        "IEUM_LOG_LEVEL": "WARNING",
        "IEUM_MAX_SESSIONS_PER_USER": "10",
        **extra_env,
    }
    cli = Cli.for_database(database, **env)
    clients: Clients | None = None
    nodes: list[ServerProcess] = []
    nginx: Nginx | None = None
    with tempfile.TemporaryDirectory(prefix="ieum-storm-") as tmp:
        work = Path(tmp)
        try:
            cli.run("migrate")
            rows = cli.seed(couples, ttl=7200)
            a, b = ServerProcess(cli, work / "a.log"), ServerProcess(cli, work / "b.log")
            nodes = [a.start()]
            nginx = Nginx([a.port], work / "nginx", free_port())
            url = f"http://127.0.0.1:{nginx.port}"
            members = [(r["ta"], r["couple"], f"{r['couple']}:a") for r in rows]
            members += [(r["tb"], r["couple"], f"{r['couple']}:b") for r in rows]
            started = time.time()
            clients = Clients(members, f"ws://127.0.0.1:{nginx.port}/ws/chat")
            _wait(lambda: all(c for c in clients.status()[0]), 600, "the first connects")
            first = time.time() - started
            print(f"[{label}] {sessions} sessions on node A in {first:.1f} s", file=sys.stderr)
            nodes.append(b.start())
            nginx.reload([a.port, b.port])
            assert b.proc is not None
            assert a.proc is not None
            sampler = Sampler(database.rsplit("/", 1)[1], b.proc.pid)
            spy = None
            if profile is not None:  # node B's stacks through the storm (py-spy, collapsed)
                spy = subprocess.Popen(
                    [
                        "py-spy",
                        "record",
                        "--pid",
                        str(b.proc.pid),
                        "--format",
                        "raw",
                        "--rate",
                        "200",
                        "-o",
                        str(profile),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(1.0)
            with sampler.running():
                killed = time.time()
                a.proc.send_signal(signal.SIGKILL)
                probe_rows = rows[:probes]

                def send_probes() -> None:
                    for row in probe_rows:
                        _post(url, row["ta"], row["couple"], "storm probe")

                poster = threading.Thread(target=send_probes, daemon=True)
                poster.start()
                _wait(
                    lambda: all(len(c) >= 2 for c in clients.status()[0]),
                    900,
                    "every session to come back",
                )
                poster.join(600)
                probe_members = {f"{r['couple']}:{m}" for r in probe_rows for m in "ab"}
                _wait(
                    lambda: probe_members <= set(clients.status()[1]),
                    120,
                    "the probes to arrive",
                )
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(30)
            connects, seqs = clients.status()
            back = sorted(c[1] - killed for c in connects)
            # The partner gets the probe once (and the sender its echo once): seq 1 each.
            missing = [
                r["couple"]
                for r in rows[:probes]
                if seqs.get(f"{r['couple']}:b") != [1] or seqs.get(f"{r['couple']}:a") != [1]
            ]
            if missing:
                print(
                    "probes not delivered once:",
                    {c: (seqs.get(f"{c}:a"), seqs.get(f"{c}:b")) for c in missing[:5]},
                    file=sys.stderr,
                )
            print(f"[{label}] disconnects by reason: {clients.reasons}", file=sys.stderr)
            refused = read_metric(f"http://127.0.0.1:{b.port}", "ieum_admissions_refused_total")
            return {
                "label": label,
                "sessions": sessions,
                "all_back_s": back[-1],
                "p50_s": statistics.median(back),
                "p90_s": back[int(len(back) * 0.9) - 1],
                "refused": refused,
                "pg_peak_connections": sampler.peak_connections,
                "pg_peak_cores": sampler.peak_pg_cpu,
                "pg_cpu_s": sampler.pg_cpu,
                "node_cpu_s": sampler.node_cpu,
                "probes_ok": probes - len(missing),
                "probes": probes,
            }
        except BaseException:
            for log in sorted(work.rglob("*.log")):
                text = log.read_text(errors="replace")
                kept = [x for x in text.splitlines() if "no live upstreams" not in x]
                print(f"--- {log.name}:", "\n".join(kept)[-4000:], file=sys.stderr)
            raise
        finally:
            if clients is not None:
                clients.close()
            if nginx is not None:
                nginx.stop()
            for node in nodes:
                node.stop()
            if keep is not None:
                shutil.copytree(work, keep / label.replace(" ", "-").replace("/", ""))
            drop_database(database)
            delete_prefix(prefix)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.storm", description=__doc__)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--probes", type=int, default=100, help="couples sent one message")
    parser.add_argument(
        "--compare", action="store_true", help="also a storm without admission control"
    )
    parser.add_argument("--keep", type=Path, help="copy the logs (nodes, nginx) into this folder")
    parser.add_argument(
        "--profile", type=Path, help="py-spy node B through the storm into this file (raw)"
    )
    args = parser.parse_args(argv)
    results = [storm(args.sessions, args.probes, {}, "admission 500/s", args.keep, args.profile)]
    if args.compare:
        wide = {
            "IEUM_ADMISSION_RATE": "1000000",
            "IEUM_ADMISSION_BURST": "1000000",
            "IEUM_ADMISSION_BACKLOG": "1000000",
        }
        results.append(storm(args.sessions, args.probes, wide, "admission off", args.keep))
    print(
        "| storm | sessions | all back s | p50 s | p90 s | refused | PG peak conns "
        "| PG peak cores | PG CPU s | node CPU s | probes delivered once |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['label']} | {r['sessions']:,} | {r['all_back_s']:.1f} | {r['p50_s']:.1f} "
            f"| {r['p90_s']:.1f} | {r['refused']:,.0f} | {r['pg_peak_connections']} "
            f"| {r['pg_peak_cores']:.2f} | {r['pg_cpu_s']:.1f} | {r['node_cpu_s']:.1f} "
            f"| {r['probes_ok']}/{r['probes']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
