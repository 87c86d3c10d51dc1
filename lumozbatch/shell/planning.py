"""From a manifest's jobs and the ledger's state to the records ``apply`` appends, and the cap.

``plan_batch`` computes without writing: new ``job`` records (random seeds pinned once,
as they are written), ``retire`` records for ledger jobs gone from the manifest, ``reset``
records for ``--retry-failed`` / ``--resubmit-ambiguous`` / ``--regenerate-missing``, and
how many generations the run would submit against how many the ledger already counts as
spent, so ``apply`` can refuse up front and write nothing. It compares the manifest with
the store a chunk of specs at a time (their states only: ``shell.job_statuses``, no job
record decoded) and makes the job records only as ``Plan.chunks`` hands them to the writer:
memory stays flat in the batch size.
"""

from __future__ import annotations

import dataclasses
import itertools
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lumozbatch.core.chunks import chunked
from lumozbatch.core.jobcategory import category_of_state
from lumozbatch.core.jobspec import JobSpec
from lumozbatch.core.jobstate import JobState
from lumozbatch.core.ledger_codec import JobRecord, pin_job
from lumozbatch.core.records import Record, Reset, Retire
from lumozbatch.errors import GenerationCapExceeded
from lumozbatch.core.wording import count
from lumozbatch.shell.job_statuses import JobStatus, StatusesInOrder
from lumozbatch.shell.state_reads import reads_of

__all__ = ["Plan", "Resets", "check_cap", "plan_batch", "plan_resume"]


_CHUNK = 1000  # specs compared with the store (and job records written) at a time
SpecSource = Iterable[JobSpec] | Callable[[], Iterable[JobSpec]]


@dataclass(slots=True)
class Plan:
    """What a run is about to do, before anything is written."""

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
    retires: list[Record] = field(default_factory=list)
    resets: list[Record] = field(default_factory=list)
    #: the ``job`` records of new and re-activated specs, made as they are written (a plan
    #: of a million new jobs holds none of them); seeds are pinned then
    new_jobs: Callable[[], Iterator[Record]] | None = None

    @property
    def records(self) -> list[Record]:
        """Every record the plan appends, in order (tests; ``chunks`` writes them)."""
        return [r for chunk in self.chunks() for r in chunk]

    def chunks(self, size: int = _CHUNK) -> Iterator[list[Record]]:
        """The records to append, ``size`` at a time: job records, retirements, resets."""
        new = self.new_jobs() if self.new_jobs else ()
        return chunked(itertools.chain(new, self.retires, self.resets), size)

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
    store: Any,
    specs: SpecSource,
    *,
    retry_failed: bool = False,
    resubmit_ambiguous: bool = False,
    regenerate_missing: bool = False,
) -> Plan:
    """What ``apply`` appends for ``specs`` (the manifest's jobs, in order; a callable that
    expands them again, or an iterable that can be read twice) against ``store`` (a batch
    store, a snapshot, or a ``LedgerState``), compared ``_CHUNK`` specs at a time."""
    reads = reads_of(store)
    again = specs if callable(specs) else (lambda: specs)
    resets = Resets(retry_failed, resubmit_ambiguous, regenerate_missing)
    plan = Plan()
    known_active = followed_here = 0
    statuses = StatusesInOrder(reads)
    for chunk in chunked(again(), _CHUNK):
        known = statuses([s.identity for s in chunk])
        active = []
        for spec in chunk:
            job = known.get(spec.identity)
            if job is None:
                plan.new += 1
                continue
            if job.retired:
                plan.reactivated += 1  # back in the manifest: keeps the seed first pinned
            else:
                known_active += 1
            followed_here += job.state in _FOLLOWED
            active.append(job)
        _count(plan, active, resets)
    if reads.counts()["total"] > known_active:  # active jobs the manifest no longer has
        wanted = {spec.identity for spec in again()}
        plan.retires = [Retire(id=j.identity) for j in reads.iter_jobs(retired=False) if j.identity not in wanted]
        plan.retired = len(plan.retires)
    plan.followed = sum(1 for _ in reads.iter_jobs(_FOLLOWED)) - followed_here
    plan.to_submit += plan.new
    plan.spent = reads.spent()
    if plan.new or plan.reactivated:
        plan.new_jobs = lambda: _job_records(reads, again())
    return plan


def _job_records(reads: Any, specs: Iterable[JobSpec]) -> Iterator[Record]:
    """A ``job`` record for each spec the store lacks or has retired, looked up again as
    they are written; the seed is pinned now and the store keeps it."""
    for chunk in chunked(specs, _CHUNK):
        known = reads.jobs_by_identity([s.identity for s in chunk])
        for spec in chunk:
            job = known.get(spec.identity)
            if job is None or job.retired:
                record = pin_job(spec, secrets.randbelow(2**32))
                if job is not None:  # re-activated: keep the seed it was pinned to the first time
                    record = dataclasses.replace(record, params=dict(job.params))
                yield record


def plan_resume(
    store: Any,
    *,
    retry_failed: bool = False,
    resubmit_ambiguous: bool = False,
    regenerate_missing: bool = False,
) -> Plan:
    """The batch exactly as the store holds it: every non-retired job, streamed."""
    reads = reads_of(store)
    plan = Plan()
    plan.retired = reads.counts()["retired"]
    plan.followed = sum(1 for _ in reads.iter_jobs(_FOLLOWED, retired=True))
    _count(plan, reads.iter_jobs(retired=False), Resets(retry_failed, resubmit_ambiguous, regenerate_missing))
    plan.spent = reads.spent()
    return plan


# A retired job in one of these states was paid for and is followed to its output anyway.
_FOLLOWED = frozenset({JobState.SUBMITTED, JobState.COMPLETED, JobState.MISSING})


def _count(plan: Plan, jobs: Iterable[JobRecord | JobStatus], resets: Resets) -> None:
    retry_failed, resubmit_ambiguous = resets.retry_failed, resets.resubmit_ambiguous
    for job in jobs:
        category = category_of_state(job.state)
        if category == "new":
            plan.to_submit += 1
        elif category == "in_flight":
            plan.in_flight += 1
        elif category == "done":
            plan.done += 1
        elif category == "failed":
            if retry_failed:
                plan.resets.append(Reset(id=job.identity, why="retry-failed"))
                plan.reset_failed += 1
                plan.reset_billed += 1 if job.billed else 0
                plan.to_submit += 1
            else:
                plan.failed += 1
        elif category == "ambiguous":
            if resubmit_ambiguous:
                plan.resets.append(Reset(id=job.identity, why="resubmit-ambiguous"))
                plan.reset_ambiguous += 1
                plan.to_submit += 1
            else:
                plan.ambiguous += 1
        elif category == "missing":
            # Paid again only once fetching it for free has failed (the provider no longer
            # has it): a job just found missing is first fetched again at no cost.
            if resets.regenerate_missing and job.code != "missing":
                plan.resets.append(Reset(id=job.identity, why="regenerate-missing"))
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
