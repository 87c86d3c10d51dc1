"""Where each of a batch of identities stands (state, retired, billed, code), without decoding
its job record: what planning compares a manifest with, a chunk of specs at a time.

Decoding a full record (its JSON, then a ``JobRecord``) was most of a re-plan's cost at a
million jobs; these four values are columns of ``state.db``'s ``jobs`` table. A store other
than SQLite (PostgreSQL, the JSONL ledger, the memory store, a replayed state) answers from its
records, as does a SQLite store with appends not yet committed (they live beside its reader).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lumozbatch.core.jobstate import JobState
from lumozbatch.core.ledger_codec import JobRecord
from lumozbatch.shell import sqlite_schema
from lumozbatch.shell.sql_reads import SqlReads

__all__ = ["JobStatus", "statuses_by_identity"]

_IN_CHUNK = 500  # identities per IN (...) query, as the store's own lookups
_COLUMNS = "identity, state, retired, billed, code"


@dataclass(frozen=True, slots=True)
class JobStatus:
    """The part of a planned job that planning reads: what ``category_of`` needs, and more."""

    identity: str
    state: JobState
    retired: bool
    billed: bool | None
    code: str | None

    @classmethod
    def of(cls, job: JobRecord) -> JobStatus:
        return cls(job.identity, job.state, job.retired, job.billed, job.code)


def statuses_by_identity(reads: Any, identities: Iterable[str]) -> dict[str, JobStatus]:
    """The planned jobs among ``identities`` (absent: never planned), from the store's
    columns when ``reads`` is a SQLite store or snapshot with nothing pending."""
    identities = list(identities)
    if not isinstance(reads, SqlReads) or reads._sql is not sqlite_schema or reads._pending:
        return {i: JobStatus.of(j) for i, j in reads.jobs_by_identity(identities).items()}
    out: dict[str, JobStatus] = {}
    for start in range(0, len(identities), _IN_CHUNK):
        part = identities[start:start + _IN_CHUNK]
        query = f"SELECT {_COLUMNS} FROM jobs WHERE identity IN ({', '.join('?' * len(part))})"
        for identity, state, retired, billed, code in reads._reader.execute(query, part):
            shown = reads._read_as(state)
            if shown != state:  # a dead run's submitting job reads as ambiguous, as replay settles it
                code = None
            billed = None if billed is None else bool(billed)
            out[identity] = JobStatus(identity, JobState(shown), bool(retired), billed, code)
    return out
