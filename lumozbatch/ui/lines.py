"""One event -> one plain line of text (the log without a terminal, and the live display's
scroll-back for failures).

Pure: no I/O, no clock. Lines start with the run's clock so a log can be read as a timeline.
"""

from __future__ import annotations

from lumozbatch.core.events import Event
from lumozbatch.core.wording import count

__all__ = ["LONG_WAIT", "format_bytes", "format_duration", "format_event", "format_wait", "job_label"]


def format_duration(seconds: float | None) -> str:
    """``4s``, ``2m05s``, ``1h02m``: short enough for a status line."""
    if seconds is None:
        return "?"
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


#: A rate-limit wait this long (an hourly window, a big Retry-After) is said with how to leave.
LONG_WAIT = 60.0


def format_wait(seconds: float) -> str:
    """A wait: ``0.9s`` when short (pacing), ``59m00s`` when it is long enough to matter."""
    return f"{seconds:.1f}s" if seconds < LONG_WAIT else format_duration(seconds)


def format_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def job_label(event: Event) -> str:
    """``portraits#3f2a9c1e2b4d``: the manifest job id plus the identity's short key."""
    key = event.key or (event.identity[:12] if event.identity else None)
    if event.job and key:
        return f"{event.job}#{key}"
    return event.job or key or "-"


def _counts(counts: dict[str, int] | None) -> str:
    if not counts:
        return ""
    shown = [f"{v} {k.replace('_', ' ')}" for k, v in counts.items() if k != "total" and v]
    total = counts.get("total")
    head = count(total, "job") if total is not None else "jobs"
    return f"{head} ({', '.join(shown)})" if shown else head


def _rate_limit(event: Event) -> str:
    parts = []
    if event.remaining is not None and event.limit is not None:
        parts.append(f"{event.remaining}/{event.limit} left")
    elif event.remaining is not None:
        parts.append(f"{event.remaining} left")
    if event.reset_in is not None:
        parts.append(f"resets in {format_duration(event.reset_in)}")
    if event.wait:
        parts.append(f"waiting {format_wait(event.wait)}")
    else:
        parts.append("sending")
    line = "rate limit: " + ", ".join(parts)
    if event.wait and event.wait >= LONG_WAIT:
        line += " (Ctrl-C stops; lumozbatch resume continues)"
    return line


def _describe(event: Event) -> str:
    kind, label = event.kind, job_label(event)
    if kind == "plan":
        where = f" -> {event.out_dir}" if event.out_dir else ""
        name = f" {event.name}" if event.name else ""
        return f"plan{name}: {_counts(event.counts)}{where}"
    if kind == "submit":
        return f"submit {label} ({event.model})" if event.model else f"submit {label}"
    if kind == "accepted":
        return f"accepted {label} request {event.request_id}"
    if kind == "progress":
        pct = "?" if event.progress is None else f"{event.progress:.0f}%"
        return f"progress {label} {pct}"
    if kind == "completed":
        return f"completed {label}"
    if kind == "downloaded":
        return f"downloaded {label} -> {event.file} ({format_bytes(event.bytes)})"
    if kind == "failed":
        code = f" [{event.code}]" if event.code else ""
        return f"FAILED {label}: {event.reason or 'unknown reason'}{code}"
    if kind == "ambiguous":
        return f"AMBIGUOUS {label}: {event.reason or 'answer lost'} (may have been billed)"
    if kind == "retry":
        who = f" {label}" if event.job or event.key or event.identity else ""
        delay = f" in {event.delay:.1f}s" if event.delay is not None else ""
        return f"retry {event.endpoint or 'call'}{who}{delay}: {event.reason or ''}".rstrip(": ")
    if kind == "rate_limit":
        return _rate_limit(event)
    if kind == "interrupted":
        return "interrupted: no more submissions; recording the answers in flight"
    if kind == "finished":
        code = f", exit {event.exit_code}" if event.exit_code is not None else ""
        return f"finished: {_counts(event.counts)}{code}"
    if kind == "warning":
        return f"warning: {event.reason or ''}"
    if kind == "outputs":
        return f"outputs on disk: {_outputs(event.counts or {})}"
    if kind == "webhook":
        return _webhook(event, label)
    return kind


_WEBHOOK_NOTE = {"relink": " (relinked)", "duplicate": " (duplicate)"}


def _webhook(event: Event, label: str) -> str:
    """``webhook j#3f2a9c1e2b4d request 5 completed (relinked); 7 received, 6 polls saved``."""
    note = _WEBHOOK_NOTE.get(event.result or "", "")
    if event.http_status is not None and event.http_status >= 400:
        note = f" (refused: {event.reason or event.result})"
    line = f"webhook {label} request {event.request_id} {event.status or '?'}{note}"
    if event.received is not None:
        line += f"; {event.received} received, {event.polls_saved or 0} polls saved"
    return line


def _outputs(counts: dict[str, int]) -> str:
    said = {
        "restored": "shown again from their kept copies",
        "adopted": "from an older lumozbatch now kept in .lumozbatch/objects",
        "missing": "gone from disk, fetched again",
    }
    return "; ".join(f"{n} {said[k]}" for k, n in counts.items() if n and k in said) or "as recorded"


def format_event(event: Event) -> str:
    """The plain line for ``event``, prefixed by the run's clock (``[  12.3s]``)."""
    return f"[{event.time:7.1f}s] {_describe(event)}"
