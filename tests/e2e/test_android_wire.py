"""The Android client guide's wire sequence (docs/android.md), spoken by a JVM program.

``tests/jvm/ieum/android`` is plain Java 17 on Debian's OkHttp 3.13 and Gson jars: it opens a
real OkHttp WebSocket to the server and does what the guide's app does (token and device id
in the STOMP CONNECT, the errors queue, the couple's topic resumed after a seq, SENDs with a
tempId and a receipt, the same tempId again, the REST fallback and history, FCM registration,
a non-member's refusal, heart-beats, a resume after the process died with a send in flight,
a token that expires). It reads every WebSocket message as StompProtocolAndroid 1.6.6 reads
it and checks that reading against STOMP 1.2: one frame per message, every header unchanged
by the library's header pattern, the whole JSON body. It prints ``ok NAME: ...`` per check.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import Cli, ServerProcess

JVM_SOURCES = Path(__file__).resolve().parent.parent / "jvm"
JARS = ("/usr/share/java/okhttp.jar", "/usr/share/java/okio.jar", "/usr/share/java/gson.jar")
MAIN = "ieum.android.WireCheck"
CHECKS = (
    "parser",
    "connect",
    "subscribe",
    "send",
    "dedup-stomp",
    "dedup-rest",
    "history",
    "device",
    "non-member",
    "heart-beat",
    "resume",
    "token-expired",
    "frames",
    "headers",
    "bodies",
)
# Long enough for the program's CONNECT; short enough to expire while it runs.
SHORT_TTL = 6


def require_jvm() -> tuple[str, str]:
    """javac and java, and the jars the program links against; skips without them (fails on CI)."""
    javac, java = shutil.which("javac"), shutil.which("java")
    missing = [name for name, path in (("javac", javac), ("java", java)) if path is None]
    missing += [jar for jar in JARS if not Path(jar).is_file()]
    if missing:
        reason = (
            f"missing {', '.join(missing)} "
            "(apt-get install openjdk-17-jdk-headless libokhttp-java libgoogle-gson-java)"
        )
        if os.environ.get("CI"):
            pytest.fail(f"a JDK and the OkHttp and Gson jars are required on CI: {reason}")
        pytest.skip(reason)
    assert javac is not None
    assert java is not None
    return javac, java


@pytest.fixture(scope="module")
def wire_check(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The compiled program: the command line that runs it."""
    javac, java = require_jvm()
    classes = tmp_path_factory.mktemp("jvm-classes")
    sources = sorted(str(p) for p in JVM_SOURCES.rglob("*.java"))
    classpath = ":".join(JARS)
    proc = subprocess.run(
        [javac, "-Xlint:all", "-Werror", "-d", str(classes), "-cp", classpath, *sources],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return [java, "-cp", f"{classes}:{classpath}", MAIN]


def test_android_wire_sequence(
    wire_check: list[str],
    server: ServerProcess,
    cli: Cli,
    couple: dict[str, str],
    couple_pool: Iterator[dict[str, str]],
) -> None:
    outsider = next(couple_pool)
    short = cli.run("token", couple["a"], "--ttl", str(SHORT_TTL)).stdout.strip()
    env = {
        **os.environ,
        "IEUM_WS_URL": server.ws_url,
        "IEUM_HTTP_URL": server.http_url,
        "IEUM_COUPLE": couple["couple"],
        "IEUM_TOKEN_A": couple["ta"],
        "IEUM_TOKEN_B": couple["tb"],
        "IEUM_TOKEN_OUTSIDER": outsider["ta"],
        "IEUM_TOKEN_SHORT": short,
    }
    proc = subprocess.run(
        wire_check, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    passed = [line.split(":", 1)[0].removeprefix("ok ") for line in proc.stdout.splitlines()]
    assert passed == list(CHECKS), report
