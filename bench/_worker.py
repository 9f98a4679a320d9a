"""One generator process: its share of the couples, on one uvloop event loop.

Both members of a couple live in the same process, so send -> partner-delivery latency is read
on one clock and every check (loss, duplicates, seq gaps) is local.

A member numbers its SENDs 0, 1, 2... (the RECEIPT id, the last part of the tempId), chat
messages and reactions alike: with ``reactions`` > 0 that fraction of them is a reaction
(``/react``, a ❤️ added to the latest chat message the member has seen, then removed from it,
alternately), whose REACTION event comes back to both members with its tempId, as a message
does. So loss and duplicates are checked for both kinds the same way, and the seq check follows
the couple's whole stream (messages and events share one numbering: message seqs skip).

The parent talks to the worker over a pipe:

    worker -> ("ready", info)        every session is CONNECTed and SUBSCRIBEd (or failed)
    parent -> ("start", schedule)    traffic starts at schedule.t0 (time.monotonic(), which
                                     is one clock for every process on Linux)
    worker -> ("progress", counts)   once a second
    parent -> ("stop",)              idle mode: close the sessions and report
    worker -> ("result", result)     after the drain
    worker -> ("error", text)        the worker failed
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import traceback
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Literal

import orjson

from ieum_chat.stomp import Frame, serialize_frame

from ._proc import raise_nofile_limit, run_queue_seconds
from ._session import StompWsSession
from ._targets import Couple, Target
from ._ws import OP_TEXT, encode_frame

__all__ = ["Schedule", "WorkerConfig", "worker_main"]

_PROGRESS_EVERY = 1.0
_DRAIN_POLL = 0.05
_RATE_TICK = 0.002
_MAX_ERRORS = 20
_PPM = 1_000_000  # reaction fraction in parts per million: whole numbers add up exactly
_EMOJI = "\u2764\ufe0f"  # ❤️
# What each numbered SEND was (Member.kinds)
_MESSAGE, _REACTION_ADD, _REACTION_REMOVE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    target: Target
    couples: list[Couple]  # this worker's share
    first_index: list[int]  # global index of each couple: member ids are 2i and 2i+1
    mode: Literal["load", "idle"]
    run_id: str
    window: int = 1  # closed loop: SENDs awaiting their RECEIPT, per member
    rate: float = 0.0  # open loop: messages/s per member; 0 = closed loop
    message_bytes: int = 32
    reactions: float = 0.0  # fraction of SENDs that are reactions (ieum only)
    connect_concurrency: int = 64
    connect_timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class Schedule:
    t0: float  # traffic starts
    measure_from: float  # warm-up ends
    measure_to: float  # sending stops
    drain: float  # seconds to wait for outstanding RECEIPTs and deliveries


@dataclass(slots=True)
class Stats:
    sent: int = 0  # chat messages; reactions are counted apart
    acked: int = 0
    delivered: int = 0  # distinct chat messages received, own echoes included
    delivered_partner: int = 0
    reactions_sent: int = 0
    reactions_acked: int = 0
    reactions_delivered: int = 0  # distinct REACTION events received, own echoes included
    reactions_delivered_partner: int = 0
    rejected: int = 0  # SENDs answered with an error payload instead of a RECEIPT
    duplicates: int = 0
    system: int = 0  # SYSTEM events (presence), not counted as deliveries
    foreign: int = 0  # messages of another run or of no member we know
    misrouted: int = 0  # a member received a message of a couple it is not in
    receipt_out_of_order: int = 0
    seq_gaps: int = 0
    seq_backwards: int = 0
    closed: int = 0
    errors: list[str] = field(default_factory=list)
    receipt_latency: array[float] = field(default_factory=lambda: array("d"))
    delivery_latency: array[float] = field(default_factory=lambda: array("d"))
    delivery_sent: array[float] = field(default_factory=lambda: array("d"))  # of each above
    reaction_receipt_latency: array[float] = field(default_factory=lambda: array("d"))
    reaction_delivery_latency: array[float] = field(default_factory=lambda: array("d"))

    def error(self, text: str) -> None:
        if len(self.errors) < _MAX_ERRORS:
            self.errors.append(text)

    def counts(self) -> dict[str, int]:
        return {
            "sent": self.sent,
            "acked": self.acked,
            "delivered": self.delivered,
            "delivered_partner": self.delivered_partner,
            "reactions_sent": self.reactions_sent,
            "reactions_acked": self.reactions_acked,
            "reactions_delivered": self.reactions_delivered,
            "reactions_delivered_partner": self.reactions_delivered_partner,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
            "closed": self.closed,
        }


class Run:
    """What every member of the worker shares: counters, the window and the switch."""

    def __init__(self, run_id: str, reactions: float = 0.0) -> None:
        self.run_id = run_id
        self.reaction_ppm = round(reactions * _PPM)
        self.stats = Stats()
        self.members: dict[str, Member] = {}
        self.sending = False
        self.measure_from = float("inf")
        self.measure_to = float("inf")
        self.stopping = False
        self.rate_mode = False  # open loop: a RECEIPT does not trigger the next SEND


class Member:
    """One session of one couple member: sends, and tracks what it sent and received."""

    __slots__ = (
        "acked",
        "body_head",
        "dest_headers",
        "gid",
        "kinds",
        "last_message_id",
        "last_seq",
        "next_due",
        "partner",
        "react_credit",
        "react_headers",
        "reacted_on",
        "rejected",
        "run",
        "seen_partner",
        "seen_self",
        "sent_at",
        "session",
        "token",
    )

    def __init__(
        self,
        run: Run,
        gid: int,
        token: str,
        send_destination: str,
        pad: str,
        *,
        react_destination: str | None = None,
    ) -> None:
        self.run = run
        self.gid = gid
        self.token = token
        self.partner: Member | None = None
        self.session: StompWsSession | None = None
        self.sent_at = array("d")
        self.kinds = bytearray()  # _MESSAGE, _REACTION_ADD or _REACTION_REMOVE, by SEND number
        self.acked = 0
        self.rejected: set[int] = set()
        self.seen_self = bytearray()
        self.seen_partner = bytearray()
        self.last_seq: int | None = None
        self.last_message_id: str | None = None  # the couple's latest chat message seen
        self.reacted_on: str | None = None  # the message this member's ❤️ stands on
        # Each member's reactions start at its own phase: members that send in step (a closed
        # loop keeps them so) would otherwise all react in the same round.
        self.react_credit = gid * 618_034 % _PPM if run.reaction_ppm else 0
        self.next_due = 0.0
        self.dest_headers = (
            ("destination", send_destination),
            ("content-type", "application/json"),
        )
        self.react_headers = (
            ("destination", react_destination or send_destination),
            ("content-type", "application/json"),
        )
        self.body_head = {"type": "TEXT", "content": pad}

    def send(self, now: float) -> None:
        session = self.session
        if session is None or session.transport is None:
            return
        run = self.run
        n = len(self.sent_at)
        self.sent_at.append(now)
        temp_id = f"{run.run_id}.{self.gid}.{n}"
        # Until a message of the couple has been seen there is nothing to react to: the
        # credit waits (one reaction's worth at most, not a burst).
        credit = min(self.react_credit + run.reaction_ppm, _PPM)
        if credit >= _PPM and self.last_message_id is not None:
            self.react_credit = credit - _PPM
            frame = self._reaction(n, temp_id)
        else:
            self.react_credit = credit
            self.kinds.append(_MESSAGE)
            run.stats.sent += 1
            body = orjson.dumps({**self.body_head, "tempId": temp_id})
            frame = Frame("SEND", (*self.dest_headers, ("receipt", str(n))), body)
        session.transport.write(encode_frame(OP_TEXT, serialize_frame(frame)))

    def _reaction(self, n: int, temp_id: str) -> Frame:
        """Add ❤️ to the latest message, or take it back from where it was added: each one
        changes the message, so each has its REACTION event (a no-op would have none)."""
        if self.reacted_on is None:
            message_id, op, kind = self.last_message_id, "add", _REACTION_ADD
            self.reacted_on = message_id
        else:
            message_id, op, kind = self.reacted_on, "remove", _REACTION_REMOVE
            self.reacted_on = None
        self.kinds.append(kind)
        self.run.stats.reactions_sent += 1
        body = orjson.dumps({"messageId": message_id, "emoji": _EMOJI, "op": op, "tempId": temp_id})
        return Frame("SEND", (*self.react_headers, ("receipt", str(n))), body)

    # Sink

    def on_receipt(self, receipt_id: str, now: float) -> None:
        run = self.run
        stats = run.stats
        try:
            n = int(receipt_id)
            sent = self.sent_at[n]
        except (ValueError, IndexError):
            stats.error(f"unexpected RECEIPT {receipt_id!r}")
            return
        if n != self.acked + len(self.rejected):
            stats.receipt_out_of_order += 1
        self.acked += 1
        in_window = run.measure_from <= sent < run.measure_to
        if self.kinds[n] == _MESSAGE:
            stats.acked += 1
            if in_window:
                stats.receipt_latency.append(now - sent)
        else:
            stats.reactions_acked += 1
            if in_window:
                stats.reaction_receipt_latency.append(now - sent)
        if run.sending and not run.rate_mode:
            self.send(now)

    def on_error(self, body: bytes, now: float) -> None:
        run = self.run
        stats = run.stats
        error = orjson.loads(body)
        temp_id = error.get("tempId") if isinstance(error, dict) else None
        parts = temp_id.split(".") if isinstance(temp_id, str) else []
        stats.error(f"member {self.gid}: {body[:300].decode('utf-8', 'replace')}")
        if len(parts) != 3 or parts[0] != run.run_id or parts[1] != str(self.gid):
            return
        n = int(parts[2])
        if n >= len(self.sent_at) or n in self.rejected:
            return
        if n != self.acked + len(self.rejected):
            stats.receipt_out_of_order += 1
        self.rejected.add(n)
        stats.rejected += 1
        if self.kinds[n] == _REACTION_ADD and self.reacted_on is not None:
            self.reacted_on = None  # nothing stands there to take back
        if run.sending and not run.rate_mode:
            self.send(now)

    def on_message(self, body: bytes, now: float) -> None:
        run = self.run
        stats = run.stats
        message = orjson.loads(body)
        if not isinstance(message, dict):
            stats.foreign += 1
            return
        temp_id = message.get("tempId")
        if not temp_id:
            self._follow(message.get("seq"))  # of the stream, though not of this run
            stats.system += 1
            return
        parts = temp_id.split(".")
        sender = run.members.get(parts[1]) if len(parts) == 3 and parts[0] == run.run_id else None
        if sender is None:
            self._follow(message.get("seq"))
            stats.foreign += 1
            return
        n = int(parts[2])
        if sender is self:
            seen = self.seen_self
        elif sender is self.partner:
            seen = self.seen_partner
        else:
            stats.misrouted += 1
            return
        if n >= len(seen):
            seen.extend(bytes(n - len(seen) + 4096))
        if seen[n]:
            stats.duplicates += 1
            return
        seen[n] = 1
        sent = sender.sent_at[n]
        in_window = run.measure_from <= sent < run.measure_to
        if sender.kinds[n] == _MESSAGE:
            self.last_message_id = message.get("id")
            stats.delivered += 1
            if sender is not self:
                stats.delivered_partner += 1
                if in_window:
                    stats.delivery_latency.append(now - sent)
                    stats.delivery_sent.append(sent)
        else:
            if message.get("type") != "REACTION":
                stats.error(f"reaction {temp_id} came back as {body[:200]!r}")
            stats.reactions_delivered += 1
            if sender is not self:
                stats.reactions_delivered_partner += 1
                if in_window:
                    stats.reaction_delivery_latency.append(now - sent)
        self._follow(message.get("seq"))

    def _follow(self, seq: object) -> None:
        """The couple's stream, as this member sees it, has every seq once and in order."""
        if not isinstance(seq, int):
            return
        last = self.last_seq
        if last is not None:
            if seq <= last:
                self.run.stats.seq_backwards += 1
            elif seq != last + 1:
                self.run.stats.seq_gaps += seq - last - 1
        self.last_seq = seq

    def on_closed(self, reason: str) -> None:
        if not self.run.stopping:
            self.run.stats.closed += 1
            self.run.stats.error(f"member {self.gid}: {reason}")


class _Ticker:
    """Calls `fn` every `period` seconds until cancelled."""

    def __init__(self, period: float, fn: Callable[[], None]) -> None:
        self._period = period
        self._fn = fn
        self._handle = asyncio.get_running_loop().call_later(period, self._tick)

    def _tick(self) -> None:
        self._fn()
        self._handle = asyncio.get_running_loop().call_later(self._period, self._tick)

    def cancel(self) -> None:
        self._handle.cancel()


class _Inbox:
    """The parent's messages, read without blocking the event loop."""

    def __init__(self, conn: Connection, loop: asyncio.AbstractEventLoop) -> None:
        # Its own one-way pipe: the event loop makes a watched fd non-blocking, and a large
        # result written to a non-blocking pipe would be cut short.
        self._conn = conn
        self._queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue(maxsize=16)
        loop.add_reader(conn.fileno(), self._readable)

    def _readable(self) -> None:
        try:
            while self._conn.poll():
                self._queue.put_nowait(self._conn.recv())
        except EOFError:
            self._queue.put_nowait(("stop",))

    async def get(self) -> tuple[Any, ...]:
        return await self._queue.get()


async def _open(
    cfg: WorkerConfig, member: Member, couple: str, gate: asyncio.Semaphore
) -> StompWsSession:
    loop = asyncio.get_running_loop()
    target = cfg.target
    # An idle session subscribes to its topic alone: its memory is what is measured.
    errors = target.errors_destination if cfg.mode == "load" else None
    async with gate:
        ready: asyncio.Future[None] = loop.create_future()
        _, session = await asyncio.wait_for(
            loop.create_connection(
                lambda: StompWsSession(
                    target, member.token, target.topic(couple), member, ready, errors=errors
                ),
                target.host,
                target.port,
            ),
            cfg.connect_timeout,
        )
        try:
            await asyncio.wait_for(ready, cfg.connect_timeout)
        except BaseException:
            session.close()
            raise
    member.session = session
    return session


async def _connect_all(
    cfg: WorkerConfig, run: Run, conn: Connection
) -> tuple[list[Member], list[str]]:
    pad = ("x" * cfg.message_bytes)[: cfg.message_bytes]
    members: list[Member] = []
    jobs = []
    gate = asyncio.Semaphore(cfg.connect_concurrency)
    for couple, index in zip(cfg.couples, cfg.first_index, strict=True):
        send = cfg.target.send_destination(couple.couple)
        react = cfg.target.react_destination(couple.couple)
        a = Member(run, 2 * index, couple.ta, send, pad, react_destination=react)
        b = Member(run, 2 * index + 1, couple.tb, send, pad, react_destination=react)
        a.partner, b.partner = b, a
        for member in (a, b):
            run.members[str(member.gid)] = member
            members.append(member)
            jobs.append(_open(cfg, member, couple.couple, gate))

    def report() -> None:
        conn.send(("connecting", {"opened": sum(1 for m in members if m.session is not None)}))

    progress = _Ticker(_PROGRESS_EVERY, report)
    try:
        outcomes = await asyncio.gather(*jobs, return_exceptions=True)
    finally:
        progress.cancel()
    failures = [f"{type(o).__name__}: {o}" for o in outcomes if isinstance(o, BaseException)]
    return members, failures


def _outstanding(stats: Stats) -> int:
    """RECEIPTs and deliveries (own echo and partner) still owed for what was sent; a SEND
    answered with an error is owed nothing more."""
    sent = stats.sent + stats.reactions_sent
    accepted = sent - stats.rejected
    return (accepted - stats.acked - stats.reactions_acked) + (
        2 * accepted - stats.delivered - stats.reactions_delivered
    )


def _loss(members: list[Member]) -> dict[str, int]:
    """What was accepted (not answered with an error) and never came back, to the partner
    or to the sender; ``reactions_lost`` is the part of either that was reactions."""
    lost_partner = lost_self = unacked = reactions_lost = 0
    for m in members:
        sent = len(m.sent_at)
        unacked += sent - m.acked - len(m.rejected)
        partner_seen = m.partner.seen_partner if m.partner is not None else bytearray()
        partner_seen = partner_seen[:sent].ljust(sent, b"\0")
        self_seen = m.seen_self[:sent].ljust(sent, b"\0")
        for n in range(sent):
            if (partner_seen[n] and self_seen[n]) or n in m.rejected:
                continue
            lost_partner += not partner_seen[n]
            lost_self += not self_seen[n]
            reactions_lost += m.kinds[n] != _MESSAGE
    return {
        "lost_partner": lost_partner,
        "lost_self": lost_self,
        "unacked": unacked,
        "reactions_lost": reactions_lost,
    }


async def _drive(
    cfg: WorkerConfig, run: Run, members: list[Member], sched: Schedule, conn: Connection
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    stats = run.stats
    snapshots: dict[str, dict[str, float]] = {}

    def snapshot(name: str) -> None:
        snapshots[name] = {**stats.counts(), "cpu_s": time.process_time(), "at": time.monotonic()}
        with contextlib.suppress(OSError):
            snapshots[name]["run_queue_s"] = run_queue_seconds()

    run.measure_from, run.measure_to = sched.measure_from, sched.measure_to
    await asyncio.sleep(max(0.0, sched.t0 - time.monotonic()))
    ticker = _Ticker(_PROGRESS_EVERY, lambda: conn.send(("progress", stats.counts())))
    loop.call_later(max(0.0, sched.measure_from - time.monotonic()), snapshot, "from")
    run.sending = True
    now = time.monotonic()
    if cfg.rate > 0:
        run.rate_mode = True
        period = 1.0 / cfg.rate
        for m in members:
            m.next_due = now + random.random() * period  # spread the phases
        while time.monotonic() < sched.measure_to:
            now = time.monotonic()
            for m in members:
                while m.next_due <= now:
                    m.send(now)
                    m.next_due += period
            await asyncio.sleep(_RATE_TICK)
    else:
        for m in members:
            for _ in range(cfg.window):
                m.send(now)
        await asyncio.sleep(max(0.0, sched.measure_to - time.monotonic()))
    run.sending = False
    snapshot("to")
    deadline = time.monotonic() + sched.drain
    # Polled, not an Event: the hot path should not test for the end of the run on every frame.
    while _outstanding(stats) > 0 and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(_DRAIN_POLL)
    drained = time.monotonic()
    # A late duplicate would arrive right after the last original: listen a moment longer.
    await asyncio.sleep(0.2)
    ticker.cancel()
    return {
        "counts": stats.counts(),
        "window": snapshots,
        "drain_s": drained - sched.measure_to,
        **_loss(members),
        "system": stats.system,
        "foreign": stats.foreign,
        "misrouted": stats.misrouted,
        "receipt_out_of_order": stats.receipt_out_of_order,
        "seq_gaps": stats.seq_gaps,
        "seq_backwards": stats.seq_backwards,
        "errors": stats.errors,
        "receipt_latency": stats.receipt_latency.tobytes(),
        "delivery_latency": stats.delivery_latency.tobytes(),
        "delivery_sent": stats.delivery_sent.tobytes(),
        "reaction_receipt_latency": stats.reaction_receipt_latency.tobytes(),
        "reaction_delivery_latency": stats.reaction_delivery_latency.tobytes(),
        "sessions": len(members),
    }


async def _hold(run: Run, members: list[Member], inbox: _Inbox, conn: Connection) -> dict[str, Any]:
    def progress() -> None:
        open_now = sum(1 for m in members if m.session is not None and m.session.transport)
        conn.send(("progress", {**run.stats.counts(), "open": open_now}))

    ticker = _Ticker(_PROGRESS_EVERY, progress)
    while (await inbox.get())[0] != "stop":
        pass
    ticker.cancel()
    open_now = sum(1 for m in members if m.session is not None and m.session.transport)
    return {
        "counts": run.stats.counts(),
        "open": open_now,
        "errors": run.stats.errors,
        "sessions": len(members),
    }


async def _main(commands: Connection, conn: Connection, cfg: WorkerConfig) -> None:
    loop = asyncio.get_running_loop()
    inbox = _Inbox(commands, loop)
    run = Run(cfg.run_id, cfg.reactions)
    members, failures = await _connect_all(cfg, run, conn)
    conn.send(
        (
            "ready",
            {
                "sessions": len(members) - len(failures),
                "failures": failures[:5],
                "failed": len(failures),
            },
        )
    )
    try:
        message = await inbox.get()
        if message[0] != "start":
            return
        if cfg.mode == "idle":
            result = await _hold(run, members, inbox, conn)
        else:
            result = await _drive(cfg, run, members, message[1], conn)
        run.stopping = True
        conn.send(("result", result))
    finally:
        run.stopping = True
        for m in members:
            if m.session is not None:
                m.session.close()
        await asyncio.sleep(0)


def worker_main(commands: Connection, conn: Connection, cfg: WorkerConfig) -> None:
    """The process entry point: `commands` from the parent, reports to it on `conn`."""
    raise_nofile_limit()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it on Linux
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(_main(commands, conn, cfg))
    except BaseException as exc:
        with contextlib.suppress(OSError):
            conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
        raise SystemExit(1) from None
