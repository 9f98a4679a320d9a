"""Instructions the server executes per message stored, for one or more source trees, in turns.

On this kind of shared machine the CPU time of the same run moves by 10-20 % from one minute
to the next, more than most changes to the send path are worth. The instructions executed do
not: each tree's ``src`` is served under valgrind's callgrind (``bench._callgrind``) on a fresh
database, the load generator of ``python -m bench run`` keeps one SEND per member in flight,
and once messages flow and ``--warmup`` seconds have passed the server's count is zeroed,
read again ``--measure`` seconds later and divided by the messages stored in between. Only the
server process counts (PostgreSQL is another process). The trees take turns, ``--runs`` times.

    python -m bench.instructions --src ../before --src .     # the change, as a ratio
    python -m bench.instructions --backend sqlite --runs 1

Under callgrind the server runs 50-100 times slower: its batches are smaller than at its
real peak, so compare trees with each other, not with ``bench run``'s CPU figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from bench import _callgrind
from bench._args import _positive_int, _seconds
from bench._fleet import BenchError
from bench._load import LoadSpec, run_load
from bench._servers import PG_ADMIN_URL, IeumServer, read_metric
from bench._targets import Target

_STORED = "ieum_messages_stored_total"
_START_TIMEOUT = 600.0  # imports alone take about a minute under callgrind
_FLOW_TIMEOUT = 300.0
_MARGIN = 15.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.instructions",
        description="server instructions per message stored, source trees in turns",
    )
    parser.add_argument(
        "--src",
        action="append",
        type=Path,
        help="a source tree (its src/ is served); repeatable; default: this one",
    )
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--couples", type=_positive_int, default=50)
    parser.add_argument("--procs", type=_positive_int, default=2, help="load generator processes")
    parser.add_argument("--warmup", type=_seconds, default=10.0, help="seconds of flow first")
    parser.add_argument("--measure", type=_seconds, default=20.0, help="seconds counted")
    parser.add_argument("--runs", type=_positive_int, default=2, help="turns of every tree")
    parser.add_argument(
        "--pg-admin-url",
        default=PG_ADMIN_URL,
        help="CREATE DATABASE",
    )
    parser.add_argument("--out", type=Path, help="JSON result file")
    return parser


def _wait_for_flow(url: str, load: threading.Thread) -> None:
    deadline = time.monotonic() + _FLOW_TIMEOUT
    while time.monotonic() < deadline:
        if read_metric(url, _STORED) > 0:
            return
        if not load.is_alive():
            break
        time.sleep(1.0)
    raise BenchError("no message was stored under callgrind")


def measure(
    src: Path,
    backend: Literal["sqlite", "postgresql"],
    args: argparse.Namespace,
    workdir: Path,
) -> dict[str, Any]:
    """One turn of one tree: its server's instructions over the counted window."""
    workdir.mkdir()
    with IeumServer(
        backend,
        workdir,
        args.couples,
        args.pg_admin_url,
        command_prefix=_callgrind.command(workdir),
        start_timeout=_START_TIMEOUT,
        src=src,
    ) as server:
        assert server.pid is not None
        url = f"http://127.0.0.1:{server.port}"
        failure: list[BaseException] = []

        def drive() -> None:
            try:
                run_load(
                    LoadSpec(
                        target=Target("ieum", server.url),
                        couples=server.couples,
                        procs=args.procs,
                        window=1,
                        warmup=args.warmup,
                        # the counted window, and the time to dump and read what was stored
                        duration=args.measure + _MARGIN,
                        drain=0.0,
                        progress=False,
                    )
                )
            except BaseException as exc:
                failure.append(exc)

        load = threading.Thread(target=drive, name="load", daemon=True)
        load.start()
        _wait_for_flow(url, load)
        time.sleep(args.warmup)
        _callgrind.zero(server.pid)
        first = read_metric(url, _STORED)
        time.sleep(args.measure)
        instructions = _callgrind.dump(server.pid, workdir)
        messages = read_metric(url, _STORED) - first
        load.join(_MARGIN + _FLOW_TIMEOUT)
        if failure:
            raise BenchError(f"the load failed: {failure[0]}")
        if messages <= 0:
            raise BenchError("no message was stored in the counted window")
        return {
            "src": str(src),
            "messages": int(messages),
            "instructions": instructions,
            "per_message": instructions / messages,
        }


def summarize(runs: list[dict[str, Any]], trees: Sequence[Path]) -> list[dict[str, Any]]:
    """Per tree, in the order given: the median of its runs' instructions per message and its
    ratio to the first tree's."""
    medians = [
        statistics.median(r["per_message"] for r in runs if r["src"] == str(tree)) for tree in trees
    ]
    return [
        {
            "src": str(tree),
            "per_message": median,
            "runs": [round(r["per_message"]) for r in runs if r["src"] == str(tree)],
            "ratio": median / medians[0],
        }
        for tree, median in zip(trees, medians, strict=True)
    ]


def render(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| source tree | instructions / message (median) | runs | ratio to the first |",
        "|---|---|---|---|",
    ]
    for row in rows:
        runs = ", ".join(f"{value:,}" for value in row["runs"])
        lines.append(f"| {row['src']} | {row['per_message']:,.0f} | {runs} | {row['ratio']:.3f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    trees: list[Path] = args.src or [Path(__file__).resolve().parents[1]]
    runs: list[dict[str, Any]] = []
    try:
        _callgrind.require_callgrind()
        with tempfile.TemporaryDirectory(prefix="ieum-bench-instructions-") as tmp:
            for turn in range(args.runs):
                for index, tree in enumerate(trees):
                    run = measure(tree, args.backend, args, Path(tmp) / f"{turn}-{index}")
                    print(
                        f"{tree}: {run['per_message']:,.0f} instructions a message "
                        f"({run['messages']} messages)",
                        file=sys.stderr,
                    )
                    runs.append(run)
    except BenchError as exc:
        print(f"bench.instructions: error: {exc}", file=sys.stderr)
        return 2
    rows = summarize(runs, trees)
    print(render(rows))
    if args.out is not None:
        args.out.write_text(json.dumps({"runs": runs, "trees": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
