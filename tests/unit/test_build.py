"""The list of modules a compiled build compiles, and how a process tells which build it runs."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from ieum_chat import _build
from ieum_chat._build import COMPILED_MODULES, compiled_modules, cores


def _source(name: str) -> Path:
    """The .py file of a listed module, beside its extension in a compiled build."""
    spec = importlib.util.find_spec(name)
    assert spec is not None
    assert spec.origin is not None
    return Path(spec.origin).parent / (name.rsplit(".", 1)[1] + ".py")


@pytest.mark.parametrize("name", COMPILED_MODULES)
def test_each_module_listed_has_its_source_beside_it(name: str) -> None:
    """setup.py compiles the listed sources; the .py stays the fallback of every build."""
    assert _source(name).is_file()


def _awaits_mypyc_gets_wrong(source: str) -> list[str]:
    """Where a coroutine awaits inside an ``except`` or ``finally`` block, or uses ``async
    with`` (see ``ieum_chat._build``)."""
    found: list[str] = []

    class Visitor(ast.NodeVisitor):
        def __init__(self) -> None:
            self.block: list[str] = []  # the enclosing except/finally blocks of this function

        def _within(self, block: str, body: list[ast.stmt]) -> None:
            self.block.append(block)
            for statement in body:
                self.visit(statement)
            self.block.pop()

        def visit_Try(self, node: ast.Try | ast.TryStar) -> None:
            for statement in [*node.body, *node.orelse]:
                self.visit(statement)
            for handler in node.handlers:
                self._within("except", handler.body)
            self._within("finally", node.finalbody)

        visit_TryStar = visit_Try

        def visit_Await(self, node: ast.Await) -> None:
            if self.block:
                found.append(f"line {node.lineno}: await in {self.block[-1]}")
            self.generic_visit(node)

        def visit_AsyncWith(self, node: ast.AsyncWith) -> None:
            found.append(f"line {node.lineno}: async with")
            self.generic_visit(node)

        def _function(self, node: ast.AST) -> None:
            outer, self.block = self.block, []
            self.generic_visit(node)
            self.block = outer

        visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    Visitor().visit(ast.parse(source))
    return found


@pytest.mark.parametrize("name", COMPILED_MODULES)
def test_no_compiled_coroutine_awaits_where_mypyc_loses_the_exception(name: str) -> None:
    assert _awaits_mypyc_gets_wrong(_source(name).read_text()) == []


def test_the_check_finds_each_construct() -> None:
    source = """
async def f(lock, task):
    try:
        await task
    except ValueError:
        await task
    finally:
        await task
        def inner():
            return 1
    async with lock:
        pass
"""
    assert _awaits_mypyc_gets_wrong(source) == [
        "line 6: await in except",
        "line 8: await in finally",
        "line 11: async with",
    ]


def test_the_send_path_is_compiled_and_the_app_around_it_is_not() -> None:
    packages = {name.split(".")[1] for name in COMPILED_MODULES}
    assert packages == {"stomp", "websocket", "gateway", "chat", "store"}
    assert "ieum_chat.gateway.wsserver" in COMPILED_MODULES
    assert {"ieum_chat.chat.pipeline", "ieum_chat.chat.service"} <= set(COMPILED_MODULES)


def test_the_build_is_named_by_what_was_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    imported = compiled_modules()
    assert cores() == ("compiled" if imported == COMPILED_MODULES else "pure")
    monkeypatch.setattr(_build, "compiled_modules", lambda: COMPILED_MODULES[:1])
    assert cores() == "mixed"
    monkeypatch.setattr(_build, "compiled_modules", lambda: ())
    assert cores() == "pure"
    monkeypatch.setattr(_build, "compiled_modules", lambda: COMPILED_MODULES)
    assert cores() == "compiled"
