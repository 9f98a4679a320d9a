"""Exactly once, in seq order: the sequencer's verdicts, and the client's use of them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ieum_chat.client._sequencer import Sequencer, Verdict


def test_resume_point() -> None:
    seq = Sequencer(5)
    assert seq.check(5) is Verdict.DUPLICATE
    assert seq.check(1) is Verdict.DUPLICATE
    assert seq.check(6) is Verdict.NEXT
    assert seq.check(8) is Verdict.GAP
    seq.advance(6)
    assert seq.last_seq == 6


def test_live_start_takes_the_first_seq_seen() -> None:
    seq = Sequencer(None)
    assert seq.last_seq is None
    assert seq.check(42) is Verdict.NEXT
    seq.advance(42)
    assert seq.check(43) is Verdict.NEXT
    assert seq.check(42) is Verdict.DUPLICATE


def test_advance_refuses_anything_but_the_next() -> None:
    seq = Sequencer(0)
    with pytest.raises(ValueError, match="follow"):
        seq.advance(2)
    with pytest.raises(ValueError, match=">= 0"):
        Sequencer(-1)


def deliver(stream: list[int], start: int) -> tuple[list[int], int]:
    """The client's rule: deliver NEXT, drop DUPLICATE, and on a GAP drop and resume from
    the last seq (modelled as the server replaying from there)."""
    seq = Sequencer(start)
    out: list[int] = []
    resyncs = 0
    pending = list(stream)
    while pending:
        item = pending.pop(0)
        verdict = seq.check(item)
        if verdict is Verdict.NEXT:
            seq.advance(item)
            out.append(item)
        elif verdict is Verdict.GAP:
            resyncs += 1
            last = seq.last_seq or 0
            # The server replays every stored seq after `last` (the stream's highest is the
            # last one stored), and nothing arrives on the old subscription any more.
            pending = list(range(last + 1, max(stream) + 1))
    return out, resyncs


@given(
    n=st.integers(1, 60),
    data=st.data(),
)
def test_any_mix_of_duplicates_reorderings_and_losses_is_delivered_once_in_order(
    n: int, data: st.DataObject
) -> None:
    """Whatever the wire does to the stream 1..n (duplicates, swaps, losses, as long as the
    last message arrives at some point), the application sees 1..n exactly once, in order."""
    stream = data.draw(st.lists(st.integers(1, n), max_size=3 * n))
    stream.append(n)
    out, _ = deliver(stream, 0)
    assert out == list(range(1, n + 1))


def test_a_live_only_start_takes_the_position_the_server_names() -> None:
    seq = Sequencer()
    seq.start_after(41)
    assert seq.last_seq == 41
    assert seq.check(41) is Verdict.DUPLICATE
    assert seq.check(43) is Verdict.GAP
    seq.advance(42)
    seq.start_after(7)  # a seq is known: the server's word changes nothing
    assert seq.last_seq == 42
    with pytest.raises(ValueError, match=">= 0"):
        Sequencer().start_after(-1)
