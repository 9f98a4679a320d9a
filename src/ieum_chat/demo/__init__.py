"""The demo chat page at ``/demo``: two people chatting, in any browser, with nothing to build.

The page (HTML, CSS and a plain script, shipped as package data) talks to the server like any
browser client: REST for the room, history, read marks and uploads, and STOMP through
@stomp/stompjs over a raw WebSocket, or over sockjs-client when WebSocket is blocked. Those two
libraries come from an npm install with a lock file (``web/`` of the source tree, ``make demo``)
and are served from its ``node_modules`` at ``/demo/vendor/...``; they are never copied into the
repository or the package. ``IEUM_DEMO_ASSETS`` names another ``node_modules`` folder.
"""

from __future__ import annotations

from ieum_chat.demo._assets import VENDOR_FILES, DemoSettings, candidate_dirs, find_vendor_dir
from ieum_chat.demo._routes import install_demo

__all__ = ["VENDOR_FILES", "DemoSettings", "candidate_dirs", "find_vendor_dir", "install_demo"]
