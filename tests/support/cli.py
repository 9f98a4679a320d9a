"""Checks of the command lines (the bench's, the server's)."""

from __future__ import annotations

import argparse

import pytest

__all__ = ["assert_refused"]


def assert_refused(
    parser: argparse.ArgumentParser, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The parser exits with argparse's usage error (2), naming the first of ``args``, before
    anything runs."""
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(args)
    assert exit_.value.code == 2
    assert f"argument {args[0]}" in capsys.readouterr().err
