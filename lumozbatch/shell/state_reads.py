"""The streaming and aggregate reads of :mod:`lumozbatch.shell.sqlite_reads`, answered from a
replayed :class:`~lumozbatch.core.ledger_codec.LedgerState` in memory (the JSONL ledger, the
memory store, a ``ledger.jsonl`` read without the lock), so that every reader (plan, status,
summary, gallery, the runner's queue) is written once against one interface, whatever keeps
the batch.

:class:`StateSnapshot` is a read-only view of one replayed state; :func:`reads_of` turns a
``LedgerState`` (tests, library callers) into one and leaves a store as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from lumozbatch.core.jobcategory import spent_by_model
from lumozbatch.core.jobstate import JobState
from lumozbatch.core.ledger_codec import JobRecord, LedgerState
from lumozbatch.core.spend import Spend, spend_of
from lumozbatch.shell.replayed import ReplayedReads
from lumozbatch.shell.sqlite_reads import Cause

__all__ = ["StateReads", "StateSnapshot", "reads_of"]


class StateReads(ReplayedReads):
    """Mix-in: :class:`~lumozbatch.shell.sqlite_reads.SqliteReads`' reads from ``self.state``."""

    def iter_jobs(
        self, states: Iterable[JobState] | None = None, *, retired: bool | None = None, chunk: int = 1000
    ) -> Iterator[JobRecord]:
        """Jobs in planning order: those in ``states`` (None: any), retired or not (None: both)."""
        wanted = None if states is None else frozenset(JobState(s) for s in states)
        for job in list(self.state.jobs.values()):  # a copy: appends may land meanwhile
            if (wanted is None or job.state in wanted) and (retired is None or job.retired is retired):
                yield job

    def jobs_by_identity(self, identities: Iterable[str]) -> dict[str, JobRecord]:
        jobs = self.state.jobs
        return {i: jobs[i] for i in identities if i in jobs}

    def latest_holders(self, files: Iterable[str]) -> dict[str, str]:
        named = self.state.named
        return {f: named[f][-1] for f in files if named.get(f)}

    def iter_names(self) -> Iterator[tuple[str, list[str]]]:
        for file, holders in list(self.state.named.items()):
            if holders:
                yield file, list(holders)

    def counts_retired(self) -> dict[str, int]:
        out = {state.value: 0 for state in JobState}
        for job in self.state.jobs.values():
            if job.retired:
                out[job.state.value] += 1
        return out

    def counts_by(self, column: str) -> dict[str, dict[str, int]]:
        if column not in ("job", "model"):
            raise ValueError(f"counts_by({column!r}): job or model")
        out: dict[str, dict[str, int]] = {}
        for job in self.state.jobs.values():
            if not job.retired:
                key = job.job if column == "job" else job.model
                out.setdefault(key, {s.value: 0 for s in JobState})[job.state.value] += 1
        return out

    def spent(self) -> int:
        return sum(spent_by_model(self.state.jobs.values()).values())

    def spend(self) -> Spend:
        return spend_of(self.state.jobs.values())

    def count_relinked(self, states: Iterable[JobState]) -> int:
        wanted = frozenset(JobState(s) for s in states)
        return sum(1 for j in self.state.jobs.values() if j.relinked and not j.retired and j.state in wanted)

    def failures(self, state: JobState = JobState.FAILED, *, examples: int = 3) -> list[Cause]:
        state = JobState(state)
        groups: dict[tuple[str | None, str | None], list[str]] = {}
        for job in self.state.jobs.values():
            if job.state is state and not job.retired:
                groups.setdefault((job.code, job.reason), []).append(job.identity)
        causes = [Cause(code, reason, len(ids), tuple(ids[:examples])) for (code, reason), ids in groups.items()]
        causes.sort(key=lambda c: -c.count)
        return causes


class StateSnapshot(StateReads):
    """A read-only view of one replayed state (``read_state``'s, or one built in memory)."""

    def __init__(self, state: LedgerState) -> None:
        self.state = state

    def close(self) -> None:
        """Nothing to release (the same interface as a store's snapshot)."""

    def __enter__(self) -> StateSnapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def reads_of(source: Any) -> Any:
    """``source`` as something with the store's reads: a ``LedgerState`` becomes a
    :class:`StateSnapshot`; a store (or snapshot) is returned as it is."""
    return StateSnapshot(source) if isinstance(source, LedgerState) else source
