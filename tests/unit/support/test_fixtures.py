"""The shared fixtures' markers: ``backends`` leaves the other backends out of the run (not
skipped), ``server_env`` is merged over SERVER_ENV for the module's server."""

from __future__ import annotations

import pytest

from tests.support.fixtures import SERVER_ENV

pytest_plugins = ["pytester"]

_INI = """
[pytest]
markers =
    backends(*names): the module's backends
    server_env(env): the module's server variables
    postgres: needs PostgreSQL
asyncio_default_fixture_loop_scope = function
"""


def run(pytester: pytest.Pytester, source: str) -> pytest.RunResult:
    pytester.makeini(_INI)
    pytester.makepyfile(source)
    return pytester.runpytest_inprocess("-p", "tests.support.fixtures", "-q")


def test_a_backends_marker_deselects_the_other_backends(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
import pytest

pytestmark = pytest.mark.backends("sqlite")

def test_url(database_url):
    assert database_url.startswith("sqlite:///")

def test_without_a_database():
    pass
""",
    )
    result.assert_outcomes(passed=2, deselected=1)


def test_without_the_marker_every_backend_runs(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
def test_url(database_url):
    pass
""",
    )
    outcomes = result.parseoutcomes()
    assert "deselected" not in outcomes
    assert outcomes.get("passed", 0) + outcomes.get("skipped", 0) == 2


def test_an_unknown_backend_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
import pytest

pytestmark = pytest.mark.backends("mysql")

def test_url(database_url):
    pass
""",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_server_env_is_merged_over_the_shared_one(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        f"""
import pytest

from tests.support.fixtures import server_env

pytestmark = pytest.mark.server_env({{"IEUM_LOG_LEVEL": "DEBUG", "IEUM_MESSAGE_RATE": "5"}})

@pytest.fixture(scope="module")
def env(request):
    return server_env(request.node)

def test_env(env):
    assert env == {{**{SERVER_ENV!r}, "IEUM_LOG_LEVEL": "DEBUG", "IEUM_MESSAGE_RATE": "5"}}
""",
    )
    result.assert_outcomes(passed=1)
