"""The sandbox's knobs: one dataclass, filled by ``lumozbatch sandbox`` flags or by tests."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = ["SandboxConfig", "parse_latency", "parse_rate_limit", "parse_seconds_range"]

DEFAULT_KEY = "sandbox-key"


@dataclass
class SandboxConfig:
    """Every knob of the sandbox. Rates are shares in [0, 1]; times are seconds.

    ``rate_limit`` requests per ``rate_window`` per key, in fixed windows aligned on multiples of
    ``rate_window`` in unix time (0 = unlimited; the headers are still sent). ``latency`` is the
    (min, max) processing time of a job, drawn uniformly; a job quicker than ``sync_threshold``
    is answered by ``run`` itself. ``storage_port`` None serves outputs from the API origin;
    any int (0 = a free port) serves them from a second origin. ``forbidden_models`` entries are
    ``"model"`` (no key may use it: 403) or ``"key:model"`` (that key may not). ``server``
    picks the socket server: ``"h11"`` (the sandbox's own loop, half the CPU per call) or
    ``"hypercorn"``.

    Webhooks: each delivery waits ``webhook_delay`` (min, max) seconds after its job finishes
    (drawn uniformly); a ``webhook_drop`` share is lost (never posted) and a ``webhook_dup``
    share is posted twice. ``reset_after_create``: share of ``run`` calls whose connection is
    reset right after the job was created (it exists and is billed; the client gets no answer).
    """

    host: str = "127.0.0.1"
    port: int = 8765
    api_keys: tuple[str, ...] = (DEFAULT_KEY,)
    rate_limit: int = 600
    rate_window: float = 60.0
    latency: tuple[float, float] = (1.0, 3.0)
    sync_threshold: float = 0.5
    fail_rate: float = 0.0
    error_rate: float = 0.0
    drop_rate: float = 0.0
    truncate_rate: float = 0.0
    storage_port: int | None = None
    output_ttl: float = 3600.0
    seed: int = 0
    image_scale: float = 1.0
    forbidden_models: tuple[str, ...] = ()
    server: str = "h11"
    webhook_timeout: float = 5.0
    webhook_delay: tuple[float, float] = (0.0, 0.0)
    webhook_drop: float = 0.0
    webhook_dup: float = 0.0
    reset_after_create: float = 0.0
    max_body_bytes: int = 1 << 20
    render_cache_size: int = 256
    journal: str | None = None  # a file that remembers created jobs across restarts

    def __post_init__(self) -> None:
        self.api_keys = tuple(self.api_keys)
        self.forbidden_models = tuple(self.forbidden_models)
        lo, hi = (float(v) for v in self.latency)
        self.latency = (lo, hi)
        hook_lo, hook_hi = (float(v) for v in self.webhook_delay)
        self.webhook_delay = (hook_lo, hook_hi)
        problems = []
        if not self.api_keys or any(not k for k in self.api_keys):
            problems.append("at least one non-empty API key is needed")
        if self.rate_limit < 0:
            problems.append("rate_limit must be >= 0")
        if not self.rate_window > 0:
            problems.append("rate_window must be > 0")
        if not 0 <= lo <= hi:
            problems.append("latency must be 0 <= MIN <= MAX")
        if not 0 <= hook_lo <= hook_hi:
            problems.append("webhook_delay must be 0 <= MIN <= MAX")
        for name in ("fail_rate", "error_rate", "drop_rate", "truncate_rate", "webhook_drop",
                     "webhook_dup", "reset_after_create"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be between 0 and 1")
        if not self.output_ttl > 0:
            problems.append("output_ttl must be > 0")
        if not 0 < self.image_scale <= 4:
            problems.append("image_scale must be in (0, 4]")
        if self.server not in ("h11", "hypercorn"):
            problems.append("server must be 'h11' or 'hypercorn'")
        if self.sync_threshold < 0:
            problems.append("sync_threshold must be >= 0")
        if problems:
            raise ValueError("; ".join(problems))

    def is_forbidden(self, key: str, model: str) -> bool:
        for entry in self.forbidden_models:
            who, sep, what = entry.rpartition(":")
            if what == model and (not sep or who == key):
                return True
        return False

    def describe(self) -> str:
        """The knobs as one line, for the start banner."""
        rl = "unlimited" if self.rate_limit == 0 else f"{self.rate_limit}/{_num(self.rate_window)}s"
        parts = [
            f"rate-limit={rl}",
            f"latency={_num(self.latency[0])}-{_num(self.latency[1])}s",
            f"sync-threshold={_num(self.sync_threshold)}s",
            f"fail-rate={_num(self.fail_rate)}",
            f"error-rate={_num(self.error_rate)}",
            f"drop-rate={_num(self.drop_rate)}",
            f"truncate-rate={_num(self.truncate_rate)}",
            f"reset-after-create={_num(self.reset_after_create)}",
            f"webhook-delay={_num(self.webhook_delay[0])}-{_num(self.webhook_delay[1])}s",
            f"webhook-drop={_num(self.webhook_drop)}",
            f"webhook-dup={_num(self.webhook_dup)}",
            f"output-ttl={_num(self.output_ttl)}s",
            f"image-scale={_num(self.image_scale)}",
            f"seed={self.seed}",
        ]
        if self.forbidden_models:
            parts.append("forbidden=" + ",".join(self.forbidden_models))
        return " ".join(parts)


def _num(value: float) -> str:
    return f"{value:g}"


_RATE = re.compile(r"^\s*(\d+)\s*(?:/\s*(\d+(?:\.\d+)?)\s*s?)?\s*$")


def parse_rate_limit(text: str) -> tuple[int, float]:
    """``"600/60"`` -> (600, 60.0); ``"0"`` -> unlimited (0, 60.0)."""
    m = _RATE.match(text)
    if not m:
        raise ValueError(f"rate limit {text!r} is not N/SECONDS (e.g. 600/60)")
    window = float(m.group(2)) if m.group(2) else 60.0
    if not window > 0 or not math.isfinite(window):
        raise ValueError(f"rate limit {text!r}: the window must be > 0 seconds")
    return int(m.group(1)), window


_SECONDS_RANGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:-\s*(\d+(?:\.\d+)?))?\s*s?\s*$")


def parse_seconds_range(text: str, what: str = "range") -> tuple[float, float]:
    """``"1-3"`` -> (1.0, 3.0); ``"0.5"`` -> (0.5, 0.5). ``what`` names it in the error."""
    m = _SECONDS_RANGE.match(text)
    if not m:
        raise ValueError(f"{what} {text!r} is not SECONDS or MIN-MAX seconds (e.g. 1-3)")
    lo = float(m.group(1))
    hi = float(m.group(2)) if m.group(2) else lo
    if hi < lo:
        raise ValueError(f"{what} {text!r}: MAX is below MIN")
    return lo, hi


def parse_latency(text: str) -> tuple[float, float]:
    """``"1-3"`` -> (1.0, 3.0); ``"0.5"`` -> (0.5, 0.5)."""
    return parse_seconds_range(text, "latency")
