"""Where the demo page's browser library is: a ``node_modules`` folder of an npm install (of
``web/``, whose one package is the @ieum/chat SDK built in ``clients/js``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Final

from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["VENDOR_FILES", "DemoSettings", "candidate_dirs", "find_vendor_dir"]

# The URL name under /demo/vendor/ -> the file inside node_modules. Only these are served:
# the page needs the SDK's browser bundle (with @stomp/stompjs and sockjs-client inside), and
# nothing else of node_modules is exposed.
VENDOR_FILES: Final[Mapping[str, str]] = MappingProxyType(
    {"ieum-chat.min.js": "@ieum/chat/dist/ieum-chat.min.js"}
)

# src/ieum_chat/demo/_assets.py -> the checkout's root, when running from one.
_SOURCE_TREE: Final = Path(__file__).resolve().parents[3]


class DemoSettings(BaseSettings):
    """``IEUM_DEMO_ASSETS``: the ``node_modules`` folder holding the page's npm package."""

    model_config = SettingsConfigDict(env_prefix="IEUM_DEMO_", extra="ignore", frozen=True)

    assets: Path | None = None


def candidate_dirs(settings: DemoSettings) -> list[Path]:
    """The folders looked in, in order: ``IEUM_DEMO_ASSETS`` alone when set; else ``web/``'s
    ``node_modules`` in the working directory, then in the source tree this module runs from
    (an editable install; an installed wheel has no such tree)."""
    if settings.assets is not None:
        return [settings.assets]
    found = [Path.cwd() / "web" / "node_modules"]
    if (_SOURCE_TREE / "pyproject.toml").is_file():
        tree = _SOURCE_TREE / "web" / "node_modules"
        if tree.resolve() != found[0].resolve():
            found.append(tree)
    return found


def find_vendor_dir(settings: DemoSettings) -> Path | None:
    """The first candidate holding every vendor file, or ``None``. Looked up per request, so
    that ``npm ci`` run after the server started is picked up without a restart."""
    for directory in candidate_dirs(settings):
        if all((directory / rel).is_file() for rel in VENDOR_FILES.values()):
            return directory
    return None
