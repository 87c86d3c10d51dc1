"""The live terminal display: a rich renderable drawn from a ``RunView``.

rich refreshes it from its own thread several times a second, so the rate-limit countdown
and the ETA tick between events. ``clock`` maps that refresh onto the run's clock: the run
time of the last event plus the wall time since it arrived.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Callable

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from lumozbatch.core.events import Event
from lumozbatch.ui.lines import LONG_WAIT, format_duration, format_wait, job_label
from lumozbatch.ui.view import RunView

__all__ = ["LiveView", "eta_text"]

_MAX_IN_FLIGHT_ROWS = 6

_PHASE_STYLE = {
    "done": "green",
    "failed": "red",
    "ambiguous": "magenta",
    "running": "cyan",
    "downloading": "blue",
    "submitting": "yellow",
    "pending": "dim",
}


class LiveView:
    """Thread-safe holder of a ``RunView`` that rich can render at any moment."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.view = RunView()
        self._lock = threading.Lock()
        self._clock = clock
        self._wall_at_last = clock()

    def apply(self, event: Event) -> None:
        with self._lock:
            self.view.apply(event)
            self._wall_at_last = self._clock()

    def now(self) -> float:
        """The run's clock as of this instant."""
        return self.view.last_time + max(0.0, self._clock() - self._wall_at_last)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        with self._lock:
            yield render(self.view, self.now(), width=options.max_width)


def _bar(done: int, total: int, width: int) -> ProgressBar:
    return ProgressBar(total=max(total, 1), completed=done, width=width)


def _counts_line(counts: dict[str, int]) -> Text:
    text = Text()
    for phase in ("done", "running", "downloading", "submitting", "pending", "failed", "ambiguous"):
        n = counts.get(phase, 0)
        if n or phase in ("done", "pending"):
            if text:
                text.append("  ")
            text.append(f"{phase} {n}", style=_PHASE_STYLE[phase])
    return text


def _rate_line(view: RunView, now: float) -> Text:
    rate = view.rate
    text = Text("rate limit: ", style="bold")
    if rate.limit is None and rate.remaining is None:
        # The runner reports the limiter when it holds requests back; until then it did not.
        return text.append("not holding anything back", style="dim")
    resets = rate.resets_in(now)
    waiting = rate.waiting(now)
    if resets == 0 and waiting == 0:
        # The numbers are of a window that has ended.
        per = f" ({rate.limit} per window)" if rate.limit is not None else ""
        return text.append(f"window renewed, sending{per}", style="dim")
    if rate.remaining is not None:
        text.append(f"{rate.remaining}")
        if rate.limit is not None:
            text.append(f"/{rate.limit}")
        text.append(" left")
    if resets is not None:
        # A countdown rounds up: "resets in 0s" while it has not reset yet would be a lie.
        text.append(f", resets in {format_duration(math.ceil(resets))}")
    if waiting > 0:
        text.append(f"  waiting {format_wait(waiting)}", style="bold yellow")
        if waiting >= LONG_WAIT:
            text.append("  (Ctrl-C stops; resume continues)", style="dim")
    return text


def _webhook_line(view: RunView) -> Text:
    hooks = view.hooks
    text = Text("webhooks: ", style="bold")
    text.append(f"{hooks.received} received, {hooks.polls_saved} polls saved")
    if hooks.relinked:
        text.append(f", {hooks.relinked} relinked", style="magenta")
    if hooks.refused:
        text.append(f", {hooks.refused} refused", style="yellow")
    return text


def eta_text(view: RunView, now: float) -> str:
    """``ETA 4m10s``, or ``ETA estimating`` until a finished job gives a rate to go by."""
    eta = view.eta(now)
    return "ETA estimating" if eta is None else f"ETA {format_duration(eta)}"


def render(view: RunView, now: float, *, width: int = 80) -> Group:
    """The whole display at ``now`` (run clock)."""
    counts = view.counts()
    finished = counts["done"] + counts["failed"] + counts["ambiguous"]
    title = Text(view.name or "lumozbatch", style="bold")
    if view.interrupted:
        title.append("  interrupted: finishing what was sent", style="bold red")
    overall = Table.grid(padding=(0, 1))
    overall.add_row(
        Text("overall", style="bold"),
        _bar(finished, view.total, max(10, min(40, width - 40))),
        Text(f"{finished}/{view.total}"),
        Text(eta_text(view, now), style="bold"),
    )
    parts: list = [title, overall, _counts_line(counts), _rate_line(view, now)]
    if view.hooks.received:
        parts.append(_webhook_line(view))

    if view.groups:
        jobs = Table(box=None, padding=(0, 1), show_edge=False, expand=False)
        jobs.add_column("job", style="bold", no_wrap=True, max_width=24)
        jobs.add_column("progress", no_wrap=True)
        jobs.add_column("done", justify="right")
        jobs.add_column("running", justify="right")
        jobs.add_column("failed", justify="right")
        for name, group in view.groups.items():
            active = sum(group.count(p) for p in ("submitting", "running", "downloading"))
            if group.total is not None:
                total = group.total
            elif len(view.groups) == 1:  # one manifest job: the plan's total is its total
                total = view.total
            else:
                total = group.finished + active + group.count("pending")
            jobs.add_row(
                name,
                _bar(group.finished, total, 20),
                f"{group.count('done')}/{total}",
                str(active),
                str(group.count("failed") + group.count("ambiguous")),
            )
        parts.append(jobs)

    flying = view.in_flight()
    if flying:
        lines = Text()
        for identity, job, phase, progress in flying[:_MAX_IN_FLIGHT_ROWS]:
            pct = "" if progress is None else f" {progress:.0f}%"
            if lines:
                lines.append("\n")
            lines.append(f"  {job}#{identity[:12]} ", style="dim")
            lines.append(f"{phase}{pct}", style=_PHASE_STYLE.get(phase, ""))
        if len(flying) > _MAX_IN_FLIGHT_ROWS:
            lines.append(f"\n  ... and {len(flying) - _MAX_IN_FLIGHT_ROWS} more", style="dim")
        parts.append(lines)

    if view.failures:
        fails = Text()
        for event in view.failures:
            if fails:
                fails.append("\n")
            tag = {"failed": "failed", "ambiguous": "ambiguous"}.get(event.kind, "warning")
            fails.append(f"  {tag} ", style=_PHASE_STYLE.get(tag, "yellow"))
            who = f"{job_label(event)}: " if event.kind != "warning" else ""
            fails.append(f"{who}{event.reason or ''}")
        parts.append(fails)
    return Group(*parts)
