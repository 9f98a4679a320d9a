"""Serving: the server of one process (:func:`build_server`), and several worker processes on
one port under a supervisor (:func:`supervise`, ``IEUM_WORKERS``)."""

from ieum_chat.workers._server import Server, build_server
from ieum_chat.workers._supervisor import refusal, supervise

__all__ = ["Server", "build_server", "refusal", "supervise"]
