"""The bench's argument types: the numbers its command lines take and refuse."""

from __future__ import annotations

import argparse

import pytest
from bench._args import _positive_int, _positive_number, _seconds
from bench.steadiness import main as steadiness_main


def test_seconds_take_zero_and_refuse_what_is_not_a_finite_non_negative_number() -> None:
    assert _seconds("0") == 0.0
    assert _seconds("2.5") == 2.5
    for text in ("-1", "inf", "nan", "ten"):
        with pytest.raises(argparse.ArgumentTypeError):
            _seconds(text)


def test_a_positive_number_refuses_zero_as_well() -> None:
    assert _positive_number("0.5") == 0.5
    for text in ("0", "-0.5", "inf", "nan", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            _positive_number(text)
    assert _positive_int("3") == 3
    with pytest.raises(argparse.ArgumentTypeError):
        _positive_int("0")


@pytest.mark.parametrize(
    "argv", [["--period", "-1"], ["--seconds", "0"], ["--window", "inf"], ["--factor", "x"]]
)
def test_the_steadiness_command_refuses_a_bad_number_before_it_runs(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        steadiness_main(argv)
    assert exit_.value.code == 2
    assert f"argument {argv[0]}" in capsys.readouterr().err
