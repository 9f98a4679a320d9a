"""The list of modules a compiled build compiles, and how a process tells which build it runs."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from ieum_chat import _build
from ieum_chat._build import COMPILED_MODULES, compiled_modules, cores

_SRC = Path(_build.__file__).parent


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
    assert packages == {"ids", "stomp", "websocket", "gateway", "chat", "store", "observability"}
    # of the metrics, only the tallies the message path counts in (prometheus stays Python)
    assert [m for m in COMPILED_MODULES if ".observability." in m] == [
        "ieum_chat.observability.tallies"
    ]
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


def _written_record_faults(source: str) -> dict[str, list[str]]:
    """Each dataclass with ``init=False`` (a record whose ``__init__`` is written out, see
    ``ieum_chat._build``) and how it departs from the rule: every field ``Final`` without a
    value in the class body, an ``__init__`` taking exactly the fields in their order and
    doing nothing but ``self.<field> = <field>`` for each of them, in that order."""
    records: dict[str, list[str]] = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef) or not any(
            isinstance(d, ast.Call)
            and isinstance(d.func, ast.Name)
            and d.func.id == "dataclass"
            and any(
                k.arg == "init" and isinstance(k.value, ast.Constant) and k.value.value is False
                for k in d.keywords
            )
            for d in node.decorator_list
        ):
            continue
        faults = records[node.name] = []
        fields = [s for s in node.body if isinstance(s, ast.AnnAssign)]
        names = [f.target.id for f in fields if isinstance(f.target, ast.Name)]
        for f in fields:
            annotation = f.annotation
            if not (
                isinstance(annotation, ast.Subscript)
                and isinstance(annotation.value, ast.Name)
                and annotation.value.id == "Final"
            ):
                faults.append(f"{ast.unparse(f.target)} is not Final")
            if f.value is not None:
                faults.append(f"{ast.unparse(f.target)} has a value in the class body")
        init = next(
            (s for s in node.body if isinstance(s, ast.FunctionDef) and s.name == "__init__"),
            None,
        )
        if init is None:
            faults.append("no __init__")
            continue
        args = init.args
        params = [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]][1:]
        if params != names or args.vararg is not None or args.kwarg is not None:
            faults.append(f"__init__ takes {params}, the fields are {names}")
        body = init.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # a docstring
        expected = [f"self.{name} = {name}" for name in names]
        if [ast.unparse(s) for s in body] != expected:
            faults.append(f"__init__ does more or less than {expected}")
    return records


def _written_records() -> dict[str, list[str]]:
    """Every record of the source tree whose ``__init__`` is written out, by module and name."""
    return {
        f"{path.relative_to(_SRC)}:{name}": faults
        for path in sorted(_SRC.rglob("*.py"))
        for name, faults in _written_record_faults(path.read_text()).items()
    }


def test_every_written_out_record_init_sets_exactly_its_fields() -> None:
    records = _written_records()
    assert {
        "store/records.py:Message",
        "store/records.py:NewMessage",
        "store/records.py:Stored",
        "chat/requests.py:SendRequest",
        "stomp/_parser.py:_Head",
    } <= records.keys()  # the records every message builds (see ieum_chat._build)
    assert {name: faults for name, faults in records.items() if faults} == {}


def test_the_record_check_finds_each_departure() -> None:
    source = """
@dataclass(init=False, slots=True)
class Good:
    a: Final[int]
    b: Final[str | None]

    def __init__(self, a: int, b: str | None = None) -> None:
        '''A docstring is allowed.'''
        self.a = a
        self.b = b

@dataclass(init=False, slots=True)
class Bad:
    a: int
    b: Final[str] = "x"
    c: Final[int]

    def __init__(self, a: int, c: int, b: str = "x") -> None:
        self.a = a
        self.b = b
        self.c = c + 1

@dataclass(init=False)
class Missing:
    a: Final[int]

@dataclass(frozen=True)
class Generated:
    a: int
"""
    assert _written_record_faults(source) == {
        "Good": [],
        "Bad": [
            "a is not Final",
            "b has a value in the class body",
            "__init__ takes ['a', 'c', 'b'], the fields are ['a', 'b', 'c']",
            "__init__ does more or less than ['self.a = a', 'self.b = b', 'self.c = c']",
        ],
        "Missing": ["no __init__"],
    }
