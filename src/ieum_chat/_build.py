"""The modules a compiled build compiles with mypyc, and which of them this process runs compiled.

The sans-IO protocol cores parse and write every frame of every message. `setup.py` compiles them
to C extension modules when `IEUM_CHAT_COMPILE=1`; their `.py` files stay beside the extensions,
which Python's import system prefers, and run wherever no extension was built (an editable
install, a build without a C compiler). Both builds pass the same tests.
"""

from __future__ import annotations

import importlib

__all__ = ["COMPILED_MODULES", "compiled_modules", "cores"]

COMPILED_MODULES: tuple[str, ...] = (
    "ieum_chat.stomp._escape",
    "ieum_chat.stomp._events",
    "ieum_chat.stomp._frame",
    "ieum_chat.stomp._parser",
    "ieum_chat.stomp._serializer",
    "ieum_chat.stomp._session",
    "ieum_chat.websocket._connection",
    "ieum_chat.websocket._parser",
    "ieum_chat.websocket._serializer",
)


def compiled_modules() -> tuple[str, ...]:
    """Those of COMPILED_MODULES that this process imported from extension modules."""
    compiled = []
    for name in COMPILED_MODULES:
        path = importlib.import_module(name).__file__ or ""
        if not path.endswith(".py"):
            compiled.append(name)
    return tuple(compiled)


def cores() -> str:
    """Which build of the protocol cores this process runs: "compiled", "pure" or "mixed"."""
    compiled = compiled_modules()
    if not compiled:
        return "pure"
    return "compiled" if len(compiled) == len(COMPILED_MODULES) else "mixed"
