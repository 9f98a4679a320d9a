"""Fixtures of the inspection tests: ffmpeg found (or the test skipped, failed on CI), a
working folder, an inspector with the default limits, and after every test a look at the
process table: no job's process may outlive its inspection."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ieum_chat.uploads.inspect import Inspector, MediaLimits
from tests.support.media import require_ffmpeg

__all__ = ["files_in", "hanging_program", "live_processes", "stand_in"]


def live_processes(needle: str) -> list[int]:
    """Processes (not zombies) whose command line holds ``needle``, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\x00", b" ").decode()
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue  # ended while we looked
        if needle in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def stand_in(folder: Path, name: str, body: str) -> Path:
    """A shell script named ``name`` in ``folder`` to put where ffmpeg or ffprobe is run."""
    script = folder / name
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return script


def hanging_program(folder: Path, name: str = "hang") -> Path:
    """A stand-in that writes its pid to ``<name>.pid`` beside itself and then sleeps for ten
    minutes, whatever its arguments."""
    return stand_in(folder, name, f'echo $$ > "{folder / name}.pid"\nexec sleep 600\n')


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture
def tools() -> tuple[str, str]:
    return require_ffmpeg()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path / "work"


@pytest.fixture
def inspector(tools: tuple[str, str]) -> Inspector:
    ffmpeg, ffprobe = tools
    return Inspector(MediaLimits(ffmpeg=ffmpeg, ffprobe=ffprobe))


@pytest.fixture(autouse=True)
def _no_job_left_behind(tmp_path: Path) -> Iterator[None]:
    """Every job's command line names a file under the test's folder."""
    yield
    assert live_processes(str(tmp_path)) == []
