"""When to ``/check`` a running request: polls are spent where they find results. Pure.

Polls count against the rate limit like submissions, so each one should either find the
output or tell us when it will be there:

* the first poll goes near the typical latency seen so far for that model (the median of its
  recent completions; before any, ``default_first``);
* a ``processing`` answer with ``progress`` p% after ``elapsed`` seconds predicts a total of
  ``elapsed * 100 / p``: the next poll goes just after that;
* no usable progress: back off geometrically from the previous delay, up to ``max_delay``.

With webhooks a result is pushed, and polling is the fallback: :meth:`PollPlanner.overdue_after`
says when a pushed result is late against the completions this batch has seen (webhooks
and polls alike), so that a lost webhook delays a result but never loses it.
"""

from __future__ import annotations

import statistics
from collections import deque

__all__ = ["PollPlanner"]


class PollPlanner:
    """Plans the delay before each ``/check`` of a request, per model."""

    def __init__(
        self,
        *,
        default_first: float = 2.0,
        min_delay: float = 0.25,
        max_delay: float = 30.0,
        backoff: float = 1.5,
        slack: float = 0.05,
        history: int = 32,
        unseen_wait: float = 30.0,
        overdue_margin: float = 0.25,
        overdue_grace: float = 1.0,
    ) -> None:
        if not 0 < min_delay <= default_first <= max_delay:
            raise ValueError("need 0 < min_delay <= default_first <= max_delay")
        self.default_first = default_first
        self.min_delay = min_delay
        self.max_delay = max_delay
        self.backoff = backoff
        self.slack = slack  # aim this fraction past the predicted completion (+ min_delay/2)
        self._latencies: dict[str, deque[float]] = {}
        self._history = history
        self.unseen_wait = unseen_wait  # how long a webhook may take before any completion
        self.overdue_margin = overdue_margin
        self.overdue_grace = overdue_grace

    def observe(self, model: str, latency: float) -> None:
        """A request of ``model`` completed ``latency`` seconds after it was accepted.

        Only polled requests tell when to poll: a ``run`` that answered with its output at
        once (``latency`` 0) is ignored, or it would drag the first poll of slow ones early.
        """
        if latency > 0:
            self._latencies.setdefault(model, deque(maxlen=self._history)).append(latency)

    def typical_latency(self, model: str) -> float | None:
        seen = self._latencies.get(model)
        return statistics.median(seen) if seen else None

    def overdue_after(self, model: str) -> float:
        """Seconds from acceptance after which a pushed result is late: the slowest recent
        completion of ``model`` (of any model before it has one) plus a margin; before any
        completion at all, ``unseen_wait``. Plausibly on its way until then; polled after."""
        seen = self._latencies.get(model)
        if not seen:
            seen = [latency for recent in self._latencies.values() for latency in recent]
        if not seen:
            return self.unseen_wait
        return max(seen) * (1 + self.overdue_margin) + self.overdue_grace

    def first_delay(self, model: str) -> float:
        """Seconds from acceptance to the first ``/check``."""
        typical = self.typical_latency(model)
        return self._clamp(self.default_first if typical is None else typical)

    def next_delay(self, model: str, *, elapsed: float, progress: float | None, polls: int) -> float:
        """Seconds until the next ``/check``, after ``polls`` checks said "not done yet".

        ``elapsed`` is the time since acceptance; ``progress`` the last reported percentage.
        """
        if progress is not None and 0 < progress < 100 and elapsed > 0:
            expected_total = elapsed * 100.0 / progress
            left = expected_total - elapsed
            return self._clamp(left * (1 + self.slack) + self.min_delay / 2)
        if progress is not None and progress >= 100:
            return self.min_delay  # finishing: the output is moments away
        # nothing to go on: back off from the delay that came before this poll
        previous = self.first_delay(model) * self.backoff ** max(0, polls - 1)
        typical = self.typical_latency(model)
        if typical is not None and elapsed < typical:
            # still inside the usual latency: aim at it rather than past it
            return self._clamp(max(typical - elapsed, previous * 0.5))
        return self._clamp(previous * self.backoff)

    def _clamp(self, delay: float) -> float:
        return min(self.max_delay, max(self.min_delay, delay))
