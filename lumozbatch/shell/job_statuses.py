"""Where each of a batch of identities stands (state, retired, billed, code), without decoding
its job record: what planning compares a manifest with, a chunk of specs at a time.

Decoding a full record (its JSON, then a ``JobRecord``) was most of a re-plan's cost at a
million jobs; these four values are columns of ``state.db``'s ``jobs`` table. A store other
than SQLite (PostgreSQL, the JSONL ledger, the memory store, a replayed state) answers from its
records, as does a SQLite store with appends not yet committed (they live beside its reader).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from lumozbatch.core.jobstate import JobState
from lumozbatch.core.ledger_codec import JobRecord
from lumozbatch.shell import sqlite_schema
from lumozbatch.shell.sql_reads import SqlReads

__all__ = ["JobStatus", "StatusesInOrder", "reads_columns", "statuses_by_identity"]

_IN_CHUNK = 500  # identities per IN (...) query, as the store's own lookups
_COLUMNS = "identity, state, retired, billed, code"


class JobStatus(NamedTuple):
    """The part of a planned job that planning reads: what ``category_of`` needs, and more
    (a tuple: a million are built by a re-plan; a frozen dataclass cost several times more)."""

    identity: str
    state: JobState
    retired: bool
    billed: bool | None
    code: str | None

    @classmethod
    def of(cls, job: JobRecord) -> JobStatus:
        return cls(job.identity, job.state, job.retired, job.billed, job.code)


def reads_columns(reads: Any) -> bool:
    """Whether ``reads`` answers from ``state.db``'s columns: a SQLite store or snapshot (of
    any schema version) with no appends pending (they live beside its reader)."""
    return isinstance(reads, SqlReads) and sqlite_schema.is_sqlite(reads._sql) and not reads._pending


def statuses_by_identity(reads: Any, identities: Iterable[str]) -> dict[str, JobStatus]:
    """The planned jobs among ``identities`` (absent: never planned), from the store's
    columns when ``reads`` is a SQLite store or snapshot with nothing pending."""
    identities = list(identities)
    if not reads_columns(reads):
        return {i: JobStatus.of(j) for i, j in reads.jobs_by_identity(identities).items()}
    out: dict[str, JobStatus] = {}
    for start in range(0, len(identities), _IN_CHUNK):
        part = identities[start:start + _IN_CHUNK]
        query = f"SELECT {_COLUMNS} FROM jobs WHERE identity IN ({', '.join('?' * len(part))})"
        for row in reads._reader.execute(query, part):
            out[row[0]] = _status(reads, *row)
    return out


class StatusesInOrder:
    """:func:`statuses_by_identity` for identities asked in planning order, chunk after chunk
    (a re-plan walks its manifest in the order it was first planned): each chunk is first
    looked for among the next rows in ``seq`` order, one range read of the table, and only
    what is not there is looked up by identity (a manifest edited, reordered or grown).

    A lookup by identity is a walk of the identity index and then of the table for each one:
    about three times the cost of reading the rows in order, at a million jobs most of a
    re-plan's time against the store. When the rows in order stop matching (most of a chunk
    planned but not among them: a reordered manifest), it stops reading them.
    """

    _SLACK = 64  # rows read beyond a chunk's size: retired jobs interleaved with the active

    def __init__(self, reads: Any) -> None:
        self._reads = reads
        self._after = 0  # the last seq matched
        self._in_order = True

    def __call__(self, identities: Iterable[str]) -> dict[str, JobStatus]:
        identities = list(identities)
        reads = self._reads
        if not self._in_order or not reads_columns(reads):
            return statuses_by_identity(reads, identities)
        page = reads._reader.execute(_NEXT_ROWS, (self._after, len(identities) + self._SLACK)).fetchall()
        by_identity = {row[1]: row for row in page}
        out: dict[str, JobStatus] = {}
        missing: list[str] = []
        last = self._after
        for identity in identities:
            row = by_identity.get(identity)
            if row is None:
                missing.append(identity)
            else:
                out[identity] = _status(reads, *row[1:])
                last = max(last, row[0])
        self._after = last
        if missing:
            elsewhere = statuses_by_identity(reads, missing)  # the rest are new to the store
            self._in_order = len(elsewhere) * 2 <= len(identities)
            out.update(elsewhere)
        return out


_NEXT_ROWS = f"SELECT seq, {_COLUMNS} FROM jobs WHERE seq > ? ORDER BY seq LIMIT ?"


def _status(reads: SqlReads, identity: str, state: str, retired: int, billed: int | None, code: str | None) -> JobStatus:
    shown = reads._read_as(state)
    if shown != state:  # a dead run's submitting job reads as ambiguous, as replay settles it
        code = None
    return JobStatus(identity, JobState(shown), bool(retired), None if billed is None else bool(billed), code)
