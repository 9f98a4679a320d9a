"""What the generator reads off and does to the machine around a run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bench._proc import (
    CpuSample,
    _unwritten_kb,
    flush_dirty_pages,
    machine_cpu,
    run_queue_seconds,
    schedstat_cpu_seconds,
)
from bench._watch import Sample, ServerWatch

_WRITTEN = 32 * 1024 * 1024


def test_a_run_starts_with_the_page_cache_written_out(tmp_path: Path) -> None:
    # 32 MB written and not synced stay dirty for 30 s unless something writes them out.
    with (tmp_path / "dirty").open("wb") as fh:
        for _ in range(_WRITTEN // 65536):
            fh.write(os.urandom(65536))
    flushed = flush_dirty_pages()
    assert flushed["unwritten_kb"] >= _WRITTEN // 1024
    assert flushed["sync_s"] >= 0
    # What is left is others' writing since, far less than what this test wrote.
    assert _unwritten_kb() < flushed["unwritten_kb"] - _WRITTEN // 1024 // 2


def test_the_time_the_host_took_from_the_machine_is_reported_apart() -> None:
    now = machine_cpu()
    assert 0 <= now.steal <= now.busy <= now.total
    first = Sample(10.0, 1000, {}, CpuSample(busy=100.0, total=400.0, steal=2.0))
    last = Sample(13.0, 1000, {}, CpuSample(busy=130.0, total=440.0, steal=2.25))
    out = ServerWatch.window(first, last, deliveries=1000, sends=500)
    assert out["machine_busy_s"] == 30.0
    assert out["machine_steal_s"] == 0.25


def test_the_time_runnable_but_waiting_for_a_core_is_read_per_process() -> None:
    # More busy processes than cores: each spends some of its runnable time in the run queue.
    busy = [
        subprocess.Popen(
            [sys.executable, "-c", "import time\nt = time.time() + 1\nwhile time.time() < t: pass"]
        )
        for _ in range((os.cpu_count() or 1) + 2)
    ]
    try:
        time.sleep(0.8)
        waited = sum(run_queue_seconds(proc.pid) for proc in busy)
    finally:
        for proc in busy:
            proc.wait()
    assert waited > 0.05
    assert run_queue_seconds() >= 0
    with pytest.raises(FileNotFoundError):
        run_queue_seconds(2**22 + 1)  # above pid_max's ceiling: no such process


def test_a_window_counts_the_waits_of_the_server_and_its_database() -> None:
    machine = CpuSample(busy=100.0, total=400.0)
    first = Sample(10.0, 1000, {7: 1.0}, machine, server_wait=2.0, db_wait={7: 0.5})
    last = Sample(13.0, 1000, {7: 2.0, 8: 1.0}, machine, server_wait=3.5, db_wait={7: 1.0, 8: 0.25})
    out = ServerWatch.window(first, last, deliveries=1000, sends=500)
    assert out["run_queue_s"] == 1.5
    assert out["db_run_queue_s"] == 0.75  # a backend that appeared is charged all its wait
    unread = ServerWatch.window(
        Sample(10.0, 1000, {}, machine), Sample(13.0, 1000, {}, machine), 1000, 500
    )
    assert "run_queue_s" not in unread


def test_a_single_threaded_process_cpu_time_is_read_to_the_nanosecond() -> None:
    # A child that spins for 0.2 s of its own CPU, then waits to be read.
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "t = time.thread_time()\n"
            "while time.thread_time() - t < 0.2: pass\n"
            "print('spun', flush=True)\n"
            "sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "spun\n"
        used = schedstat_cpu_seconds(child.pid)
        # The spin, plus the interpreter's start-up; a clock-tick count would be 0.20 or 0.21.
        assert 0.2 <= used < 5.0
        assert used != round(used, 2)
    finally:
        child.communicate("")
