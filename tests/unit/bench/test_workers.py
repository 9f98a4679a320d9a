"""``python -m bench.workers`` refuses numbers it cannot run with, before anything starts."""

from __future__ import annotations

import pytest
from bench.workers import _parser


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
    with pytest.raises(SystemExit) as exit_:
        _parser().parse_args(args)
    assert exit_.value.code == 2
    assert f"argument {args[0]}" in capsys.readouterr().err


def test_the_defaults_parse() -> None:
    args = _parser().parse_args([])
    assert (args.workers, args.couples, args.window, args.procs) == ([1, 2], 20, 8, 2)
    assert (args.duration, args.warmup, args.drain) == (10.0, 2.0, 10.0)
