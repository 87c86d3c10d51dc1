"""Fixed-window rate limiting per API key, pure: every call takes ``now`` (unix seconds).

Windows are aligned on multiples of ``window`` in unix time, so a window's reset instant is the
same for every key and predictable in tests: ``reset = (floor(now / window) + 1) * window``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Decision", "FixedWindowLimiter", "UNLIMITED_LIMIT"]

#: What ``X-RateLimit-Limit`` announces when the sandbox runs without a limit: a number no
#: client can exhaust, so a client that obeys the headers is never held back.
UNLIMITED_LIMIT = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset: int          # unix seconds, rounded up (a client waiting until then is never early)
    retry_after: int    # whole seconds until reset, >= 1; meaningful when not allowed

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(self.reset).encode()),
        ]


class FixedWindowLimiter:
    """Counts requests per key in the current window; refused requests are not counted."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._windows: dict[str, tuple[int, int]] = {}  # key -> (window index, count)

    def reset(self) -> None:
        self._windows.clear()

    def hit(self, key: str, now: float) -> Decision:
        """Counts one request for ``key`` at ``now`` if the window allows it."""
        index = math.floor(now / self.window)
        end = (index + 1) * self.window
        reset = math.ceil(end)
        retry_after = max(1, math.ceil(end - now))
        seen_index, count = self._windows.get(key, (index, 0))
        if seen_index != index:
            count = 0
        limit = self.limit or UNLIMITED_LIMIT
        if count >= limit:
            self._windows[key] = (index, count)
            return Decision(False, limit, 0, reset, retry_after)
        count += 1
        self._windows[key] = (index, count)
        return Decision(True, limit, limit - count, reset, retry_after)
