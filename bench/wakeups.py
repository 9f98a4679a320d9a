"""What a wake-up costs on this machine: a byte's round trip between two processes.

Every hop of a message wakes a process that sleeps on a socket: the server when a SEND
arrives, PostgreSQL's backend when a batch is sent to it, the server again at its answer, the
generator at a delivery. One process here sends a byte over a socket pair and waits for the
other to send it back, ``--count`` times, with both pinned to one core and then to two cores
(when the process may run on two); the blocks take turns ``--rounds`` times. Each block gives
the round trip's wall time and the CPU time each side spent on it (the sender's own, the
echoer's from its schedstat). On one core a wake-up is a switch between two processes; across
cores it is also an interrupt to the other core, which may have to leave its idle state (on a
virtual machine, through the host).

    python -m bench.wakeups                       # 20,000 round trips a block, 3 rounds
    python -m bench.wakeups --count 5000 --rounds 5 --out wakeups.json
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench._args import _positive_int
from bench._cli import report_probe
from bench._proc import schedstat_cpu_seconds
from bench._report import markdown_table, median_range

__all__ = ["main", "placements", "render", "round_trips"]

_WARMUP = 500  # round trips before a block is timed


def placements(cores: Sequence[int]) -> dict[str, tuple[int, int]]:
    """The (sender, echoer) cores of each block: one core, and two where there are two."""
    first = min(cores)
    pairs = {"one core": (first, first)}
    others = sorted(set(cores) - {first})
    if others:
        pairs["two cores"] = (first, others[0])
    return pairs


def _echo(sock: socket.socket, core: int) -> None:
    os.sched_setaffinity(0, {core})
    while data := sock.recv(1):
        sock.sendall(data)


def _exchange(sock: socket.socket, count: int) -> None:
    try:
        for _ in range(count):
            sock.sendall(b"x")
            if not sock.recv(1):
                raise ConnectionResetError("end of file")
    except OSError as exc:
        raise OSError(f"the echoer ended before the round trips did: {exc}") from exc


def round_trips(sender_core: int, echoer_core: int, count: int) -> dict[str, float]:
    """``count`` round trips of one byte between this process on ``sender_core`` and a
    child on ``echoer_core``: µs a round trip of wall time, of the sender's CPU and of the
    echoer's. This process's affinity is restored after."""
    affinity = os.sched_getaffinity(0)
    mine, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the echoer: no return into the caller's code
        code = 0
        try:
            mine.close()
            _echo(theirs, echoer_core)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    theirs.close()
    try:
        os.sched_setaffinity(0, {sender_core})
        _exchange(mine, _WARMUP)
        echoer_before = schedstat_cpu_seconds(pid)
        cpu_before = time.thread_time()
        wall_before = time.perf_counter()
        _exchange(mine, count)
        wall = time.perf_counter() - wall_before
        cpu = time.thread_time() - cpu_before
        echoer = schedstat_cpu_seconds(pid) - echoer_before
    finally:
        mine.close()  # the echoer reads end of file and exits
        os.waitpid(pid, 0)
        os.sched_setaffinity(0, affinity)
    return {
        "round_trip_us": wall / count * 1e6,
        "sender_cpu_us": cpu / count * 1e6,
        "echoer_cpu_us": echoer / count * 1e6,
    }


def measure(count: int, rounds: int) -> dict[str, Any]:
    pairs = placements(sorted(os.sched_getaffinity(0)))
    blocks: dict[str, list[dict[str, float]]] = {name: [] for name in pairs}
    for _ in range(rounds):
        for name, (sender, echoer) in pairs.items():
            blocks[name].append(round_trips(sender, echoer, count))
    return {
        "count": count,
        "rounds": rounds,
        "cores": {name: list(pair) for name, pair in pairs.items()},
        "blocks": blocks,
        "median": {
            name: {key: statistics.median(b[key] for b in runs) for key in runs[0]}
            for name, runs in blocks.items()
        },
    }


def render(result: dict[str, Any]) -> str:
    keys = ("round_trip_us", "sender_cpu_us", "echoer_cpu_us")
    return markdown_table(
        ["placement", "round trip µs", "sender's CPU µs", "echoer's CPU µs"],
        (
            [name, *(median_range([run[key] for run in runs], 1) for key in keys)]
            for name, runs in result["blocks"].items()
        ),
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.wakeups", description=__doc__)
    parser.add_argument("--count", type=_positive_int, default=20_000, help="round trips a block")
    parser.add_argument("--rounds", type=_positive_int, default=3, help="turns of the blocks")
    parser.add_argument("--out", type=Path, help="JSON result file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return report_probe(
        "bench.wakeups", lambda: measure(args.count, args.rounds), render, args.out, (OSError,)
    )


if __name__ == "__main__":
    sys.exit(main())
