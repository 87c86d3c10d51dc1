"""One rate limiter for every API call of a run, shared fairly between polls and submissions.

``core.limiter.RateLimiter`` decides (sans-IO) how long to wait; this module does the
waiting on trio's clock. Callers queue in FIFO order behind one ``trio.Lock`` (trio's locks
are fair), so a burst of polls cannot starve a submission or the other way round: whoever
asked first sends first. A waiter wakes early when an answer changes the picture.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

import trio

from lumozbatch.core.events import Event, EventSink, discard
from lumozbatch.core.limiter import RateLimiter
from lumozbatch.core.retry import full_jitter

__all__ = ["SharedLimiter", "Slot"]

#: A wait shorter than this is pacing, not worth telling the user about.
_REPORT_WAIT = 0.25
#: No single wait step is longer than this: a stale figure is re-read at least this often.
_MAX_STEP = 30.0


class Slot:
    """Permission to send one request. Report its fate exactly once."""

    __slots__ = ("_owner", "done")

    def __init__(self, owner: SharedLimiter) -> None:
        self._owner = owner
        self.done = False

    def response(self, status: int, headers: Mapping[str, str]) -> None:
        if not self.done:
            self.done = True
            self._owner._on_response(status, headers)

    def no_response(self) -> None:
        if not self.done:
            self.done = True
            self._owner._on_no_response()


class SharedLimiter:
    """FIFO-fair async gate over a ``RateLimiter``; emits ``rate_limit`` events."""

    def __init__(
        self,
        core: RateLimiter | None = None,
        *,
        sink: EventSink = discard,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.core = core if core is not None else RateLimiter()
        self._sink = sink
        self._rand = rand
        self._queue = trio.Lock()
        self._changed = trio.Event()
        self._reported_wait = False
        self._consecutive_429 = 0
        self.responses = 0
        self.throttled = 0  # 429 answers seen

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[Slot]:
        """Wait (in FIFO order) until a request may go; the slot is released on exit."""
        async with self._queue:
            while True:
                now = trio.current_time()
                wait = self.core.try_acquire(now)
                if wait <= 0:
                    break
                self._report(now, wait)
                changed = self._changed
                with trio.move_on_after(min(wait, _MAX_STEP)):
                    await changed.wait()
            if self._reported_wait:
                self._reported_wait = False
                self._emit(trio.current_time(), 0.0)
        slot = Slot(self)
        try:
            yield slot
        finally:
            # Cancelled or crashed before an answer: count the request as spent (it may
            # have reached the server) and free the slot.
            slot.no_response()

    def _on_response(self, status: int, headers: Mapping[str, str]) -> None:
        now = trio.current_time()
        self.responses += 1
        # ``wall`` only matters for an answer without a Date header.
        self.core.on_response(now, status=status, headers=headers, wall=time.time())
        if status == 429:
            self.throttled += 1
            self._consecutive_429 += 1
            lowered = {k.lower() for k in headers}
            if "retry-after" not in lowered and "x-ratelimit-reset" not in lowered:
                # The server said "slow down" without saying for how long.
                delay = full_jitter(self._consecutive_429, rand=self._rand())
                self.core.block_for(now, max(delay, 0.5))
            snap = self.core.snapshot(now)
            self._emit(now, snap.wait)  # a 429 is always worth telling
        else:
            self._consecutive_429 = 0
        self._wake()

    def _on_no_response(self) -> None:
        self.core.on_no_response(trio.current_time())
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _report(self, now: float, wait: float) -> None:
        if wait >= _REPORT_WAIT and not self._reported_wait:
            self._reported_wait = True
            self._emit(now, wait)

    def _emit(self, now: float, wait: float) -> None:
        snap = self.core.snapshot(now)
        self._sink(
            Event(
                "rate_limit",
                time=now,
                limit=snap.limit,
                remaining=snap.remaining,
                reset_in=snap.reset_in,
                wait=wait,
            )
        )
