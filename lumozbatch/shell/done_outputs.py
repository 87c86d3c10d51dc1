"""Where each done job's output is recorded (its planned name, file, kept object, sha256,
size), without decoding its job record: what a run reads of every done job before it starts
(the outputs still show what was paid for; ``results.jsonl`` lists each one).

A no-op re-apply of a million-job batch spent most of its time decoding a million JSON
records, three times, for these six values, which are columns of ``state.db``'s ``jobs``
table. Other stores (PostgreSQL, the JSONL ledger, the memory store, a replayed state), and a
SQLite store with appends not yet committed, answer from their records, as
:mod:`lumozbatch.shell.job_statuses` does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from lumozbatch.core.jobstate import JobState
from lumozbatch.core.ledger_codec import JobRecord
from lumozbatch.shell.job_statuses import reads_columns

__all__ = ["DoneOutput", "done_identities", "done_outputs"]

_PAGE = 5000  # rows a query; the pages walk the (state, retired, seq) index
_QUERY = (
    "SELECT seq, {columns} FROM jobs"
    " WHERE state = 'done' AND retired = ? AND seq > ? ORDER BY seq LIMIT ?"
)


class DoneOutput(NamedTuple):
    """The output part of a done job's record (a tuple: a million are built in a run)."""

    identity: str
    filename: str  # the planned name, without the output's extension
    file: str | None  # where it was shown (its name, extension included)
    object: str | None  # its kept copy in the store (None: from before the store)
    sha256: str | None
    bytes: int | None

    @classmethod
    def of(cls, job: JobRecord) -> DoneOutput:
        return cls(job.identity, job.filename, job.file, job.object, job.sha256, job.bytes)


def done_outputs(reads: Any, *, retired: bool | None = False) -> Iterator[DoneOutput]:
    """Done jobs' outputs, streamed a page at a time: active ones (``retired=False``),
    retired ones (True) or both (None: active first, then retired; each in planning order).
    Safe to append between items (each page is read whole before it is handed out)."""
    make = DoneOutput._make
    for row in _done_rows(reads, retired, "identity, filename, file, object, sha256, bytes", DoneOutput.of):
        yield make(row)


def done_identities(reads: Any, *, retired: bool | None = None) -> Iterator[str]:
    """The identities of :func:`done_outputs` (what ``results.jsonl`` is checked against)."""
    for row in _done_rows(reads, retired, "identity", lambda job: (job.identity,)):
        yield row[0]


def _done_rows(
    reads: Any, retired: bool | None, columns: str, of_job: Callable[[JobRecord], tuple[Any, ...]]
) -> Iterator[tuple[Any, ...]]:
    """``columns`` of the done jobs, as tuples (``of_job``: the same from a record)."""
    query = _QUERY.format(columns=columns)
    for is_retired in (False, True) if retired is None else (retired,):
        if not reads_columns(reads):
            for job in reads.iter_jobs([JobState.DONE], retired=is_retired):
                yield of_job(job)
            continue
        after = 0
        while True:
            page = reads._reader.execute(query, (int(is_retired), after, _PAGE)).fetchall()
            for row in page:
                yield row[1:]
            if len(page) < _PAGE:
                break
            after = page[-1][0]
