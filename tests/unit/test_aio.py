"""Stopping background work with deadlines, including work that swallows its cancellation
(as a database or Redis driver may while it cleans up a connection)."""

from __future__ import annotations

import asyncio
import time

import pytest

from ieum_chat.aio import finish_within, stop_tasks, stop_tasks_after


async def _swallows_cancellations(times: int, done: list[str]) -> None:
    """Runs until cancelled ``times + 1`` times: the first ``times`` cancellations are lost."""
    lost = 0
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if lost >= times:
                done.append("ended")
                raise
            lost += 1


async def _end_the_rest() -> None:
    """Cancel what a test left behind until it ends (the loop's own clean-up cancels once)."""
    others = asyncio.all_tasks() - {asyncio.current_task()}
    while others:
        for task in others:
            task.cancel()
        _, others = await asyncio.wait(others, timeout=0.01)


async def test_a_task_that_lost_its_cancellation_is_cancelled_again() -> None:
    done: list[str] = []
    task = asyncio.create_task(_swallows_cancellations(3, done))
    await asyncio.sleep(0)
    assert await stop_tasks([task], 2.0, "test") is True
    assert task.cancelled()
    assert done == ["ended"]


async def test_a_task_that_never_ends_is_left_behind_at_the_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    task = asyncio.create_task(_swallows_cancellations(50, []))
    await asyncio.sleep(0)
    started = time.monotonic()
    assert await stop_tasks([task], 0.3, "stubborn work") is False
    assert 0.3 <= time.monotonic() - started < 1.5
    assert not task.done()
    assert "stubborn work: 1 task(s) still running" in caplog.text
    await _end_the_rest()


async def test_tasks_that_end_by_themselves_are_not_cancelled() -> None:
    task = asyncio.create_task(asyncio.sleep(0.05))
    assert await stop_tasks_after([task], 2.0, "test") is True
    assert not task.cancelled()


async def test_tasks_still_running_after_their_time_are_stopped() -> None:
    done: list[str] = []
    task = asyncio.create_task(_swallows_cancellations(2, done))
    assert await stop_tasks_after([task], 0.1, "test") is False
    assert task.cancelled()
    assert done == ["ended"]


async def test_a_step_returns_its_value() -> None:
    async def step() -> int:
        await asyncio.sleep(0)
        return 7

    assert await finish_within(step(), 1.0, "step") == 7


async def test_a_step_that_hangs_is_left_at_its_deadline_even_if_it_swallows_cancellation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def step() -> str:
        await _swallows_cancellations(50, [])
        return "finished"

    started = time.monotonic()
    assert await finish_within(step(), 0.2, "slow step") is None
    assert time.monotonic() - started < 1.0
    assert "slow step did not finish within 0.2 s" in caplog.text
    await _end_the_rest()


async def test_a_failing_step_is_logged_and_the_caller_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken() -> str:
        raise RuntimeError("boom")

    assert await finish_within(broken(), 1.0, "broken step") is None
    assert "broken step failed" in caplog.text
