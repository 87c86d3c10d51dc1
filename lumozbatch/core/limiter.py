"""Rate-limit state from response headers: "how long until I may send?", given ``now``. Pure.

The provider announces a fixed window on every answer: ``X-RateLimit-Limit`` (requests per
window), ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (unix seconds at which the window
resets). ``now`` is the caller's monotonic clock (trio's); the limiter never reads a clock.

How the figures are trusted:

* Clock skew: the reset instant is ``Reset - Date`` seconds after the answer arrived — both
  from the server's clock, so our wall clock never matters. ``Date`` has 1-second granularity
  (it is the server time rounded down), so each answer gives an *upper bound* of the reset
  instant on our clock; within one window the smallest bound wins. Never early.
* Order: answers of one window (same ``Reset``) only ever lower ``Remaining`` (an answer that
  overtook an older one must not raise it back); an answer carrying an older ``Reset`` than
  the window we are in is ignored. Requests still in flight are subtracted.
* Windows: once our clock passes the reset instant, a new window is assumed to hold ``Limit``
  requests until its first answer says otherwise. A ``Reset`` in the past means "now".
* Pacing: a token bucket whose rate spreads the window's remaining budget evenly over the
  time left (ending a little before the reset, so late answers do not spill into the next
  window), and whose capacity is ``max(1, burst_fraction * limit)``: a small batch goes at
  once, a large one at the window's average rate, never in a burst followed by an idle wait.
  Why even, not "as fast as the window allows": a batch that needs several windows takes as
  many windows either way, but a burst starves the polls of jobs it started for the rest of the
  window, and two processes sharing a key overshoot together at the end of it (429s). Only a
  window longer than ``pace_up_to`` (an hourly quota) is spent over at most ``spread`` seconds:
  trickling it over the hour would make a small batch wait that hour.
* 429: nothing is sent before ``Retry-After`` or the window's reset. A 429 that gives neither
  leaves the backoff to the caller (``block_for``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from lumozbatch.core.retry import parse_http_date, parse_retry_after

__all__ = ["LimitSnapshot", "RateLimiter"]

#: Returned while the answer to an in-flight request, not time, is what we wait for (the
#: shell also re-checks on every answer); kept short so nobody waits long for nothing.
RECHECK = 0.1
#: A window whose reset we cannot tell (no usable Reset) is probed this often once spent.
UNKNOWN_RESET_WAIT = 1.0
#: A 429 whose Reset is already past, without Retry-After: the server's second has not ended.
PAST_RESET_429_WAIT = 1.0
#: Tokens within this of a whole one count as whole (float noise must not cost a sleep).
_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class LimitSnapshot:
    """What the limiter believes at ``now`` (for the display and ``rate_limit`` events)."""

    limit: int | None  # requests per window, once announced
    remaining: int | None  # the server's remaining budget in this window (estimate)
    reset_in: float | None  # seconds until the window resets, on our clock (upper bound)
    in_flight: int  # requests sent and not answered
    wait: float  # what try_acquire would answer now (0 = may send)
    #: the window length the limiter paces against: learnt from two windows' Resets, else
    #: the longest Reset seen (a lower bound), None before any
    window: float | None = None


class RateLimiter:
    """Sans-IO limiter shared by every call of a run; see the module docstring."""

    def __init__(
        self,
        *,
        burst_fraction: float = 0.1,
        margin_fraction: float = 0.1,
        spread: float = 10.0,
        pace_up_to: float = 120.0,
    ) -> None:
        if not 0 < burst_fraction <= 1:
            raise ValueError("burst_fraction must be in (0, 1]")
        if spread <= 0:
            raise ValueError("spread must be > 0")
        self.burst_fraction = burst_fraction
        self.margin_fraction = margin_fraction
        self.spread = spread
        self.pace_up_to = pace_up_to
        self._limit: int | None = None
        self._remaining: int | None = None
        self._key: float | None = None  # the Reset header of the newest window seen
        self._rolled = False  # our clock passed that window's reset: in a newer one now
        self._reset_at: float | None = None  # end of the current window, our clock
        self._window: float | None = None  # window length, from consecutive Resets
        self._longest_reset_in = 0.0  # window length estimate until two windows were seen
        self._in_flight = 0
        self._answered = False
        self._blocked_until = -math.inf
        self._tokens = math.inf  # capped at the capacity once the limit is known
        self._tokens_at: float | None = None

    # -- the two calls around every request ---------------------------------------------

    def try_acquire(self, now: float) -> float:
        """0.0: send now (the request is counted in flight; report its fate exactly once
        with ``on_response`` or ``on_no_response``); > 0: seconds to wait, nothing taken."""
        wait = self._wait(now)
        if wait > 0:
            return wait
        self._in_flight += 1
        if self._limit is not None:
            self._tokens -= 1
        return 0.0

    def on_response(
        self,
        now: float,
        *,
        status: int,
        headers: Mapping[str, str],
        wall: float | None = None,
    ) -> None:
        """An answer arrived (any status): release its slot and learn from its headers.

        ``wall`` (unix time on our clock) is only used when the answer has no ``Date``.
        """
        self._in_flight = max(0, self._in_flight - 1)
        self._answered = True
        h = {k.lower(): v for k, v in headers.items()}
        limit = _to_int(h.get("x-ratelimit-limit"))
        remaining = _to_int(h.get("x-ratelimit-remaining"))
        reset = _to_float(h.get("x-ratelimit-reset"))
        date = parse_http_date(h.get("date"))
        server_now = date if date is not None else wall
        if limit is not None and limit > 0:
            self._limit = limit
        self._roll(now)
        current = True
        if reset is not None and server_now is not None:
            current = self._observe_window(now, reset, max(0.0, reset - server_now), remaining)
        elif remaining is not None:
            # no usable Reset: nothing tells windows apart, the newest figure is all we have
            self._remaining = remaining
        elif self._remaining is not None:
            self._remaining = max(0, self._remaining - 1)  # an answer without figures still spent one

        if status == 429:
            if current:
                self._remaining = 0  # whatever the figures said, the server said no
            retry_after = parse_retry_after(h.get("retry-after"), date_now=server_now)
            if retry_after is not None:
                self.block_for(now, retry_after)
            elif current and reset is not None and server_now is not None and reset <= server_now:
                self.block_for(now, PAST_RESET_429_WAIT)

    def on_no_response(self, now: float) -> None:
        """The request got no answer (network error): release its slot, count it spent."""
        self._in_flight = max(0, self._in_flight - 1)
        self._roll(now)
        if self._remaining is not None:
            self._remaining = max(0, self._remaining - 1)

    def block_for(self, now: float, seconds: float) -> None:
        """Send nothing for ``seconds`` (a 429 without figures, a caller's backoff)."""
        self._blocked_until = max(self._blocked_until, now + max(0.0, seconds))

    def snapshot(self, now: float) -> LimitSnapshot:
        wait = self._wait(now)
        reset_in = None if self._reset_at is None else max(0.0, self._reset_at - now)
        return LimitSnapshot(self._limit, self._remaining, reset_in, self._in_flight, wait, self._window_length())

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def window(self) -> float | None:
        """The window's length in seconds, learnt from two consecutive windows' ``Reset``."""
        return self._window

    # -- internals -----------------------------------------------------------------------

    def _capacity(self) -> float:
        assert self._limit is not None
        return max(1.0, self.burst_fraction * self._limit)

    def _window_length(self) -> float | None:
        if self._window is not None:
            return self._window
        return self._longest_reset_in or None

    def _roll(self, now: float) -> None:
        """Our clock passed the reset: a fresh window with the whole limit (until told)."""
        if self._reset_at is None or now < self._reset_at:
            return
        self._rolled = True
        self._remaining = self._limit
        length = self._window_length()
        if length:
            skipped = math.floor((now - self._reset_at) / length) + 1
            self._reset_at += skipped * length
        else:
            self._reset_at = None
        if self._limit is not None:
            self._tokens = self._capacity()  # a burst of at most the capacity at the opening
            self._tokens_at = now

    def _observe_window(self, now: float, reset: float, reset_in: float, remaining: int | None) -> bool:
        """Fold one answer's window figures in; False when it belongs to an older window."""
        self._longest_reset_in = max(self._longest_reset_in, reset_in)
        reset_at = now + reset_in
        key = self._key
        if key is None or reset > key:
            if key is not None:
                gap = reset - key  # whole windows apart; the smallest gap is one window
                self._window = gap if self._window is None else min(self._window, gap)
            self._key = reset
            self._rolled = False
            self._reset_at = reset_at
            if remaining is not None:
                self._remaining = remaining
            elif self._limit is not None:
                self._remaining = self._limit - 1
            self._roll(now)  # a Reset already past means the window is over now
            return True
        if reset < key or self._rolled:
            return False  # an answer from a window that is over: its figures are stale
        assert self._reset_at is not None
        self._reset_at = min(self._reset_at, reset_at)
        if remaining is not None:
            self._remaining = remaining if self._remaining is None else min(self._remaining, remaining)
        elif self._remaining is not None:
            self._remaining = max(0, self._remaining - 1)
        self._roll(now)
        return True

    def _wait(self, now: float) -> float:
        self._roll(now)
        if now < self._blocked_until:
            return self._blocked_until - now
        if not self._answered:
            # the first request goes alone: a wrong key or URL costs one request, not a burst
            return 0.0 if self._in_flight == 0 else RECHECK
        if self._limit is None or self._remaining is None:
            return 0.0  # no limit announced
        available = self._remaining - self._in_flight
        if available <= 0:
            if self._reset_at is None:
                return UNKNOWN_RESET_WAIT if self._in_flight == 0 else RECHECK
            return self._reset_at - now
        if self._reset_at is None:
            return 0.0  # a budget without a deadline: nothing to pace against
        left = self._reset_at - now
        length = self._window_length() or left
        margin = self.margin_fraction * length
        # spread what is left evenly over the window (ending a little early); only a long
        # window's budget over at most `spread` seconds: an hour's quota is not trickled
        rate = available / max(left - margin, left / 2)
        if length > self.pace_up_to:
            rate = max(rate, self._limit / self.spread)
        capacity = self._capacity()
        if self._tokens_at is None:
            self._tokens = min(self._tokens, capacity)
        else:
            self._tokens = min(capacity, self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now
        if self._tokens >= 1 - _EPS:
            return 0.0
        return (1 - self._tokens) / rate


def _to_int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        number = _to_float(value)
        return None if number is None else int(number)


def _to_float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None
