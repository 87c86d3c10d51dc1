"""The reads of both SQL stores (:class:`lumozbatch.shell.sqlite_store.SqliteStore`,
:class:`lumozbatch.shell.pg_store.PgStore`) beyond one job, written once against the
statements of ``_sql`` (:mod:`lumozbatch.shell.sqlite_schema` or a
:class:`lumozbatch.shell.pg_schema.PgSql`): streams in planning order, lookups a batch of identities at a time, and aggregates answered by SQL
(counts, spent, failures by cause), each merged with the jobs whose steps are not committed
yet, so that a read shows every append at once. Memory stays flat in the batch size.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from lumozbatch.core.jobcategory import spent_generations
from lumozbatch.core.jobstate import JobState
from lumozbatch.core.ledger_codec import JobRecord, LedgerState
from lumozbatch.core.spend import Spend
from lumozbatch.shell import sql_rows as rows

__all__ = ["Cause", "SqlReads"]

_S = JobState
_IN_CHUNK = 500  # identities per IN (...) query
#: the states the generation cap counts as spent, asked of :func:`spent_generations` itself
_SPENT_STATES = tuple(
    s.value for s in JobState
    if spent_generations([JobRecord("", "", 0, 0, "", {}, {}, "", state=s, billed=False)]) == 1
)


@dataclass(frozen=True, slots=True)
class Cause:
    """Active jobs in one state that share a (code, reason): ``failures()``'s groups."""

    code: str | None
    reason: str | None
    count: int
    identities: tuple[str, ...]  # the first few, in planning order


_NO_SEQ = 1 << 62  # a ``first`` above every seq (a key counted only by subtractions)


@dataclass(frozen=True, slots=True)
class _CountRow:
    """Jobs of one (job, model, state, retired): how many, billed failures, paid before."""

    job: str
    model: str
    state: str
    retired: bool
    n: int
    billed_failed: int
    paid_before: int
    first: int  # the lowest seq counted here (planning order of a job's or model's first job)


def _settled_reason() -> str | None:
    probe = JobRecord("", "", 0, 0, "", {}, {}, "", state=_S.SUBMITTING)
    LedgerState(jobs={"": probe}).finish_replay()
    return probe.reason


class SqlReads:
    """Mix-in: the streaming and aggregate reads, from ``_reader`` and the pending jobs."""

    _reader: Any  # a DB-API connection whose ``execute`` returns a cursor (sqlite3, psycopg)
    _sql: Any  # the engine's statements: sqlite_schema, or a PgSql
    _settle: bool  # a snapshot of a dead run's batch: submitting reads as ambiguous
    _pending: dict[str, tuple[int, JobRecord, int]]  # identity -> (seq, job, group gen)
    _pending_names: dict[tuple[str, str], tuple[int, int]]  # (file, identity) -> (shown, gen)

    def iter_jobs(
        self, states: Iterable[JobState] | None = None, *, retired: bool | None = None, chunk: int = 1000
    ) -> Iterator[JobRecord]:
        """Jobs in planning order, streamed ``chunk`` rows at a time: those in ``states``
        (None: any), retired or not (None: both). Pages are read as they are reached; with
        ``states``, one index walk per (state, retired) merged by seq reads only those jobs."""
        wanted = None if states is None else frozenset(JobState(s) for s in states)
        retired_values = (False, True) if retired is None else (retired,)
        streams: list[tuple[str | None, bool | None]] = (
            [(None, retired)] if wanted is None
            else [(s.value, r) for s in sorted(self._stored_as(wanted)) for r in retired_values]
        )
        after = 0
        while True:
            exclude = list(self._pending)
            extra = [rows.dumps(exclude)] if exclude else []
            fetched: list[tuple[int, str]] = []
            last = float("inf")  # the page ends where the first full stream does
            for state, is_retired in streams:
                query, params = self._sql.select_jobs_page(state, is_retired, exclude=bool(exclude))
                found = self._reader.execute(query, [after, *params, *extra, chunk]).fetchall()
                if len(found) == chunk:
                    last = min(last, found[-1][0])
                fetched += found
            page = [(seq, rows.job_from_record(text)) for seq, text in fetched if seq <= last]
            page += [(seq, job) for seq, job, _ in self._pending.values() if after < seq <= last]
            page.sort(key=lambda item: item[0])
            for _, job in page:
                job = self._settled(job)
                if (wanted is None or job.state in wanted) and (retired is None or job.retired is retired):
                    yield job
            if last == float("inf"):
                return
            after = int(last)

    def jobs_by_identity(self, identities: Iterable[str]) -> dict[str, JobRecord]:
        """The planned jobs among ``identities`` (plan and re-runs compare a batch at a time)."""
        out: dict[str, JobRecord] = {}
        todo: list[str] = []
        for identity in identities:
            hit = self._pending.get(identity)
            if hit is not None:
                out[identity] = hit[1]
            else:
                todo.append(identity)
        for start in range(0, len(todo), _IN_CHUNK):
            part = todo[start:start + _IN_CHUNK]
            for _, text in self._reader.execute(self._sql.select_jobs_by_identity(len(part)), part):
                job = self._settled(rows.job_from_record(text))
                out[job.identity] = job
        return out

    def holders(self, file: str) -> list[JobRecord]:
        """Jobs whose outputs have been shown under the name ``file``, the least lately
        shown first (their outputs are kept: the name may be re-pointed between them)."""
        shown = dict(self._reader.execute(self._sql.SELECT_HOLDERS, (file,)).fetchall())
        for (name, identity), (when, _) in self._pending_names.items():
            if name == file:
                shown[identity] = when
        order = sorted(shown, key=shown.__getitem__)
        jobs = self.jobs_by_identity(order)
        return [jobs[i] for i in order if i in jobs]

    def latest_holders(self, files: Iterable[str]) -> dict[str, str]:
        """For each of ``files`` that some output has been shown under, the identity shown
        last (the one its file shows now), a few hundred names per query."""
        files = list(dict.fromkeys(files))
        out: dict[str, str] = {}
        for start in range(0, len(files), _IN_CHUNK):
            part = files[start:start + _IN_CHUNK]
            out.update(self._reader.execute(self._sql.select_latest_holders(len(part)), part).fetchall())
        wanted = set(files)
        latest: dict[str, int] = {}
        for (file, identity), (when, _) in self._pending_names.items():
            if file in wanted and when > latest.get(file, -1):
                latest[file] = when
                out[file] = identity
        return out

    def iter_names(self) -> Iterator[tuple[str, list[str]]]:
        """Every output name with the identities shown under it (as :meth:`holders` orders
        them), name by name: ``LedgerState.named`` as a stream (committed names only)."""
        current: str | None = None
        identities: list[str] = []
        for file, identity in self._reader.execute(self._sql.SELECT_NAMES):
            if file != current and current is not None:
                yield current, identities
                identities = []
            current = file
            identities.append(identity)
        if current is not None:
            yield current, identities

    def counts(self) -> dict[str, int]:
        """Active jobs per state name, plus ``retired`` and ``total`` (active)."""
        out = {state.value: 0 for state in JobState}
        retired = 0
        for row in self._count_rows():
            if row.retired:
                retired += row.n
            else:
                out[row.state] += row.n
        out["retired"] = retired
        out["total"] = sum(out[state.value] for state in JobState)
        return out

    def counts_retired(self) -> dict[str, int]:
        """Retired jobs per state name (what became of them: kept, still followed)."""
        out = {state.value: 0 for state in JobState}
        for row in self._count_rows():
            if row.retired:
                out[row.state] += row.n
        return out

    def counts_by(self, column: str) -> dict[str, dict[str, int]]:
        """Active jobs per ``job`` (manifest job id) or ``model``, then per state name, in
        planning order of each one's first job."""
        if column not in ("job", "model"):
            raise ValueError(f"cannot count by {column!r}")
        out: dict[str, dict[str, int]] = {}
        first: dict[str, int] = {}
        for row in self._count_rows():
            key = row.job if column == "job" else row.model
            if not row.retired and row.n:
                out.setdefault(key, {s.value: 0 for s in JobState})[row.state] += row.n
                first[key] = min(first.get(key, row.first), row.first)
        return {key: out[key] for key in sorted(out, key=first.__getitem__)}

    def spent(self) -> int:
        """Generations that may have cost money, retired jobs included (the generation cap's
        count, :func:`lumozbatch.core.jobcategory.spent_generations`)."""
        return sum(self.spend().by_model.values())

    def spend(self) -> Spend:
        """:meth:`spent` per model, and how many of those are ambiguous (``core.spend``)."""
        by_model: dict[str, int] = {}
        ambiguous = 0
        for row in self._count_rows():
            spent = row.paid_before + row.billed_failed + (row.n if row.state in _SPENT_STATES else 0)
            by_model[row.model] = by_model.get(row.model, 0) + spent
            ambiguous += row.n if row.state == _S.AMBIGUOUS.value else 0
        return Spend({m: n for m, n in by_model.items() if n}, ambiguous)

    def count_relinked(self, states: Iterable[JobState]) -> int:
        """Active jobs in ``states`` whose current request a webhook named (``relinked``)."""
        wanted = [JobState(s).value for s in states]
        exclude = list(self._pending)
        extra = [rows.dumps(exclude)] if exclude else []
        n = self._reader.execute(self._sql.select_relinked(len(wanted), exclude=bool(exclude)), [*wanted, *extra]).fetchone()[0]
        return int(n) + sum(
            1 for _, job, _ in self._pending.values()
            if job.relinked and not job.retired and job.state.value in wanted
        )

    def failures(self, state: JobState = JobState.FAILED, *, examples: int = 3) -> list[Cause]:
        """Active jobs in ``state`` grouped by (code, reason), biggest group first, each with
        its first ``examples`` identities in planning order."""
        state = JobState(state)
        counts: dict[tuple[str | None, str | None], int] = {}
        members: dict[tuple[str | None, str | None], list[tuple[int, str]]] = {}
        exclude = list(self._pending)
        query = self._sql.select_causes(exclude=bool(exclude))
        sources = [(state, False)]
        if self._settle and state is _S.AMBIGUOUS:
            sources.append((_S.SUBMITTING, True))  # read as ambiguous, with replay's reason
        settled = (None, _settled_reason())
        for source, relabel in sources:
            args = [source.value, *([rows.dumps(exclude)] if exclude else []), examples]
            seen = set()
            for code, reason, n, identity, seq in self._reader.execute(query, args):
                key = settled if relabel else (code, reason)
                if (key, code, reason) not in seen:
                    seen.add((key, code, reason))
                    counts[key] = counts.get(key, 0) + n
                members.setdefault(key, []).append((seq, identity))
        for seq, job, _ in self._pending.values():
            if job.state is state and not job.retired:
                key = (job.code, job.reason)
                counts[key] = counts.get(key, 0) + 1
                members.setdefault(key, []).append((seq, job.identity))
        causes = [
            Cause(code, reason, n, tuple(i for _, i in sorted(members[(code, reason)])[:examples]))
            for (code, reason), n in counts.items()
        ]
        causes.sort(key=lambda c: -c.count)
        return causes

    def steps(self, identity: str | None = None, *, chunk: int = 1000) -> Iterator[dict[str, Any]]:
        """Every committed step (a wire record with its ``at``), in order; of one job if given."""
        job_seq = None
        if identity is not None:
            found = self._reader.execute(self._sql.SELECT_JOB, (identity,)).fetchone()
            if found is None:
                return
            job_seq = found[0]
        after = 0
        while True:
            if identity is None:
                page = self._reader.execute(self._sql.SELECT_STEPS_PAGE, (after, chunk)).fetchall()
            else:
                page = self._reader.execute(self._sql.SELECT_STEPS_OF, (job_seq, after, chunk)).fetchall()
            for _, text in page:
                yield rows.loads(text)
            if len(page) < chunk:
                return
            after = page[-1][0]

    def _count_rows(self) -> list[_CountRow]:
        """Every job counted by (job, model, state as read, retired): the committed ones from
        the engine's count rows (a few rows, whatever the batch size), less the committed rows
        of the jobs passed over, plus those jobs as they are now; summed per key."""
        exclude = list(self._pending)
        query = self._sql.select_count_rows(exclude=bool(exclude))
        found = self._reader.execute(query, [rows.dumps(exclude)] if exclude else []).fetchall()
        for seq, job, _ in self._pending.values():
            failed_billed = int(job.state is _S.FAILED and job.billed is True)
            found.append((job.job, job.model, job.state.value, job.retired, 1, failed_billed, job.paid_before, seq))
        summed: dict[tuple[str, str, str, bool], list[int]] = {}
        for job_id, model, state, retired, n, billed_failed, paid_before, first in found:
            key = (job_id, model, self._read_as(state), bool(retired))
            got = summed.setdefault(key, [0, 0, 0, _NO_SEQ])
            got[0] += n
            got[1] += int(billed_failed or 0)
            got[2] += int(paid_before or 0)
            if first is not None:
                got[3] = min(got[3], first)
        return [_CountRow(*key, *values) for key, values in summed.items() if any(values[:3])]

    def _settled(self, job: JobRecord) -> JobRecord:
        if self._settle and job.state is _S.SUBMITTING:
            LedgerState(jobs={job.identity: job}).finish_replay()
        return job

    def _read_as(self, state: str) -> str:
        """A stored state name as this store reads it (a dead run's submitting: ambiguous)."""
        return _S.AMBIGUOUS.value if self._settle and state == _S.SUBMITTING.value else state

    def _stored_as(self, wanted: frozenset[JobState]) -> frozenset[JobState]:
        """The stored states that may read as one of ``wanted`` (a superset; reads filter)."""
        if self._settle and _S.AMBIGUOUS in wanted:
            return wanted | {_S.SUBMITTING}
        return wanted
