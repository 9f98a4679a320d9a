"""What the generator reads off and does to the machine around a run."""

from __future__ import annotations

import os
from pathlib import Path

from bench._proc import CpuSample, _unwritten_kb, flush_dirty_pages, machine_cpu
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
