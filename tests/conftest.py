"""The whole suite runs against one build of the protocol cores: pure Python, or compiled with
mypyc (`make compiled`, then PYTHONPATH=build/compiled/src). IEUM_CHAT_BUILD names the build a
run is for, and the run stops at once if the imported package is another."""

from __future__ import annotations

import os

import pytest

from ieum_chat._build import compiled_modules, cores

pytest_plugins = ["tests.support.fixtures"]


def pytest_configure(config: pytest.Config) -> None:
    build = os.environ.get("IEUM_CHAT_BUILD")
    if build is not None and cores() != build:
        raise pytest.UsageError(
            f"IEUM_CHAT_BUILD={build}, but the protocol cores imported are {cores()} "
            f"(compiled: {', '.join(compiled_modules()) or 'none'})"
        )


def pytest_report_header(config: pytest.Config) -> str:
    return f"ieum-chat protocol cores: {cores()}"
