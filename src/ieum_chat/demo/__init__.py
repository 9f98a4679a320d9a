"""The demo chat page at ``/demo``: two people chatting, in any browser.

The page (HTML, CSS and plain scripts, shipped as package data) renders the chat and handles
the member's input; the talking is done by the project's own client SDK, @ieum/chat
(``clients/js``), through its browser bundle: REST for the room, history and uploads, and
STOMP over a raw WebSocket, or over SockJS when WebSocket is blocked, with resume by seq and an
outbox kept in IndexedDB. The bundle is built in ``clients/js`` and installed into ``web/`` by
an npm install with a lock file (``make demo``), and served from its ``node_modules`` at
``/demo/vendor/...``; it is never copied into the repository or the package.
``IEUM_DEMO_ASSETS`` names another ``node_modules`` folder.
"""

from __future__ import annotations

from ieum_chat.demo._assets import VENDOR_FILES, DemoSettings, candidate_dirs, find_vendor_dir
from ieum_chat.demo._routes import install_demo

__all__ = ["VENDOR_FILES", "DemoSettings", "candidate_dirs", "find_vendor_dir", "install_demo"]
