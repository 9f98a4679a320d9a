"""The modules a compiled build compiles with mypyc, and which of them this process runs compiled.

They are the ones every message goes through: the sans-IO protocol cores, which parse and write
every frame, and the send path around them (the WebSocket endpoint, the STOMP connection and
its dispatcher and subscriptions, the chat service and its lookup caches, the JSON codec, the
broker envelope, the request parser, the write pipeline, the records, the append batches, the
tallies of its metrics).
`setup.py` compiles them to C extension modules when `IEUM_CHAT_COMPILE=1`; their `.py` files
stay beside the extensions, which Python's import system prefers, and run wherever no
extension was built (an editable install, a build without a C compiler). Both builds pass the
same tests.

A compiled coroutine must not await inside an ``except`` or ``finally`` block, nor use
``async with`` (whose exit is awaited in such a block): mypyc's coroutines keep the exception
being handled across such an await wrongly, and another coroutine can then raise it. Seen
here: with the STOMP connection's SockJS runner (a ``finally`` that awaited its tasks) and
the write pipeline (a ``finally`` that awaited the previous batch) both compiled, a test's
writer task died of the CancelledError of an earlier test's session. A unit test holds every
listed module to this: the pipeline holds the next batch's failure while it answers for the
previous batch, then raises it, and the service looks a refused room up after its handler.
The records every message builds (the store's ``Message``, ``NewMessage`` and ``Stored``,
the chat's ``SendRequest``, the STOMP parser's head) write their ``__init__`` out: each is a
``@dataclass(init=False, slots=True, unsafe_hash=True)`` whose fields are ``Final``, with an
``__init__`` that takes the fields in order and sets each one. A frozen dataclass's generated
``__init__`` is Python code even in a compiled module, and it sets every field through
``object.__setattr__``; the written one is compiled, and stores each field in its slot (a
``Message`` from ``NewMessage.numbered``: 3.2 µs against 0.09 µs, both compiled). The
records stay immutable: mypy refuses an assignment to a ``Final`` field outside ``__init__``,
and in a compiled build so does the running program (the attribute has no setter); the
dataclass still gives them equality, hashing by their fields, ``repr``, ``fields()`` and
``replace()``. A unit test holds every such ``__init__`` to its class's fields. The STOMP
core's public events and frames stay frozen dataclasses, immutable in every build.
Compiled classes cannot be changed on an instance or subclassed from Python, so tests change
the objects around them (the broker, the presence backend) instead; the in-process broker
stays Python, since tests subclass it.
"""

from __future__ import annotations

import importlib

__all__ = ["COMPILED_MODULES", "compiled_modules", "cores"]

COMPILED_MODULES: tuple[str, ...] = (
    "ieum_chat.ids",
    "ieum_chat.stomp._escape",
    "ieum_chat.stomp._events",
    "ieum_chat.stomp._frame",
    "ieum_chat.stomp._parser",
    "ieum_chat.stomp._serializer",
    "ieum_chat.stomp._session",
    "ieum_chat.websocket._connection",
    "ieum_chat.websocket._parser",
    "ieum_chat.websocket._serializer",
    "ieum_chat.gateway.connection",
    "ieum_chat.gateway.dispatch",
    "ieum_chat.gateway.hub",
    "ieum_chat.gateway.subscriptions",
    "ieum_chat.gateway.wsserver",
    "ieum_chat.chat.cache",
    "ieum_chat.chat.codec",
    "ieum_chat.chat.envelope",
    "ieum_chat.chat.limits",
    "ieum_chat.chat.pending",
    "ieum_chat.chat.pipeline",
    "ieum_chat.chat.requests",
    "ieum_chat.chat.service",
    "ieum_chat.store.appends",
    "ieum_chat.store.records",
    "ieum_chat.observability.tallies",
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
