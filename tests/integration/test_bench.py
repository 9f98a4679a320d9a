"""The load generator (bench/) against a real server, on SQLite and PostgreSQL: a few seconds of
traffic from two processes; the JSON result must show every message (and reaction) acknowledged
and delivered to both members exactly once. (The RabbitMQ comparison is a benchmark, not a
test.)"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from bench._report import load_table
from bench._worker import Member, Run

from ieum_chat import cli as ieum_cli
from tests.support.server import Cli, ServerProcess

ROOT = Path(__file__).resolve().parents[2]
# The per-user message limits would throttle the load; the test is about the generator.
LOAD_ENV = {"IEUM_MESSAGE_RATE": "1000000", "IEUM_MESSAGE_BURST": "1000000"}


@pytest.fixture(scope="module")
def bench_server(cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log_path = tmp_path_factory.mktemp("bench-log") / "server.log"
    proc = ServerProcess(cli, log_path, extra_env=LOAD_ENV).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def seed_file(cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Couples every run may reuse: a run tells its own messages apart by their tempIds."""
    path = tmp_path_factory.mktemp("bench-seed") / "seed.json"
    path.write_text(json.dumps(cli.seed(5)))
    return path


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args, "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run_load(server: ServerProcess, seed: Path, tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "result.json"
    assert server.proc is not None
    proc = bench(
        "run",
        *("--url", server.ws_url, "--seed", str(seed), "--couples", "3", "--procs", "2"),
        *("--warmup", "0.2", "--drain", "10", "--server-pid", str(server.proc.pid)),
        *("--out", str(out), *args),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "msgs/s" in proc.stdout
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def assert_nothing_lost(result: dict[str, Any]) -> None:
    counts, loss = result["counts"], result["loss"]
    assert counts["sent"] > 0
    assert counts["acked"] == counts["sent"]
    assert counts["delivered"] == 2 * counts["sent"]  # the partner and the sender's own echo
    assert counts["delivered_partner"] == counts["sent"]
    for key in ("lost", "unacked", "duplicates", "seq_gaps", "seq_backwards", "misrouted"):
        assert loss[key] == 0, key
    assert loss["receipt_out_of_order"] == 0
    assert result["errors"] == []


def test_closed_loop_loses_and_duplicates_nothing(
    bench_server: ServerProcess, seed_file: Path, tmp_path: Path
) -> None:
    result = run_load(bench_server, seed_file, tmp_path, "--window", "4", "--duration", "1")
    assert_nothing_lost(result)
    assert result["config"] == {**result["config"], "sessions": 6, "procs": 2, "loop": "closed"}
    assert result["throughput"]["msgs_per_s"] > 0
    delivery = result["latency_ms"]["delivery"]
    assert delivery["count"] > 0
    assert 0 < delivery["p50"] <= delivery["p99"] <= delivery["max"]
    assert result["server"]["cpu_s"] > 0
    assert result["server"]["rss_kb_end"] > 0
    # The page cache was written out before the traffic: no earlier run's writeback in it.
    assert set(result["flushed_before"]) == {"unwritten_kb", "sync_s"}


def test_open_loop_sends_at_the_rate_asked(
    bench_server: ServerProcess, seed_file: Path, tmp_path: Path
) -> None:
    result = run_load(bench_server, seed_file, tmp_path, "--rate", "300", "--duration", "1")
    assert_nothing_lost(result)
    assert result["config"]["loop"] == "open"
    assert 200 <= result["throughput"]["sent_per_s"] <= 400


def test_the_hosts_spells_are_timed_beside_a_run_when_asked(
    bench_server: ServerProcess, seed_file: Path, tmp_path: Path
) -> None:
    result = run_load(
        bench_server, seed_file, tmp_path, "--rate", "300", "--duration", "1", "--steadiness"
    )
    assert_nothing_lost(result)
    spells = result["host_spells"]
    assert spells["window_ms"] == 500.0
    assert spells["windows"] == 2  # 1 s measured
    assert 0 <= spells["slowed"] <= spells["windows"]
    # The slowest 1 % of the partner deliveries measured (at least one).
    measured = result["latency_ms"]["delivery"]["count"]
    assert spells["slowest"] == max(1, measured // 100)
    assert 0 <= spells["slowest_in_spells"] <= spells["slowest"]
    assert "in spells (" in load_table([(result["label"], result)])


def test_reactions_are_acknowledged_and_delivered_once_beside_the_messages(
    bench_server: ServerProcess, seed_file: Path, tmp_path: Path
) -> None:
    result = run_load(
        bench_server,
        seed_file,
        tmp_path,
        *("--reactions", "0.25", "--window", "2", "--duration", "1.5"),
    )
    assert_nothing_lost(result)
    assert result["config"]["reactions"] == 0.25
    counts, loss = result["counts"], result["loss"]
    sent = counts["reactions_sent"]
    assert sent > 0
    assert counts["reactions_acked"] == sent
    assert counts["reactions_delivered"] == 2 * sent
    assert counts["reactions_delivered_partner"] == sent
    # A quarter of each member's SENDs, give or take the one its phase starts it with.
    assert sent <= 0.25 * (sent + counts["sent"]) + result["config"]["sessions"]
    assert loss["rejected"] == loss["reactions_lost"] == 0
    throughput = result["throughput"]
    assert throughput["reactions_per_s"] > 0
    assert throughput["sends_per_s"] == pytest.approx(
        throughput["msgs_per_s"] + throughput["reactions_per_s"], abs=0.2
    )
    assert result["latency_ms"]["reaction_delivery"]["count"] > 0
    assert result["server"]["cpu_us_per_send"] > 0


def _payload(run: Run, sender: Member, n: int, seq: int, kind: str) -> bytes:
    """What the server sends for SEND `n` of `sender`: a chat message or its REACTION event."""
    sender.sent_at.append(0.0)
    sender.kinds.append(0 if kind == "message" else 1)
    payload: dict[str, Any] = {"seq": seq, "tempId": f"{run.run_id}.{sender.gid}.{n}"}
    if kind == "message":
        payload |= {"id": f"m{n}", "type": "TEXT"}
    else:
        payload |= {"type": "REACTION", "messageId": "m0", "op": "add"}
    return orjson.dumps(payload)


def test_the_seq_check_follows_the_whole_stream_of_messages_and_events() -> None:
    run = Run("r1", reactions=0.5)
    a = Member(run, 0, "", "/app/chat/c", "x")
    b = Member(run, 1, "", "/app/chat/c", "x")
    a.partner, b.partner = b, a
    run.members.update({"0": a, "1": b})
    stream = [
        _payload(run, a, 0, 1, "message"),
        _payload(run, b, 0, 2, "reaction"),
        orjson.dumps({"type": "READ_RECEIPT", "seq": 3}),  # no tempId: still the stream
        _payload(run, a, 1, 4, "message"),
    ]
    for body in stream:
        b.on_message(body, 0.0)
    assert (run.stats.seq_gaps, run.stats.seq_backwards) == (0, 0)
    assert (run.stats.delivered, run.stats.reactions_delivered) == (2, 1)
    assert b.last_message_id == "m1"
    b.on_message(_payload(run, a, 2, 6, "message"), 0.0)  # seq 5 never came
    b.on_message(stream[0], 0.0)  # a duplicate is counted once, as a duplicate
    assert (run.stats.seq_gaps, run.stats.seq_backwards, run.stats.duplicates) == (1, 0, 1)


def test_idle_sessions_stay_open_and_rss_per_session_is_reported(
    bench_server: ServerProcess, seed_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "idle.json"
    assert bench_server.proc is not None
    proc = bench(
        "idle",
        *("--url", bench_server.ws_url, "--seed", str(seed_file), "--sessions", "10"),
        *(
            "--hold",
            "0.5",
            "--settle",
            "0.3",
            "--server-pid",
            str(bench_server.proc.pid),
            "--out",
            str(out),
        ),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["sessions"] == result["open_at_end"] == 10
    assert result["failed"] == 0
    assert isinstance(result["server"]["rss_kb_per_session"], float | int)


def test_reactions_on_a_server_without_them_is_a_one_line_error() -> None:
    proc = bench("run", "--target", "rabbitmq", "--reactions", "0.1")
    assert proc.returncode == 2
    assert proc.stderr == "bench: error: --reactions: RabbitMQ Web-STOMP has no reactions\n"


def test_bad_seed_is_a_one_line_error(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text('{"not": "a list of couples"}')
    proc = bench("run", "--seed", str(seed))
    assert proc.returncode == 2
    assert proc.stderr.startswith("bench: error: --seed is not `ieum-chat seed` output")
    assert "Traceback" not in proc.stderr


def test_ieum_chat_bench_runs_the_source_tree_generator() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ieum_chat.cli", "bench", "run", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "--window" in proc.stdout


def test_ieum_chat_bench_outside_a_source_tree_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    # As if installed from a wheel: no bench/ beside the package either.
    monkeypatch.setattr(ieum_cli, "__file__", str(tmp_path / "site" / "ieum_chat" / "cli.py"))
    with pytest.raises(SystemExit) as info:
        ieum_cli.main(["bench", "run"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("ieum-chat: error: bench/ is not in this tree")
    assert err.count("\n") == 1
