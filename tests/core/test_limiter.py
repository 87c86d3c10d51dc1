"""The sans-IO rate limiter: unit behaviour, then a simulated fixed-window server."""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from email.utils import formatdate

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lumozbatch.core.limiter import PAST_RESET_429_WAIT, RECHECK, RateLimiter

T0 = 1_700_000_000  # a server time on a whole second


def hdrs(remaining: int, reset: float, date: float, limit: int = 60, **extra: str) -> dict[str, str]:
    out = {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(int(reset)),
        "Date": formatdate(math.floor(date), usegmt=True),
    }
    out.update(extra)
    return out


def primed(remaining: int = 59, reset_in: int = 5, limit: int = 60, now: float = 0.0) -> RateLimiter:
    lim = RateLimiter()
    assert lim.try_acquire(now) == 0.0
    lim.on_response(now, status=200, headers=hdrs(remaining, T0 + reset_in, T0, limit))
    return lim


# -- unit behaviour ------------------------------------------------------------------------


def test_first_request_goes_alone_until_an_answer() -> None:
    lim = RateLimiter()
    assert lim.try_acquire(0.0) == 0.0
    assert lim.try_acquire(0.0) == RECHECK
    assert lim.snapshot(0.0).in_flight == 1
    lim.on_response(0.5, status=200, headers=hdrs(59, T0 + 5, T0))
    assert lim.try_acquire(0.5) == 0.0


def test_without_rate_limit_headers_nothing_is_held_back() -> None:
    lim = RateLimiter()
    lim.try_acquire(0.0)
    lim.on_response(0.1, status=200, headers={})
    assert all(lim.try_acquire(0.1) == 0.0 for _ in range(100))


def test_remaining_zero_waits_exactly_until_reset_from_date() -> None:
    lim = primed(remaining=0, reset_in=7, now=100.0)
    assert lim.try_acquire(100.0) == 7.0
    assert lim.try_acquire(106.5) == 0.5
    assert lim.try_acquire(107.0) == 0.0  # the new window: the whole limit again
    assert lim.snapshot(107.0).remaining == 60


def test_server_clock_an_hour_off_changes_nothing() -> None:
    for skew in (0, 3600, -3600):
        lim = RateLimiter()
        lim.try_acquire(100.0)
        lim.on_response(100.0, status=200, headers=hdrs(0, T0 + skew + 7, T0 + skew))
        assert lim.try_acquire(100.0) == 7.0


def test_reset_in_the_past_means_now() -> None:
    lim = RateLimiter()
    lim.try_acquire(0.0)
    lim.on_response(0.0, status=200, headers=hdrs(0, T0 - 30, T0))
    assert lim.try_acquire(0.0) == 0.0


def test_the_tightest_date_bound_wins() -> None:
    # Date is rounded down: the second answer (Date just ticked) pins the reset 0.7 s earlier
    lim = primed(remaining=50, reset_in=5, now=0.0)  # reset at <= 5.0
    lim.on_response(0.3, status=200, headers=hdrs(40, T0 + 5, T0 + 1))  # reset at <= 4.3
    assert lim.snapshot(0.3).reset_in == pytest.approx(4.0)


def test_stale_remaining_from_an_out_of_order_answer_is_ignored() -> None:
    lim = primed(remaining=20)
    for _ in range(3):
        assert lim.try_acquire(0.0) == 0.0
    lim.on_response(0.1, status=200, headers=hdrs(10, T0 + 5, T0))
    lim.on_response(0.2, status=200, headers=hdrs(12, T0 + 5, T0))  # overtaken: higher
    assert lim.snapshot(0.2).remaining == 10


def test_answers_from_an_older_window_are_ignored() -> None:
    lim = primed(remaining=5, reset_in=5)
    assert lim.try_acquire(0.0) == 0.0
    assert lim.window is None
    lim.on_response(1.0, status=200, headers=hdrs(50, T0 + 10, T0 + 5))  # the next window
    assert lim.window == 5.0 and lim.snapshot(1.0).window == 5.0
    assert lim.try_acquire(1.0) == 0.0
    lim.on_response(1.1, status=200, headers=hdrs(0, T0 + 5, T0 + 4))  # late, old window
    assert lim.snapshot(1.1).remaining == 50


def test_after_our_reset_a_late_answer_of_the_old_window_is_ignored() -> None:
    lim = primed(remaining=1, reset_in=5)
    assert lim.try_acquire(4.0) == 0.0
    lim.on_response(5.2, status=200, headers=hdrs(0, T0 + 5, T0 + 4))
    assert lim.snapshot(5.2).remaining == 60


def test_in_flight_requests_are_subtracted() -> None:
    lim = primed(remaining=2, reset_in=5)
    assert lim.try_acquire(0.0) == 0.0
    assert lim.try_acquire(0.0) == 0.0
    assert lim.try_acquire(0.0) == 5.0  # 2 remaining, 2 in flight: wait for the window
    lim.on_no_response(0.1)  # a network error counts as spent
    assert lim.snapshot(0.1).remaining == 1
    assert lim.try_acquire(0.1) == pytest.approx(4.9)


def test_an_answer_without_figures_still_spends_one() -> None:
    lim = primed(remaining=1)
    assert lim.try_acquire(0.0) == 0.0
    lim.on_response(0.1, status=502, headers={})  # a proxy's error page: no headers
    assert lim.snapshot(0.1).remaining == 0
    assert lim.try_acquire(0.1) == pytest.approx(4.9)  # the window is spent


def test_429_with_retry_after_blocks_that_long() -> None:
    lim = primed(remaining=30)
    lim.try_acquire(1.0)
    lim.on_response(1.0, status=429, headers={"Retry-After": "3"})
    assert lim.try_acquire(1.0) == 3.0
    assert lim.snapshot(1.0).remaining == 0
    assert lim.try_acquire(4.0) == 1.0  # and then the window's reset, which 429 emptied


def test_429_with_reset_waits_for_the_reset() -> None:
    lim = primed(remaining=30)
    lim.try_acquire(1.0)
    lim.on_response(1.0, status=429, headers=hdrs(0, T0 + 5, T0 + 1))
    assert lim.try_acquire(1.0) == 4.0
    assert lim.try_acquire(5.0) == 0.0


def test_429_with_http_date_retry_after_uses_the_server_date() -> None:
    lim = primed(remaining=30)
    lim.try_acquire(1.0)
    headers = {"Retry-After": formatdate(T0 + 3600 + 12, usegmt=True), "Date": formatdate(T0 + 3600, usegmt=True)}
    lim.on_response(1.0, status=429, headers=headers)
    assert lim.try_acquire(1.0) == 12.0


def test_429_with_a_past_reset_still_holds_back_a_moment() -> None:
    lim = primed(remaining=30)
    lim.try_acquire(1.0)
    lim.on_response(1.0, status=429, headers=hdrs(0, T0 + 5, T0 + 6))
    assert lim.try_acquire(1.0) == PAST_RESET_429_WAIT


def test_block_for_is_the_callers_backoff() -> None:
    lim = primed()
    lim.block_for(2.0, 1.5)
    assert lim.try_acquire(2.0) == 1.5
    assert lim.snapshot(2.0).wait == 1.5
    assert lim.try_acquire(3.5) == 0.0


def test_the_first_burst_is_the_capacity_then_paced() -> None:
    lim = primed(remaining=59, reset_in=5)
    sent = 0
    while lim.try_acquire(0.0) == 0.0:
        sent += 1
    assert sent == 6  # max(1, 0.1 * 60)
    wait = lim.try_acquire(0.0)
    assert 0 < wait < 5 / 53


def test_a_long_window_is_not_trickled_over_the_hour() -> None:
    # 1000 an hour and 300 to send: a burst of 100, then 100/s (the budget over 10 s at most)
    result = simulate(300, limit=1000, window=3600.0, latency=(0.0, 0.0))
    assert result.server.rejected == 0
    assert max(Counter(result.sends).values()) <= 1 + 100  # the lone first one, then the bucket
    assert max(result.sends) == pytest.approx(2.0, abs=0.05)


def test_headers_are_case_insensitive_and_garbage_is_ignored() -> None:
    lim = RateLimiter()
    lim.try_acquire(0.0)
    lim.on_response(
        0.0,
        status=200,
        headers={"x-ratelimit-limit": "10", "x-ratelimit-remaining": "zero", "x-ratelimit-reset": "soon"},
    )
    assert lim.snapshot(0.0).limit == 10


# -- simulation against a fixed-window server ----------------------------------------------


@dataclass
class FakeServer:
    """Fixed windows aligned on its own clock, Reset rounded up, Date rounded down."""

    limit: int
    window: float
    offset: float  # server clock = our clock + offset
    counts: Counter[int] = field(default_factory=Counter)
    rejected: int = 0

    def handle(self, local: float) -> tuple[int, dict[str, str]]:
        t = local + self.offset
        index = math.floor(t / self.window)
        end = (index + 1) * self.window
        base = {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Reset": str(math.ceil(end)), "Date": formatdate(math.floor(t), usegmt=True)}
        if self.counts[index] >= self.limit:
            self.rejected += 1
            return 429, {**base, "X-RateLimit-Remaining": "0", "Retry-After": str(max(1, math.ceil(end - t)))}
        self.counts[index] += 1
        return 200, {**base, "X-RateLimit-Remaining": str(self.limit - self.counts[index])}

    def window_of(self, local: float) -> int:
        return math.floor((local + self.offset) / self.window)


@dataclass
class SimResult:
    sends: list[float]
    answers: list[float]
    server: FakeServer
    window_end_backlog: dict[int, int]


def simulate(
    n: int,
    *,
    limit: int = 60,
    window: float = 5.0,
    offset: float = T0 + 0.37,
    latency: tuple[float, float] = (0.02, 0.3),
    seed: int = 1,
    max_steps: int = 200_000,
) -> SimResult:
    """Send ``n`` requests through a RateLimiter against FakeServer, on exact virtual time."""
    rng = random.Random(seed)
    server = FakeServer(limit, window, offset)
    lim = RateLimiter()
    events: list[tuple[float, int, str, object]] = []  # (time, seq, kind, payload)
    seq = 0
    now = 0.0
    left = n
    sends: list[float] = []
    answers: list[float] = []
    backlog: dict[int, int] = {}
    for _ in range(max_steps):
        while events and events[0][0] <= now:
            _, _, kind, payload = heapq.heappop(events)
            if kind == "arrive":  # the server processes it now; the answer travels back
                status, headers = server.handle(now)
                seq += 1
                heapq.heappush(events, (now + rng.uniform(*latency) / 2, seq, "answer", (status, headers)))
            else:
                status, headers = payload  # type: ignore[misc]
                lim.on_response(now, status=status, headers=headers)
                answers.append(now)
                if status == 429:
                    left += 1  # retried later
        backlog[server.window_of(now)] = left
        wait = 0.0
        while left and (wait := lim.try_acquire(now)) == 0.0:
            left -= 1
            sends.append(now)
            seq += 1
            heapq.heappush(events, (now + rng.uniform(*latency) / 2, seq, "arrive", None))
        backlog[server.window_of(now)] = left
        if not left and not events:
            return SimResult(sends, answers, server, backlog)
        candidates = [events[0][0]] if events else []
        if left:
            candidates.append(now + wait)
        now = min(candidates)
    raise AssertionError("simulation did not finish")


def ideal_makespan(n: int, *, limit: int, window: float, offset: float) -> float:
    """A clairvoyant client: sends each window's whole budget the instant it opens."""
    start = offset
    t, left = start, n
    index = math.floor(t / window)
    while True:
        take = min(left, limit)
        left -= take
        if not left:
            return t - start
        index += 1
        t = index * window


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_simulated_run_spends_every_window_without_a_single_429(seed: int) -> None:
    result = simulate(600, seed=seed)
    server = result.server
    assert server.rejected == 0
    assert max(server.counts.values()) <= server.limit
    windows = sorted(server.counts)
    # every window that closed with work still waiting was spent to the last request
    for index in windows[1:-1]:
        if result.window_end_backlog.get(index, 0) > 0:
            assert server.counts[index] == server.limit, (index, server.counts)
    assert sum(server.counts.values()) == 600


def test_no_burst_beyond_the_capacity_when_a_window_opens() -> None:
    result = simulate(600)
    capacity = 6
    same_instant = Counter(result.sends)
    assert max(same_instant.values()) <= capacity
    sends = sorted(result.sends)
    # in any 0.1 s, at most the bucket plus what the pace (about limit/window per s) adds
    j = 0
    for i, t in enumerate(sends):
        while sends[j] < t - 0.1:
            j += 1
        assert i - j + 1 <= capacity + 2


def test_makespan_within_a_quarter_of_ideal() -> None:
    n = 600
    result = simulate(n)
    ideal = ideal_makespan(n, limit=60, window=5.0, offset=T0 + 0.37) + 0.3
    makespan = max(result.answers)
    assert makespan <= 1.25 * ideal, (makespan, ideal)


def test_skew_of_an_hour_changes_nothing_in_the_simulation() -> None:
    base = simulate(300, offset=T0 + 0.37)
    skewed = simulate(300, offset=T0 + 3600 + 0.37)
    behind = simulate(300, offset=T0 - 3600 + 0.37)
    assert base.sends == skewed.sends == behind.sends
    assert skewed.server.rejected == 0


def test_out_of_order_answers_with_wide_latency_never_cause_429() -> None:
    result = simulate(400, latency=(0.01, 2.0), seed=7, limit=30, window=3.0)
    assert result.server.rejected == 0
    assert sum(result.server.counts.values()) == 400


def test_a_small_limit_is_paced_one_by_one() -> None:
    result = simulate(25, limit=5, window=2.0)
    assert result.server.rejected == 0
    assert max(Counter(result.sends).values()) == 1


@settings(max_examples=300, deadline=None)
@given(
    limit=st.integers(1, 80),
    window=st.sampled_from([1.0, 2.5, 5.0, 7.0, 60.0]),
    skew=st.floats(-86_400, 86_400, allow_nan=False),
    latency_hi=st.floats(0.001, 3.0),
    seed=st.integers(0, 1000),
)
def test_property_no_429_whatever_the_server_looks_like(
    limit: int, window: float, skew: float, latency_hi: float, seed: int
) -> None:
    n = min(3 * limit + 5, 150)
    result = simulate(n, limit=limit, window=window, offset=T0 + skew, latency=(0.0, latency_hi), seed=seed)
    assert result.server.rejected == 0
    assert sum(result.server.counts.values()) == n
    assert max(result.server.counts.values()) <= limit


def test_a_minute_window_is_paced_over_the_minute_not_burst_then_idle() -> None:
    # 600 per 60 s, 1200 to send: before, 599 went in ~9 s and nothing for ~50 s. Now each
    # window is spread evenly: no 10 s holds much more than a quarter of a window (the
    # bucket of 60, then the rest of the first, partial, 40 s window at about 17/s), and while
    # work waits no gap reaches 10 s.
    result = simulate(1200, limit=600, window=60.0, latency=(0.01, 0.05))
    assert result.server.rejected == 0
    sends = sorted(result.sends)
    j = 0
    for i, t in enumerate(sends):
        while sends[j] < t - 10.0:
            j += 1
        assert i - j + 1 <= 230
    assert max(b - a for a, b in zip(sends, sends[1:])) < 10.0
    assert sum(result.server.counts.values()) == 1200


def test_the_snapshot_window_is_the_limiters_estimate_until_two_windows_were_seen() -> None:
    # plan's ETA goes by the window the limiter paces against: the longest Reset seen,
    # not an hour it never saw
    lim = primed(remaining=599, reset_in=58, limit=600)
    assert lim.window is None
    assert lim.snapshot(0.0).window == 58.0
