"""What the live display shows, folded from the run's events.

Pure: every method takes the time it should use, so the view is tested without a clock.
Times are on the run's clock (``Event.time``); the live display maps its own refresh
instants onto that clock (see ``lumozbatch.ui.live``).

Counting: the ``plan`` event gives the batch's totals as the ledger saw them before the run;
each later event moves one identity between phases. Identities first seen without a
``submit`` (jobs already in flight before this run) replace the plan's ``in_flight`` count.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from lumozbatch.core.events import Event

__all__ = ["ETA_WINDOW", "GroupProgress", "MIN_ETA", "RateLimitView", "RunView", "WebhookCounts", "plan_extra"]

#: How many recent finishes the ETA's rate is measured over.
ETA_WINDOW = 20
#: The shortest ETA shown while work is left: "0s" would say it is done.
MIN_ETA = 1.0

# Phase of an identity seen during this run, by the last event about it.
_PHASE = {
    "submit": "submitting",
    "accepted": "running",
    "progress": "running",
    "completed": "downloading",
    "downloaded": "done",
    "failed": "failed",
    "ambiguous": "ambiguous",
}
_ACTIVE = ("submitting", "running", "downloading")
_FINAL = ("done", "failed", "ambiguous")


def plan_extra(state: Any, identities: set[str] | None = None) -> dict[str, Any]:
    """The ``plan`` event's ``extra``: per manifest job id, its total and what is already
    done / failed / ambiguous, from the batch's store (its counts per job; or a
    ``LedgerState``), or only of ``identities`` (the manifest's jobs) if given.

    ``Event("plan", ..., extra=plan_extra(store))`` lets the live display show each job's
    progress against its total.
    """
    from lumozbatch.core.jobcategory import category_of_state
    from lumozbatch.core.jobstate import JobState
    from lumozbatch.shell.state_reads import reads_of
    from lumozbatch.ui.summary import tally  # the summary's view of states

    if identities is not None:
        per_job = tally(state, identities).per_job
    else:
        per_job = {}
        for job, by_state in reads_of(state).counts_by("job").items():
            row = per_job.setdefault(job, {})
            for name, n in by_state.items():
                category = category_of_state(JobState(name))
                row[category] = row.get(category, 0) + n
    jobs: dict[str, dict[str, int]] = {}
    for job, row in per_job.items():
        total = sum(row.values())
        if total:
            jobs[job] = {"total": total, **{phase: row[phase] for phase in _FINAL if row.get(phase)}}
    return {"jobs": jobs}


@dataclass
class GroupProgress:
    """One manifest job id: how many of its generations are where."""

    total: int | None = None
    base: dict[str, int] = field(default_factory=dict)  # done/failed/ambiguous before this run
    phases: dict[str, int] = field(default_factory=dict)  # identities seen in this run

    def count(self, phase: str) -> int:
        return self.base.get(phase, 0) + self.phases.get(phase, 0)

    @property
    def finished(self) -> int:
        return sum(self.count(p) for p in _FINAL)


@dataclass
class RateLimitView:
    limit: int | None = None
    remaining: int | None = None
    reset_in: float | None = None
    wait: float = 0.0
    at: float = 0.0  # run time of the event

    def waiting(self, now: float) -> float:
        """Seconds still held back at ``now`` (counts down between events)."""
        return max(0.0, self.wait - (now - self.at))

    def resets_in(self, now: float) -> float | None:
        if self.reset_in is None:
            return None
        return max(0.0, self.reset_in - (now - self.at))


@dataclass
class WebhookCounts:
    """Deliveries decided in this run: received, the polls they saved, jobs relinked, refused."""

    received: int = 0
    polls_saved: int = 0
    relinked: int = 0
    refused: int = 0

    def apply(self, event: Event) -> None:
        self.received += 1
        if event.polls_saved is not None:
            self.polls_saved = event.polls_saved
        if event.result == "relink":
            self.relinked += 1
        if event.http_status is not None and event.http_status >= 400:
            self.refused += 1


class RunView:
    """The state of a run as far as the events tell it."""

    def __init__(self) -> None:
        self.name: str | None = None
        self.out_dir: str | None = None
        self.total: int = 0
        self.base: dict[str, int] = {}
        self.groups: dict[str, GroupProgress] = {}
        # identity -> phase, of the jobs heard of and not done: a done job is only counted, so
        # a run of 100,000 jobs does not end holding 100,000 identities (nothing follows "done")
        self.phase: dict[str, str] = {}
        self.group_of: dict[str, str] = {}  # identity -> manifest job id (same jobs)
        self.progress: dict[str, float | None] = {}  # identity -> last reported %
        self.tally: dict[str, int] = {}  # phase -> jobs of this run in it (done ones too)
        self.resumed = 0  # jobs first heard of without a submit
        self.rate = RateLimitView()
        self.failures: deque[Event] = deque(maxlen=5)
        self.finishes: deque[float] = deque(maxlen=ETA_WINDOW)
        self.started_at: float | None = None
        self.interrupted = False
        self.finished: Event | None = None
        self.retries = 0
        self.last_time = 0.0
        self.hooks = WebhookCounts()

    # ---- folding events -------------------------------------------------------------
    def apply(self, event: Event) -> None:
        self.last_time = max(self.last_time, event.time)
        kind = event.kind
        if kind == "plan":
            self._plan(event)
        elif kind in _PHASE and event.identity:
            self._move(event)
        elif kind == "rate_limit":
            self.rate = RateLimitView(
                limit=event.limit if event.limit is not None else self.rate.limit,
                remaining=event.remaining,
                reset_in=event.reset_in,
                wait=event.wait or 0.0,
                at=event.time,
            )
        elif kind == "webhook":
            self.hooks.apply(event)
        elif kind == "retry":
            self.retries += 1
        elif kind == "interrupted":
            self.interrupted = True
        elif kind == "finished":
            self.finished = event
        elif kind == "warning":
            self.failures.append(event)

    def _plan(self, event: Event) -> None:
        counts = event.counts or {}
        self.name, self.out_dir = event.name, event.out_dir
        self.total = int(counts.get("total", sum(v for k, v in counts.items() if k != "total")))
        self.base = {
            "done": counts.get("done", 0),
            "failed": counts.get("failed", 0),
            "ambiguous": counts.get("ambiguous", 0),
            "in_flight": counts.get("in_flight", 0),
        }
        self.started_at = event.time
        for job, info in (event.extra.get("jobs") or {}).items():
            group = self.groups.setdefault(job, GroupProgress())
            if isinstance(info, dict):
                group.total = info.get("total")
                group.base = {p: int(info.get(p, 0)) for p in _FINAL if info.get(p)}
            else:
                group.total = int(info)

    def _move(self, event: Event) -> None:
        identity = event.identity
        assert identity is not None
        new = _PHASE[event.kind]
        old = self.phase.get(identity)
        if old is None and event.kind != "submit":
            self.resumed += 1
        if self.started_at is None:
            self.started_at = event.time
        group = self.groups.setdefault(
            event.job or self.group_of.get(identity) or "-", GroupProgress()
        )
        self.group_of.setdefault(identity, event.job or "-")
        tally = self.tally
        if old is not None:
            group.phases[old] -= 1
            tally[old] -= 1
        group.phases[new] = group.phases.get(new, 0) + 1
        tally[new] = tally.get(new, 0) + 1
        self.phase[identity] = new
        if event.kind == "progress":
            self.progress[identity] = event.progress
        elif new != "running":
            self.progress.pop(identity, None)
        if new in _FINAL and old not in _FINAL:
            self.finishes.append(event.time)
        if new in ("failed", "ambiguous"):
            self.failures.append(event)
        if new == "done":
            del self.phase[identity], self.group_of[identity]

    # ---- reading --------------------------------------------------------------------
    def count(self, phase: str) -> int:
        seen = self.tally.get(phase, 0)
        if phase in _FINAL:
            return self.base.get(phase, 0) + seen
        return seen

    def counts(self) -> dict[str, Any]:
        """Every phase with its number; ``pending`` is what is not yet sent."""
        out = {p: self.count(p) for p in ("done", "failed", "ambiguous", *_ACTIVE)}
        # Jobs in flight before this run and not heard of yet are still running.
        out["running"] += max(0, self.base.get("in_flight", 0) - self.resumed)
        out["pending"] = max(0, self.total - sum(out.values()))
        out["total"] = self.total
        return out

    def rate_per_second(self) -> float | None:
        """Jobs finished per second over the recent finishes; None until it can be told."""
        if len(self.finishes) >= 2:
            span = self.finishes[-1] - self.finishes[0]
            if span > 0:
                return (len(self.finishes) - 1) / span
        if len(self.finishes) == 1 and self.started_at is not None:
            span = self.finishes[0] - self.started_at
            if span > 0:
                return 1 / span
        return None

    def eta(self, now: float) -> float | None:
        """Seconds until the last job finishes at the observed rate: 0 only when nothing is
        left, None until a finish gives a rate, else at least ``MIN_ETA``."""
        counts = self.counts()
        left = counts["pending"] + sum(counts[p] for p in _ACTIVE)
        if left == 0:
            return 0.0
        rate = self.rate_per_second()
        if rate is None:
            return None
        since_last = now - self.finishes[-1] if self.finishes else 0.0
        ahead = left / rate - since_last
        if ahead <= 0:
            # Overdue: the recent pace no longer holds (a stall, a spent rate-limit window).
            # Go by the pace including the time since, which slows as the stall goes on.
            ahead = left / self._rate_until(now)
        return max(ahead, self.rate.waiting(now), MIN_ETA)

    def _rate_until(self, now: float) -> float:
        if len(self.finishes) >= 2:
            return (len(self.finishes) - 1) / (now - self.finishes[0])
        start = self.started_at if self.started_at is not None else self.finishes[0]
        return 1 / max(now - start, 1e-9)

    def in_flight(self) -> list[tuple[str, str, str, float | None]]:
        """(identity, job, phase, progress) of every active identity, oldest first."""
        return [
            (i, self.group_of.get(i, "-"), p, self.progress.get(i))
            for i, p in self.phase.items()
            if p in _ACTIVE
        ]
