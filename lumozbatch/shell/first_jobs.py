"""The first active jobs of each manifest job, in planning order: what the gallery shows of
a batch too big for one page, read without decoding the rest.

The gallery keeps the first ``per_job`` cells of each manifest job; streaming every job to
skip all but those decoded a million JSON records at a million jobs. A SQLite store or
snapshot with nothing pending asks each manifest job's first rows of its ``jobs_by_job``
index; any other store streams its jobs and skips, as the gallery did.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from lumozbatch.core.ledger_codec import JobRecord
from lumozbatch.shell import sql_rows
from lumozbatch.shell.job_statuses import reads_columns

__all__ = ["first_jobs"]

_QUERY = "SELECT seq, record FROM jobs WHERE job = ? AND retired = 0 ORDER BY seq LIMIT ?"


def first_jobs(reads: Any, per_job: int | None) -> Iterator[JobRecord]:
    """Active jobs in planning order, the first ``per_job`` of each manifest job (None: all)."""
    if per_job is None or not reads_columns(reads):
        taken: dict[str, int] = {}
        for job in reads.iter_jobs(retired=False):
            if per_job is None or taken.get(job.job, 0) < per_job:
                taken[job.job] = taken.get(job.job, 0) + 1
                yield job
        return
    found: list[tuple[int, str]] = []  # at most per_job rows of each manifest job
    for name in reads.counts_by("job"):
        found += reads._reader.execute(_QUERY, (name, per_job)).fetchall()
    found.sort()
    for _, record in found:
        yield reads._settled(sql_rows.job_from_record(record))
