"""The bench's ieum-chat server runs the package it is told to: installed, or a tree's src/."""

from __future__ import annotations

import os
from pathlib import Path

from bench._servers import IeumServer


def test_a_source_tree_goes_first_on_the_servers_path(tmp_path: Path) -> None:
    server = IeumServer("sqlite", tmp_path, 1, src=Path("build/compiled"))
    assert server.env["PYTHONPATH"] == str(Path("build/compiled/src").resolve())


def test_without_one_the_server_imports_what_the_bench_does(tmp_path: Path) -> None:
    server = IeumServer("sqlite", tmp_path, 1)
    assert server.env.get("PYTHONPATH") == os.environ.get("PYTHONPATH")
