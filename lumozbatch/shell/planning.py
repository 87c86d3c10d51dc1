"""From a manifest's jobs and the ledger's state to the records ``apply`` appends, and the cap.

``plan_batch`` computes without writing: new ``job`` records (random seeds pinned once,
here), ``retire`` records for ledger jobs gone from the manifest, ``reset`` records for
``--retry-failed`` / ``--resubmit-ambiguous`` / ``--regenerate-missing``, and how many
generations the run would
submit against how many the ledger already counts as spent, so ``apply`` can refuse up
front and write nothing.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from lumozbatch.core.jobcategory import category_of, spent_generations
from lumozbatch.core.jobspec import JobSpec
from lumozbatch.core.jobstate import JobState
from lumozbatch.core.ledger_codec import JobRecord, LedgerState, pin_job
from lumozbatch.core.records import Record, Reset, Retire
from lumozbatch.errors import GenerationCapExceeded
from lumozbatch.core.wording import count

__all__ = ["Plan", "Resets", "check_cap", "plan_batch", "plan_resume"]


@dataclass(slots=True)
class Plan:
    """What a run is about to do, before anything is written."""

    records: list[Record] = field(default_factory=list)
    new: int = 0
    retired: int = 0
    reactivated: int = 0
    reset_failed: int = 0
    reset_billed: int = 0  # failed jobs that were billed and will be paid again
    reset_ambiguous: int = 0
    reset_missing: int = 0  # lost outputs paid for again (--regenerate-missing)
    to_submit: int = 0  # pending after the plan: each will cost one generation
    in_flight: int = 0  # accepted but not downloaded: polled/downloaded, no new cost
    done: int = 0
    failed: int = 0
    ambiguous: int = 0
    missing: int = 0  # downloaded once, gone from disk: fetched again for free if possible
    #: retired jobs whose run was sent and is not settled: still polled and downloaded
    followed: int = 0
    spent: int = 0  # generations the ledger already counts as paid or possibly paid

    def counts(self) -> dict[str, int]:
        return {
            "new": self.new,
            "pending": self.to_submit,
            "done": self.done,
            "in_flight": self.in_flight,
            "failed": self.failed,
            "ambiguous": self.ambiguous,
            "missing": self.missing,
            "retired": self.retired,
            "followed": self.followed,
            "total": self.to_submit + self.done + self.in_flight + self.failed + self.ambiguous + self.missing,
        }


@dataclass(frozen=True, slots=True)
class Resets:
    """What the user asked to send again, knowingly (each one may be paid again)."""

    retry_failed: bool = False
    resubmit_ambiguous: bool = False
    regenerate_missing: bool = False


def plan_batch(
    state: LedgerState,
    specs: Iterable[JobSpec],
    *,
    retry_failed: bool = False,
    resubmit_ambiguous: bool = False,
    regenerate_missing: bool = False,
) -> Plan:
    """The records ``apply`` appends for ``specs`` (the manifest's jobs, in order)."""
    plan = Plan()
    wanted: set[str] = set()
    for spec in specs:
        wanted.add(spec.identity)
        known = state.jobs.get(spec.identity)
        if known is None or known.retired:
            # A new job record (also re-activates a retired identity); the seed is pinned
            # now and the ledger keeps it.
            record = pin_job(spec, secrets.randbelow(2**32))
            if known is None:
                plan.new += 1
            else:
                # Back in the manifest: keep the seed it was pinned to the first time.
                record = dataclasses.replace(record, params=dict(known.params))
                plan.reactivated += 1
            plan.records.append(record)
    for identity, job in state.jobs.items():
        if identity not in wanted:
            if not job.retired:
                plan.records.append(Retire(id=identity))
                plan.retired += 1
            plan.followed += job.state in _FOLLOWED
    # Jobs already in the ledger that the manifest still wants (re-activated ones too).
    active = [j for j in state.jobs.values() if j.identity in wanted]
    _count(plan, active, Resets(retry_failed, resubmit_ambiguous, regenerate_missing))
    plan.to_submit += plan.new
    plan.spent = spent_generations(state.jobs.values())
    return plan


def plan_resume(
    state: LedgerState,
    *,
    retry_failed: bool = False,
    resubmit_ambiguous: bool = False,
    regenerate_missing: bool = False,
) -> Plan:
    """The batch exactly as the ledger holds it: every non-retired job."""
    plan = Plan()
    active = [j for j in state.jobs.values() if not j.retired]
    plan.retired = sum(1 for j in state.jobs.values() if j.retired)
    plan.followed = sum(1 for j in state.jobs.values() if j.retired and j.state in _FOLLOWED)
    _count(plan, active, Resets(retry_failed, resubmit_ambiguous, regenerate_missing))
    plan.spent = spent_generations(state.jobs.values())
    return plan


# A retired job in one of these states was paid for and is followed to its output anyway.
_FOLLOWED = frozenset({JobState.SUBMITTED, JobState.COMPLETED, JobState.MISSING})


def _count(plan: Plan, jobs: list[JobRecord], resets: Resets) -> None:
    retry_failed, resubmit_ambiguous = resets.retry_failed, resets.resubmit_ambiguous
    for job in jobs:
        category = category_of(job)
        if category == "new":
            plan.to_submit += 1
        elif category == "in_flight":
            plan.in_flight += 1
        elif category == "done":
            plan.done += 1
        elif category == "failed":
            if retry_failed:
                plan.records.append(Reset(id=job.identity, why="retry-failed"))
                plan.reset_failed += 1
                plan.reset_billed += 1 if job.billed else 0
                plan.to_submit += 1
            else:
                plan.failed += 1
        elif category == "ambiguous":
            if resubmit_ambiguous:
                plan.records.append(Reset(id=job.identity, why="resubmit-ambiguous"))
                plan.reset_ambiguous += 1
                plan.to_submit += 1
            else:
                plan.ambiguous += 1
        elif category == "missing":
            # Paid again only once fetching it for free has failed (the provider no longer
            # has it): a job just found missing is first fetched again at no cost.
            if resets.regenerate_missing and job.code != "missing":
                plan.records.append(Reset(id=job.identity, why="regenerate-missing"))
                plan.reset_missing += 1
                plan.to_submit += 1
            else:
                plan.missing += 1


def check_cap(plan: Plan, cap: int | None, *, source: str) -> None:
    """Refuse (``GenerationCapExceeded``) when the plan would pass ``cap``; ``source`` names it."""
    if cap is None:
        return
    total = plan.spent + plan.to_submit
    if total > cap:
        raise GenerationCapExceeded(
            f"this run would bring the batch to {count(total, 'generation')}, over the cap of {cap} "
            f"({source}); nothing was submitted",
            details=[
                f"already spent or possibly spent (ledger): {plan.spent}",
                f"to submit now: {plan.to_submit}",
                f"cap: {cap} -> raise it with --max-generations N, or trim the manifest",
            ],
        )
