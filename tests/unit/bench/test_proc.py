"""What the generator reads off and does to the machine around a run."""

from __future__ import annotations

import os
from pathlib import Path

from bench._proc import _unwritten_kb, flush_dirty_pages

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
