"""``<out>/.lumozbatch/ratelimit.json``: the last rate-limit state a run saw, for ``plan``'s ETA.

``lumozbatch.session.drive`` writes it (``save_snapshot``) once, when a run of ``apply`` or
``resume`` stops, however it stops; ``plan`` reads it (``load_snapshot``) and asks ``eta_for``
how long the batch would take. Times are unix
seconds (the server's clock from the ``Date``/``Reset`` headers when known), so a snapshot
read an hour later knows its window has rolled over. Losing this file loses only an estimate:
it is written atomically but not fsynced.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from lumozbatch.core.layout import STATE_DIR
from lumozbatch.ui.eta import DEFAULT_WINDOW, calls_needed, estimate_eta
from lumozbatch.ui.lines import format_duration

__all__ = ["RATELIMIT_FILE", "RateLimitRecord", "eta_for", "load_snapshot", "plan_eta_line", "save_snapshot"]

RATELIMIT_FILE = Path(STATE_DIR) / "ratelimit.json"


@dataclass(frozen=True, slots=True)
class RateLimitRecord:
    limit: int
    remaining: int
    reset_at: float  # unix seconds when the window resets
    observed_at: float  # unix seconds of the answer that told it
    window: float | None = None  # window length, when the run saw one roll over

    def at(self, now: float) -> tuple[int, float | None]:
        """(remaining, reset_in) at unix time ``now``: a past reset means a fresh window."""
        if self.reset_at <= now:
            return self.limit, None
        return self.remaining, self.reset_at - now


def save_snapshot(out_dir: Path, record: RateLimitRecord) -> Path:
    path = Path(out_dir) / RATELIMIT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".ratelimit-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(asdict(record), fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_snapshot(out_dir: Path) -> RateLimitRecord | None:
    """The saved snapshot, or None when there is none or it cannot be read."""
    try:
        raw = json.loads((Path(out_dir) / RATELIMIT_FILE).read_text(encoding="utf-8"))
        return RateLimitRecord(
            limit=int(raw["limit"]),
            remaining=int(raw["remaining"]),
            reset_at=float(raw["reset_at"]),
            observed_at=float(raw["observed_at"]),
            window=float(raw["window"]) if raw.get("window") else None,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def eta_for(record: RateLimitRecord | None, calls: int, *, now: float) -> float | None:
    """``estimate_eta`` under ``record`` at unix time ``now``; None without a record."""
    if record is None:
        return None
    remaining, reset_in = record.at(now)
    return estimate_eta(calls, record.limit, record.window, remaining=remaining, reset_in=reset_in)


def plan_eta_line(out_dir: Path, *, new: int, in_flight: int = 0, now: float) -> str | None:
    """The line ``plan`` prints: how long ``new`` submissions and ``in_flight`` polls take
    under the last rate limit a run of this batch saw; None when no run has seen one."""
    record = load_snapshot(out_dir)
    calls = calls_needed(new, in_flight)
    seconds = eta_for(record, calls, now=now)
    if record is None or seconds is None:
        return None
    window = record.window or DEFAULT_WINDOW
    return (
        f"ETA: about {format_duration(seconds)} for ~{calls} API calls under the last rate limit seen "
        f"({record.limit} per {format_duration(window)})"
    )
