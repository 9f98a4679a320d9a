"""The list of modules a compiled build compiles, and how a process tells which build it runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from ieum_chat import _build
from ieum_chat._build import COMPILED_MODULES, compiled_modules, cores


@pytest.mark.parametrize("name", COMPILED_MODULES)
def test_each_module_listed_has_its_source_beside_it(name: str) -> None:
    """setup.py compiles the listed sources; the .py stays the fallback of every build."""
    spec = importlib.util.find_spec(name)
    assert spec is not None
    assert spec.origin is not None
    source = Path(spec.origin).parent / (name.rsplit(".", 1)[1] + ".py")
    assert source.is_file()


def test_the_cores_are_all_protocol_cores() -> None:
    """Only the sans-IO packages are compiled: the app around them stays plain Python."""
    assert {name.split(".")[1] for name in COMPILED_MODULES} == {"stomp", "websocket"}


def test_the_build_is_named_by_what_was_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    imported = compiled_modules()
    assert cores() == ("compiled" if imported == COMPILED_MODULES else "pure")
    monkeypatch.setattr(_build, "compiled_modules", lambda: COMPILED_MODULES[:1])
    assert cores() == "mixed"
    monkeypatch.setattr(_build, "compiled_modules", lambda: ())
    assert cores() == "pure"
    monkeypatch.setattr(_build, "compiled_modules", lambda: COMPILED_MODULES)
    assert cores() == "compiled"
