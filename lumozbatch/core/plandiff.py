"""The manifest's jobs against the ledger: what ``apply`` would do. Pure.

Each job of the manifest falls in one category:

=========  =====================================================================
new        not in the ledger, or planned and never (successfully) sent: PENDING
done       the output is on disk
in_flight  sent and not on disk yet: SUBMITTING, SUBMITTED, COMPLETED
failed     the API refused it or reported it failed (``--retry-failed`` re-sends)
ambiguous  sent, answer lost: maybe billed (``--resubmit-ambiguous`` re-sends)
=========  =====================================================================

``removed`` are ledger jobs (not already retired) whose identity the manifest no longer has.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from lumozbatch.core.jobspec import JobSpec
from lumozbatch.core.jobstate import JobState
from lumozbatch.core.ledger_codec import JobRecord, LedgerState

__all__ = ["CATEGORIES", "PlanDiff", "PlanEntry", "category_of", "diff"]

CATEGORIES = ("new", "done", "in_flight", "failed", "ambiguous")

_CATEGORY = {
    JobState.PENDING: "new",
    JobState.SUBMITTING: "in_flight",
    JobState.SUBMITTED: "in_flight",
    JobState.COMPLETED: "in_flight",
    JobState.DONE: "done",
    JobState.FAILED: "failed",
    JobState.AMBIGUOUS: "ambiguous",
}


def category_of(record: JobRecord | None) -> str:
    """The plan category of a ledger job (None: not in the ledger -> new)."""
    return "new" if record is None else _CATEGORY[record.state]


@dataclass(frozen=True, slots=True)
class PlanEntry:
    """One manifest job and where it stands."""

    spec: JobSpec
    category: str
    record: JobRecord | None  # the ledger's view, if it has one

    @property
    def identity(self) -> str:
        return self.spec.identity


def _zero() -> dict[str, int]:
    return {name: 0 for name in (*CATEGORIES, "removed", "total")}


@dataclass(frozen=True)
class PlanDiff:
    """Every manifest job's category, the ledger jobs the manifest dropped, and counts."""

    entries: tuple[PlanEntry, ...]
    removed: tuple[JobRecord, ...]
    totals: dict[str, int] = field(default_factory=_zero)  # category -> count, removed, total
    by_job: dict[str, dict[str, int]] = field(default_factory=dict)  # manifest job id -> counts
    by_model: dict[str, dict[str, int]] = field(default_factory=dict)  # model -> counts

    def identities(self, category: str) -> list[str]:
        """Identities in ``category`` (one of CATEGORIES or "removed"), in order."""
        if category == "removed":
            return [r.identity for r in self.removed]
        if category not in CATEGORIES:
            raise ValueError(f"unknown category {category!r}")
        return [e.identity for e in self.entries if e.category == category]

    def to_submit(self, *, retry_failed: bool = False, resubmit_ambiguous: bool = False) -> int:
        """How many ``run`` requests ``apply`` would send with these options."""
        count = self.totals["new"]
        if retry_failed:
            count += self.totals["failed"]
        if resubmit_ambiguous:
            count += self.totals["ambiguous"]
        return count

    def spent(self) -> int:
        """Generations the ledger already counts against a cap: done, in flight, ambiguous
        and failures that may have been billed (manifest jobs and removed ones alike)."""
        records = [e.record for e in self.entries if e.record is not None] + list(self.removed)
        return sum(1 for r in records if _spent(r))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (``plan --json``)."""
        return {
            "totals": dict(self.totals),
            "by_job": {k: dict(v) for k, v in self.by_job.items()},
            "by_model": {k: dict(v) for k, v in self.by_model.items()},
            "jobs": [
                {
                    "identity": e.identity,
                    "key": e.spec.key,
                    "job": e.spec.job,
                    "model": e.spec.model,
                    "category": e.category,
                    "state": None if e.record is None else e.record.state.value,
                    "reason": None if e.record is None else e.record.reason,
                }
                for e in self.entries
            ],
            "removed": [
                {"identity": r.identity, "key": r.key, "job": r.job, "model": r.model, "state": r.state.value}
                for r in self.removed
            ],
        }


def _spent(record: JobRecord) -> bool:
    if record.state in (JobState.DONE, JobState.COMPLETED, JobState.SUBMITTED, JobState.SUBMITTING, JobState.AMBIGUOUS):
        return True
    return record.state is JobState.FAILED and bool(record.billed)


def diff(specs: Iterable[JobSpec], state: LedgerState | None) -> PlanDiff:
    """Compare the manifest's jobs (``specs``, in manifest order) with the ledger's ``state``
    (None: no ledger yet, every job is new). A repeated identity counts once."""
    jobs = state.jobs if state is not None else {}
    entries: list[PlanEntry] = []
    seen: set[str] = set()
    totals = _zero()
    by_job: dict[str, dict[str, int]] = {}
    by_model: dict[str, dict[str, int]] = {}

    def count(job: str, model: str, category: str) -> None:
        for table, key in ((by_job, job), (by_model, model)):
            row = table.get(key)
            if row is None:
                row = table[key] = _zero()
            row[category] += 1
            if category != "removed":
                row["total"] += 1
        totals[category] += 1
        if category != "removed":
            totals["total"] += 1

    for spec in specs:
        if spec.identity in seen:
            continue
        seen.add(spec.identity)
        record = jobs.get(spec.identity)
        category = category_of(record)
        entries.append(PlanEntry(spec, category, record))
        count(spec.job, spec.model, category)

    removed = tuple(r for r in jobs.values() if not r.retired and r.identity not in seen)
    for record in removed:
        count(record.job, record.model, "removed")
    return PlanDiff(tuple(entries), removed, totals, by_job, by_model)
