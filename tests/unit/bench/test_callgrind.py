"""Counting a live process's instructions over a window with callgrind, for real."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench import _callgrind
from bench._fleet import BenchError
from bench.instructions import _parser, render, summarize

from tests.support.cli import assert_refused

# Works in rounds when told, through a file it polls: the count of a window covers what was
# done in it, and only that.
_WORKER = """
import sys, time
orders = sys.argv[1]
done = 0
while True:
    with open(orders) as fh:
        wanted = int(fh.read() or 0)
    while done < wanted:
        sum(range(200_000))
        done += 1
    with open(orders + ".done", "w") as fh:
        fh.write(str(done))
    time.sleep(0.05)
"""


def _valgrind_or_fail() -> None:
    try:
        _callgrind.require_callgrind()
    except BenchError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc}; .ci/run installs it")
        pytest.skip(str(exc))


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    _valgrind_or_fail()
    orders = tmp_path / "orders"
    orders.write_text("0")
    proc = subprocess.Popen(
        [*_callgrind.command(tmp_path), sys.executable, "-c", _WORKER, str(orders)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _until(orders, 0)
        yield proc, orders
    finally:
        proc.kill()
        proc.wait()


def _until(orders: Path, rounds: int) -> None:
    done = Path(f"{orders}.done")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if done.exists() and done.read_text() == str(rounds):
            return
        time.sleep(0.05)
    raise AssertionError(f"the worker did not reach {rounds} rounds")


def _window(pid: int, orders: Path, out: Path, total: int) -> int:
    _callgrind.zero(pid)
    orders.write_text(str(total))
    _until(orders, total)
    return _callgrind.dump(pid, out)


def test_a_window_counts_what_the_process_did_in_it(
    worker: tuple[subprocess.Popen[bytes], Path], tmp_path: Path
) -> None:
    proc, orders = worker
    one = _window(proc.pid, orders, tmp_path, total=1)
    four = _window(proc.pid, orders, tmp_path, total=5)
    # A round is about 200,000 additions of Python ints; four rounds, about four times one.
    assert one > 1_000_000
    assert 3.0 < four / one < 5.0


def test_a_dump_of_a_process_that_is_not_under_callgrind_fails(tmp_path: Path) -> None:
    _valgrind_or_fail()
    with pytest.raises(BenchError, match="callgrind_control"):
        _callgrind.dump(os.getpid(), tmp_path)


def test_trees_are_summarized_as_medians_and_ratios_to_the_first() -> None:
    runs = [
        {"src": "a", "per_message": 600.0},
        {"src": "b", "per_message": 540.0},
        {"src": "a", "per_message": 620.0},
        {"src": "b", "per_message": 560.0},
    ]
    rows = summarize(runs, [Path("a"), Path("b")])
    assert [(row["src"], row["per_message"], row["runs"]) for row in rows] == [
        ("a", 610.0, [600, 620]),
        ("b", 550.0, [540, 560]),
    ]
    assert rows[1]["ratio"] == pytest.approx(550 / 610)
    table = render(rows)
    assert "| b | 550 | 540, 560 | 0.902 |" in table


@pytest.mark.parametrize(
    "args",
    [
        ["--runs", "0"],
        ["--couples", "-1"],
        ["--procs", "x"],
        ["--measure", "nan"],
        ["--warmup", "-5"],
    ],
)
def test_numbers_that_cannot_run_are_refused_before_anything_starts(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert_refused(_parser(), args, capsys)
