"""SharedLimiter: FIFO-fair waiting on trio's virtual clock, exact times asserted."""

from __future__ import annotations

from email.utils import formatdate
from typing import Any

import pytest
import trio
import trio.testing

from lumozbatch.core.events import Event
from lumozbatch.shell.ratelimit import SharedLimiter

WALL = 2_000_000_000


def headers(*, limit: int, remaining: int, reset_in: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    out = {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(WALL + reset_in),
        "Date": formatdate(WALL, usegmt=True),
    }
    out.update(extra or {})
    return out


async def spend_window(limiter: SharedLimiter, reset_in: int = 10) -> None:
    """One answered request that says: the window is spent until ``reset_in`` seconds."""
    async with limiter.slot() as slot:
        slot.response(200, headers(limit=5, remaining=0, reset_in=reset_in))


async def test_nothing_goes_before_reset_and_waiters_are_served_in_order(autojump_clock: Any) -> None:
    limiter = SharedLimiter()
    await spend_window(limiter, reset_in=10)
    start = trio.current_time()
    granted: list[tuple[str, float]] = []

    async def caller(name: str, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async with limiter.slot() as slot:
            granted.append((name, trio.current_time() - start))
            slot.response(200, headers(limit=5, remaining=4, reset_in=10))

    async with trio.open_nursery() as nursery:
        # polls and submissions interleaved: FIFO means nobody starves
        for name in ["check-1", "run-1", "check-2", "run-2"]:
            await nursery.start(caller, name)
    assert [name for name, _ in granted] == ["check-1", "run-1", "check-2", "run-2"]
    assert granted[0][1] == 10.0
    assert all(at >= 10.0 for _, at in granted)


async def test_only_one_request_before_the_first_answer(autojump_clock: Any) -> None:
    limiter = SharedLimiter()
    times: dict[str, float] = {}

    async def first() -> None:
        async with limiter.slot() as slot:
            times["first"] = trio.current_time()
            await trio.sleep(2.5)  # the answer takes 2.5 s
            slot.response(200, headers(limit=100, remaining=99, reset_in=60))

    async def second() -> None:
        await trio.sleep(0.1)
        async with limiter.slot() as slot:
            times["second"] = trio.current_time()
            slot.response(200, headers(limit=100, remaining=98, reset_in=60))

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(first)
        nursery.start_soon(second)
    assert times["first"] - start == 0.0
    # woken by the first answer itself, not by a polling step
    assert times["second"] - start == pytest.approx(2.5, abs=1e-9)


async def test_a_cancelled_holder_releases_its_slot(autojump_clock: Any) -> None:
    limiter = SharedLimiter()
    with trio.move_on_after(1):
        async with limiter.slot():
            await trio.sleep(10)
    assert limiter.core.in_flight == 0
    with trio.fail_after(0.001):
        async with limiter.slot() as slot:
            slot.response(200, {})


async def test_429_without_figures_backs_off_with_full_jitter(autojump_clock: Any) -> None:
    limiter = SharedLimiter(rand=lambda: 0.9)
    async with limiter.slot() as slot:
        slot.response(200, {})
    t0 = trio.current_time()
    async with limiter.slot() as slot:
        slot.response(429, {})  # first 429: 0.9 * min(30, 0.5 * 2**1) = 0.9 s
    async with limiter.slot() as slot:
        assert trio.current_time() - t0 == pytest.approx(0.9)
        slot.response(429, {})  # second in a row: 0.9 * min(30, 0.5 * 2**2) = 1.8 s
    t1 = trio.current_time()
    async with limiter.slot() as slot:
        assert trio.current_time() - t1 == pytest.approx(1.8)
        slot.response(200, {})
    assert limiter.throttled == 2


async def test_429_with_retry_after_is_honoured(autojump_clock: Any) -> None:
    limiter = SharedLimiter()
    async with limiter.slot() as slot:
        slot.response(200, headers(limit=100, remaining=50, reset_in=60))
    t0 = trio.current_time()
    async with limiter.slot() as slot:
        slot.response(429, headers(limit=100, remaining=0, reset_in=60, extra={"Retry-After": "3"}))
    async with limiter.slot() as slot:
        waited = trio.current_time() - t0
        slot.response(200, headers(limit=100, remaining=99, reset_in=120))
    assert waited >= 3.0


async def test_waits_are_reported_as_rate_limit_events(autojump_clock: Any) -> None:
    events: list[Event] = []
    limiter = SharedLimiter(sink=events.append)
    await spend_window(limiter, reset_in=10)
    async with limiter.slot() as slot:
        slot.response(200, headers(limit=5, remaining=4, reset_in=10))
    kinds = [(e.kind, e.wait) for e in events]
    assert kinds[0][0] == "rate_limit" and kinds[0][1] == pytest.approx(10.0)
    assert events[0].limit == 5 and events[0].remaining == 0
    assert kinds[-1] == ("rate_limit", 0.0)  # sending freely again


async def test_network_errors_release_the_slot(autojump_clock: Any) -> None:
    limiter = SharedLimiter()
    async with limiter.slot() as slot:
        slot.no_response()
        slot.no_response()  # reported twice by mistake: counted once
    assert limiter.core.in_flight == 0
    assert limiter.responses == 0


async def test_an_hour_long_retry_after_is_told_with_its_length_and_can_be_left(autojump_clock: Any) -> None:
    # A legitimate hourly window: the wait is not bounded, but it is said at once, with its
    # length, and a cancel (what Ctrl-C does to the run) leaves it at once.
    events: list[Event] = []
    limiter = SharedLimiter(sink=events.append)
    async with limiter.slot() as slot:
        slot.response(429, headers(limit=100, remaining=0, reset_in=3600, extra={"Retry-After": "3600"}))
    told = [e for e in events if e.kind == "rate_limit"]
    assert told and told[0].wait == pytest.approx(3600.0) and told[0].time == 0.0
    t0 = trio.current_time()
    with trio.move_on_after(5.0):
        async with limiter.slot():
            raise AssertionError("nothing may go during the hour")
    assert trio.current_time() - t0 == 5.0
