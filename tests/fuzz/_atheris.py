"""Running a fuzz target under atheris (coverage-guided), for the targets' ``__main__``.

atheris is optional, not a project dependency: pytest runs every target's ``fuzz_one`` under
hypothesis without it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

__all__ = ["run_atheris"]


def run_atheris(fuzz_one: Callable[[bytes], None]) -> None:
    try:
        atheris = importlib.import_module("atheris")
    except ImportError:
        raise SystemExit("pip install atheris to fuzz (pytest runs this without it)") from None

    atheris.instrument_all()
    atheris.Setup(sys.argv, fuzz_one)
    atheris.Fuzz()
