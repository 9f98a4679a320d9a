"""``python -m bench.workers`` refuses numbers it cannot run with, before anything starts."""

from __future__ import annotations

import pytest
from bench.workers import _parser

from tests.support.cli import assert_refused


@pytest.mark.parametrize(
    "args",
    [
        ["--couples", "0"],
        ["--window", "-2"],
        ["--procs", "0"],
        ["--duration", "inf"],
        ["--warmup", "-1"],
        ["--drain", "nan"],
        ["--workers", "0,1"],
    ],
)
def test_numbers_that_cannot_run_are_refused(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert_refused(_parser(), args, capsys)


def test_the_defaults_parse() -> None:
    args = _parser().parse_args([])
    assert (args.workers, args.couples, args.window, args.procs) == ([1, 2], 20, 8, 2)
    assert (args.duration, args.warmup, args.drain) == (10.0, 2.0, 10.0)
