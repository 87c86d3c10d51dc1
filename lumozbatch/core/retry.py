"""Which failures are retried, and after how long. Pure: randomness and times come in.

The rule that protects the user's money: a ``run`` is sent again only when it certainly
created nothing — the connection never carried it (connect error), or the API answered that it
refused it for now (429, 500, 503...). A ``run`` whose answer was lost after sending is
AMBIGUOUS, never retried automatically. ``check`` and downloads are idempotent: any network
error or server error is retried.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import Literal

__all__ = [
    "Decision",
    "Failure",
    "decide_fetch",
    "decide_run",
    "full_jitter",
    "parse_http_date",
    "parse_retry_after",
]

#: Answers that say "not now" about a request the server did not process.
_RETRY_STATUSES = frozenset({408, 425, 429})
#: A gateway answering for an upstream that may have received and processed the request:
#: for a paid `run` that is not "certainly nothing was created".
_GATEWAY_STATUSES = frozenset({502, 504})


def full_jitter(attempt: int, *, base: float = 0.5, cap: float = 30.0, rand: float) -> float:
    """AWS "full jitter": ``rand * min(cap, base * 2**attempt)``, ``rand`` in [0, 1)."""
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    ceiling = cap if attempt >= 64 else min(cap, base * 2.0**attempt)
    return rand * ceiling


def parse_http_date(value: str | None) -> float | None:
    """An HTTP-date (``Date`` header) as unix seconds, or None if absent or unreadable."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:  # "-0000" or no zone: HTTP dates are GMT
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def parse_retry_after(value: str | None, *, date_now: float | None) -> float | None:
    """``Retry-After`` as seconds to wait (never negative), or None if absent/unreadable.

    Delay-seconds are taken as they are; an HTTP-date is measured against ``date_now``, the
    server's own ``Date`` (so clock skew cancels out) — None if that is unknown.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        when = parse_http_date(text)
        if when is None or date_now is None:
            return None
        return max(0.0, when - date_now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


class Failure(enum.Enum):
    """How a call went wrong, as far as the money is concerned."""

    CONNECT = "connect"  # nothing left our side: ConnectError, ConnectTimeout, PoolTimeout
    SENT_NO_ANSWER = "sent_no_answer"  # sent, answer lost: Read/Write errors and timeouts, protocol errors
    HTTP = "http"  # an answer with a status


Action = Literal["retry", "ambiguous", "fail_job", "fail_model", "fatal_auth", "give_up", "refresh"]


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do about one failed call; ``delay`` is seconds before the retry."""

    action: Action
    delay: float = 0.0
    reason: str = ""


def _describe(failure: Failure, status: int | None, code: str | None) -> str:
    if failure is Failure.CONNECT:
        return "could not connect"
    if failure is Failure.SENT_NO_ANSWER:
        return "sent, but the answer was lost"
    text = f"HTTP {status}"
    return f"{text} {code}" if code else text


def decide_run(
    failure: Failure,
    status: int | None,
    code: str | None,
    attempt: int,
    *,
    rand: float,
    max_attempts: int = 8,
) -> Decision:
    """A ``run`` call failed on its ``attempt``-th try (1-based): what now?

    retry: certainly nothing was created (connect error, 408/425/429, a 5xx other than a
    gateway's 502/504); ambiguous: it may have been created (answer lost, gateway error);
    fatal_auth: 401; fail_model: 404 (the model, or the endpoint, does not exist: the rest of
    that model's jobs must not be sent); fail_job: 403, 422 and every other refusal;
    give_up: retries exhausted — the job stays pending, nothing was spent.
    """
    why = _describe(failure, status, code)
    if failure is Failure.SENT_NO_ANSWER:
        return Decision("ambiguous", reason=why)
    if failure is Failure.HTTP:
        if status is None:
            raise ValueError("an HTTP failure needs a status")
        if status == 401:
            return Decision("fatal_auth", reason=why)
        if status == 404:
            return Decision("fail_model", reason=why)
        if status in _GATEWAY_STATUSES:
            return Decision("ambiguous", reason=f"{why} (a gateway error: the run may have been processed)")
        retryable = status in _RETRY_STATUSES or status >= 500
        if not retryable:
            return Decision("fail_job", reason=why)
    if attempt >= max_attempts:
        return Decision("give_up", reason=f"{why}; gave up after {attempt} attempts")
    return Decision("retry", delay=full_jitter(attempt, rand=rand), reason=why)


def decide_fetch(
    failure: Failure,
    status: int | None,
    attempt: int,
    *,
    rand: float,
    max_attempts: int = 10,
    endpoint: Literal["check", "download"] = "check",
) -> Decision:
    """A ``check`` or an output download failed on its ``attempt``-th try (1-based).

    Any network error, 408/425/429 or 5xx: retry. 401 from the API: fatal_auth. For a
    download (never sent with the key), 401/403/404/410 mean the URL expired, and a host that
    cannot be reached (refused, unknown name) that it moved: refresh (ask ``/check`` for a
    fresh one; the caller bounds how often).
    Other 4xx: fail_job (for a download the job stays COMPLETED: it is paid for).
    """
    why = _describe(failure, status, None)
    if endpoint == "download" and failure is Failure.CONNECT:
        return Decision("refresh", reason=f"{why}: the output URL's host does not answer")
    if failure is Failure.HTTP:
        if status is None:
            raise ValueError("an HTTP failure needs a status")
        if endpoint == "download" and status in (401, 403, 404, 410):
            return Decision("refresh", reason=f"{why}: the output URL expired")
        if status == 401:
            return Decision("fatal_auth", reason=why)
        if not (status in _RETRY_STATUSES or status >= 500):
            return Decision("fail_job", reason=why)
    if attempt >= max_attempts:
        return Decision("give_up", reason=f"{why}; gave up after {attempt} attempts")
    return Decision("retry", delay=full_jitter(attempt, rand=rand), reason=why)
