"""The reads of a :class:`~lumozbatch.shell.store.BatchStore` whose whole state is a replayed
:class:`~lumozbatch.core.ledger_codec.LedgerState` in memory (the JSONL ledger, the memory
store), written once for both."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from lumozbatch.core.jobstate import JobState
from lumozbatch.core.ledger_codec import JobRecord, LedgerState

__all__ = ["ReplayedReads"]


class ReplayedReads:
    """Mix-in: every read answered from ``self.state``."""

    state: LedgerState

    @property
    def batch(self) -> dict[str, Any] | None:
        return self.state.batch

    def job(self, identity: str) -> JobRecord:
        return self.state.job(identity)

    def all_jobs(self) -> Iterator[JobRecord]:
        return self.state.all_jobs()

    def jobs_in(self, *states: JobState) -> list[JobRecord]:
        return self.state.jobs_in(*states)

    def holders(self, file: str) -> list[JobRecord]:
        return self.state.holders(file)

    def counts(self) -> dict[str, int]:
        return self.state.counts()
