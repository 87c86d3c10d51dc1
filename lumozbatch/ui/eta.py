"""How long a batch will take under a fixed-window rate limit: ``plan``'s ETA.

Pure. The limiter (``core.limiter``) paces a window's ``remaining`` requests evenly until
its reset, then ``limit`` requests per window; so the time to make N calls is the pacing of
the current window plus whole windows plus the paced share of the last one.
"""

from __future__ import annotations

import math

__all__ = ["DEFAULT_POLLS_PER_JOB", "DEFAULT_WINDOW", "calls_needed", "estimate_eta"]

#: The provider's page says the limit is "per hour"; a runner that saw a window roll over
#: records the real length.
DEFAULT_WINDOW = 3600.0
#: ``/check`` calls a job costs on average (the poll planner aims at <= 2).
DEFAULT_POLLS_PER_JOB = 2.0


def calls_needed(new: int, in_flight: int = 0, *, polls_per_job: float = DEFAULT_POLLS_PER_JOB) -> int:
    """API calls to finish ``new`` jobs (one run + polls each) and ``in_flight`` ones (polls)."""
    return math.ceil(new * (1 + polls_per_job) + in_flight * polls_per_job)


def estimate_eta(
    calls_needed: int,
    limit: int | None,
    window: float | None = None,
    *,
    remaining: int | None = None,
    reset_in: float | None = None,
    latency: float = 0.0,
) -> float | None:
    """Seconds to make ``calls_needed`` calls, or None when no limit is known.

    ``remaining``/``reset_in`` describe the current window (a fresh one when unknown or
    already reset); ``latency`` is added once for the last generation to finish.
    """
    if calls_needed <= 0:
        return 0.0
    if not limit or limit <= 0:
        return None
    window = window if window and window > 0 else DEFAULT_WINDOW
    if remaining is None or reset_in is None or reset_in <= 0:
        remaining, reset_in = limit, window
    remaining = max(0, min(remaining, limit))
    if calls_needed <= remaining:
        return calls_needed * reset_in / remaining + latency
    rest = calls_needed - remaining
    windows = math.ceil(rest / limit)
    last = rest - (windows - 1) * limit
    return reset_in + (windows - 1) * window + last * window / limit + latency
