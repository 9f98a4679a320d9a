"""ServerProcess refuses a server of the other build when a run is for one build."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.server import Cli, ServerProcess

READY = "INFO ieum_chat.app: ieum-chat 0.1.0 ready (database sqlite, broker memory, "


def _server(tmp_path: Path, log: str) -> ServerProcess:
    path = tmp_path / "server.log"
    path.write_text(log)
    return ServerProcess(Cli({}), path)


@pytest.mark.parametrize("build", ["pure", "compiled"])
def test_a_server_of_the_build_asked_for_passes(tmp_path: Path, build: str) -> None:
    _server(tmp_path, f"{READY}protocol cores {build})\n")._check_build(build)


def test_a_server_of_the_other_build_fails_the_test(tmp_path: Path) -> None:
    server = _server(tmp_path, f"{READY}protocol cores pure)\n")
    with pytest.raises(AssertionError, match="IEUM_CHAT_BUILD=compiled"):
        server._check_build("compiled")
    with pytest.raises(AssertionError, match="IEUM_CHAT_BUILD=mixed"):
        server._check_build("mixed")


def test_without_a_build_asked_for_any_server_passes(tmp_path: Path) -> None:
    _server(tmp_path, f"{READY}protocol cores mixed)\n")._check_build(None)
