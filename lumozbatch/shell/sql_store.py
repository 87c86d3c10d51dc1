"""What both SQL stores share (:class:`lumozbatch.shell.sqlite_store.SqliteStore`,
:class:`lumozbatch.shell.pg_store.PgStore`): the fold and the group commit of a
:class:`BatchStore` whose state lives in tables.

* One fold: every record goes through :meth:`LedgerState.check` / :meth:`LedgerState.apply`
  on the few jobs it names (loaded from the database), so the lifecycle table and the
  JSONL replay decide every state; a refused record raises and changes nothing. A lone step
  of a known job (most appends) goes through the same table by ``apply_step``, which
  ``LedgerState.apply`` calls too. The job row keeps the whole :class:`JobRecord` as JSON, so
  new fields need no change here.
* Group commit (:mod:`lumozbatch.shell.group_commit`, as the JSONL ledger's): concurrent
  ``await append(...)`` calls share one transaction, committed in a worker thread; ``append``
  returns once its transaction is committed (durable).
* Memory flat in the batch size: nothing is held but the jobs whose steps are not committed
  yet (shown at once by every read, as the protocol asks) and a few thousand lately
  committed ones; the streaming and aggregate reads are :mod:`lumozbatch.shell.sql_reads`.

An engine gives its statements (``_sql``: :mod:`lumozbatch.shell.sqlite_schema`, or a
:class:`lumozbatch.shell.pg_schema.PgSql`), its error types, how one group is written in one
transaction (:meth:`SqlStore._write_group`) and what closing releases (:meth:`SqlStore._release`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar


from lumozbatch.core.jobstate import JobState
from lumozbatch.core.ledger_codec import STEP_TYPES, JobRecord, LedgerState, apply_step
from lumozbatch.core.records import to_wire
from lumozbatch.shell import sql_rows as rows
from lumozbatch.shell.ledger import Appendable, LedgerWriteError, stamp
from lumozbatch.shell.group_commit import Group, GroupCommit
from lumozbatch.shell.sql_reads import SqlReads

__all__ = ["SqlStore"]

_RECENT = 4096  # committed jobs kept for the fold: several times any concurrency
#: jobs read with one the fold missed, the next in planning order (a run sends in that order,
#: so one query, a round trip to a server, serves the next many appends)
_READ_AHEAD = 128
_READ_BEHIND = 64
_AHEAD_KEPT = 4 * _READ_AHEAD


@dataclass(slots=True)
class _Change:
    """What one append does: rows to commit, and the jobs as they now stand."""

    steps: list[tuple[Any, ...]]
    rows: dict[str, tuple[Any, ...]]
    batch: dict[str, Any] | None  # the batch record, when this append changed it
    jobs: list[tuple[str, int, JobRecord]]
    names: dict[tuple[str, str], int]  # (file, identity) -> when shown under that name
    counts: list[rows.CountMove]  # the jobs it moves in job_counts (stores that keep them so)
    upserts: list[str]  # jobs whose rows may not exist yet or take a new name: not just stepped
    next_seq: int
    next_shown: int


class _Group(Group):
    """Rows committed together; ``done`` once committed (or failed)."""

    __slots__ = ("batch", "begun", "changed", "counts", "gen", "names", "rows", "steps", "upserts")

    def __init__(self, gen: int) -> None:
        super().__init__()
        self.gen = gen
        self.steps: list[tuple[Any, ...]] = []
        self.rows: dict[str, tuple[Any, ...]] = {}  # the latest row of each job wins
        self.batch: tuple[Any, ...] | None = None
        self.names: dict[tuple[str, str], int] = {}
        self.counts: rows.CountChanges = {}
        self.upserts: set[str] = set()
        self.changed: set[tuple[bool, ...]] = set()  # the columns each append changed (rows.changed_columns)
        self.begun = False  # its transaction was started in trio's thread (_begin_write)

    def add(self, change: _Change) -> None:
        self.steps.extend(change.steps)
        self.rows.update(change.rows)
        self.names.update(change.names)
        if change.counts:
            rows.add_count_moves(self.counts, change.counts)
        if change.upserts:
            self.upserts.update(change.upserts)
        self.changed.add(_EVERY_COLUMN)  # a change does not say which stepped columns it changed
        if change.batch is not None:
            self.batch = rows.batch_row(change.batch)

    def stepped(self) -> tuple[str, ...]:
        """The ``rows.STEPPED`` columns some change of this group changed (all of them for a
        group whose rows were set without a change): in every other, each job's row holds
        what it held before the group (groups are written in order, and one that fails fails
        those after it)."""
        if not self.changed or _EVERY_COLUMN in self.changed:
            return rows.STEPPED
        return tuple(column for column, *flags in zip(rows.STEPPED, *self.changed) if any(flags))


#: what a general append changed, as far as ``_Group.stepped`` knows: every stepped column
_EVERY_COLUMN = (True,) * len(rows.STEPPED)


class SqlStore(GroupCommit, SqlReads):
    """An open batch state in tables; an engine's subclass opens it and writes its groups."""

    #: the engine's errors: a commit that raises one of them breaks the store (LedgerWriteError)
    _errors: ClassVar[tuple[type[BaseException], ...]] = ()
    #: what the user can do about a failed write, for its message
    _write_hint: ClassVar[str] = "fix the cause"
    #: the engine's ``job_counts`` follows the count changes of each group (not triggers)
    _folds_counts: ClassVar[bool] = False

    def __init__(self, *, sql: Any, db: Any | None, reader: Any, settle: bool) -> None:
        self.commit_count = 0  # transactions committed by appends (group commit: < appends)
        self._sql = sql
        self._db = db  # the writer's connection; None for a snapshot
        self._reader = reader
        self._settle = settle  # a snapshot of a dead run's batch: submitting reads as ambiguous
        self._closed = False
        row = reader.execute(sql.SELECT_BATCH).fetchone()
        self._batch: dict[str, Any] | None = rows.loads(row[0]) if row else None
        # where the next appends go; a snapshot appends nothing (MAX(shown) reads every name:
        # 0.1 s of a million-job status)
        self._next_seq = self._next_shown = 0
        if db is not None:
            self._next_seq = reader.execute(sql.SELECT_MAX_SEQ).fetchone()[0] + 1
            self._next_shown = reader.execute(sql.SELECT_MAX_SHOWN).fetchone()[0] + 1
        # names shown by appends not committed yet: (file, identity) -> (shown, group gen)
        self._pending_names: dict[tuple[str, str], tuple[int, int]] = {}
        # jobs changed by appends not committed yet: identity -> (seq, job, group gen)
        self._pending: dict[str, tuple[int, JobRecord, int]] = {}
        # jobs committed lately (the ones in flight are read again and again): identity ->
        # (seq, job); only this writer changes the rows, so it never goes stale
        self._recent: OrderedDict[str, tuple[int, JobRecord]] = OrderedDict()
        # committed rows read ahead, not decoded until asked for: identity -> (seq, record);
        # a job leaves it when it is loaded or changed, so it never goes stale either
        self._ahead: dict[str, tuple[int, str]] = {}
        self._gen = 0
        self._init_group_commit()
        self._broken: BaseException | None = None

    @property
    def where(self) -> str:
        """The state's place, for messages."""
        raise NotImplementedError

    def _write_group(self, group: _Group) -> None:
        """``group`` in one transaction, rolled back whole if it fails (raise ``_errors``)."""
        raise NotImplementedError

    def _release(self) -> None:
        """Close the connections and release the lock (once, at :meth:`close`)."""
        raise NotImplementedError

    # -- reading -------------------------------------------------------------------------

    @property
    def batch(self) -> dict[str, Any] | None:
        return self._batch

    def job(self, identity: str) -> JobRecord:
        found = self._load(identity)
        if found is None:
            raise KeyError(identity)
        return found[1]

    def all_jobs(self) -> Iterator[JobRecord]:
        return self.iter_jobs()

    def jobs_in(self, *states: JobState) -> list[JobRecord]:
        return list(self.iter_jobs(states, retired=False))

    # -- appending -----------------------------------------------------------------------

    def append_sync(self, *records: Appendable) -> None:
        """Commit ``records`` now, in the calling thread (setup, tests); not while async
        appends are pending (their order would be lost)."""
        if self._flushing or self._group is not None:
            raise RuntimeError("append_sync() while async appends are pending")
        change = self._prepare(records)
        group = _Group(0)
        group.add(change)
        try:
            self._commit(group)
        except self._errors as exc:
            for identity, _, _ in change.jobs:  # folded, not recorded: read the rows again
                self._recent.pop(identity, None)
            raise self._write_error(exc) from exc
        self._show(change, gen=None)
        self._remember((identity, seq, job) for identity, seq, job in change.jobs)

    async def append(self, *records: Appendable) -> None:
        """Append ``records`` after every earlier append; returns once committed.

        Checked against the job lifecycle first (a refused record raises, nothing queued);
        every read shows them at once. Not cancellable: a caller told "cancelled" could not
        know whether its intent reached the disk.
        """
        group = self._append_step(records[0]) if len(records) == 1 else None
        if group is None:
            change = self._prepare(records)
            group = self._queued_group()
            group.add(change)
            self._show(change, gen=group.gen)
        await self._wait_durable(group)

    def close(self) -> None:
        """Commit anything still queued, then release the database and the lock. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._close_group_commit()
        finally:
            self._release()

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    # -- internals: the fold -------------------------------------------------------------

    def _load(self, identity: str) -> tuple[int, JobRecord] | None:
        hit = self._pending.get(identity)
        if hit is not None:
            return hit[0], hit[1]
        recent = self._recent.get(identity)
        if recent is not None:
            return recent
        ahead = self._ahead.pop(identity, None)
        if ahead is not None:
            return ahead[0], rows.job_from_record(ahead[1])
        row = self._reader.execute(self._sql.SELECT_JOB, (identity,)).fetchone()
        if row is None:
            return None
        found = row[0], self._settled(rows.job_from_record(row[1]))
        if self._db is not None:
            self._read_ahead(row[0])
        return found

    def _read_ahead(self, seq: int) -> None:
        """Keep the rows of the jobs planned after ``seq`` (and of a few before: the tasks a
        run starts at once may ask in any order), undecoded (a run sends in planning
        order: one query, a round trip to a server, serves the next many appends); not those
        pending (their rows are older than they are). A recent job's row is what it holds
        (only this writer changes rows), so it is kept too: it serves once the job leaves
        the recent ones."""
        after = seq - _READ_BEHIND
        ahead = self._reader.execute(self._sql.SELECT_AHEAD, (after, _READ_BEHIND + _READ_AHEAD)).fetchall()
        pending, kept = self._pending, self._ahead
        for s, identity, text in ahead:
            if identity not in pending:
                kept[identity] = (s, text)
        while len(kept) > _AHEAD_KEPT:
            del kept[next(iter(kept))]  # the oldest read

    def _prepare(self, records: tuple[Appendable, ...]) -> _Change:
        """Stamp, check and fold ``records`` into the jobs they name (loaded, or the pending
        ones, which are mutated: what the caller shows at once)."""
        self._check_writable()
        wire = stamp(records, time.time())
        state = LedgerState(batch=self._batch)
        jobs = state.jobs
        seqs: dict[str, int] = {}
        upserts = []  # the jobs these records plan: new ones, and known ones planned again
        for record in wire:
            identity = record.get("id")
            if type(identity) is str:
                if identity not in jobs:
                    found = self._load(identity)
                    if found is not None:
                        seqs[identity], jobs[identity] = found
                if record.get("t") == "job":
                    upserts.append(identity)
        state.check(wire)  # raises before anything is changed or queued
        texts = [rows.dumps(r) for r in wire]  # may refuse (NaN): still nothing changed
        was = {identity: rows.counted(job) for identity, job in jobs.items()} if self._folds_counts else None
        for record in wire:
            state.apply(record)
        next_seq, next_shown = self._next_seq, self._next_shown
        names = {}  # the fold started from no names: what it holds is what these records showed
        for file, shown in state.named.items():
            for identity in shown:
                names[(file, identity)] = next_shown
                next_shown += 1
        # one pass over the jobs (this runs for every step, in trio's thread)
        job_rows, changed, counts = {}, [], []
        job_row, counted = rows.job_row, rows.counted
        for identity, job in jobs.items():
            seq = seqs.get(identity)
            if seq is None:  # planned by these records, in their order
                seq = seqs[identity] = next_seq
                next_seq += 1
            job_rows[identity] = job_row(seq, job)
            changed.append((identity, seq, job))
            if was is not None:
                now, before = counted(job), was.get(identity)
                if before != now:
                    counts.append((before, now, seq))
        return _Change(
            steps=[rows.step_row(r, text, seqs.get(r.get("id"))) for r, text in zip(wire, texts)],  # type: ignore[arg-type]
            rows=job_rows,
            batch=state.batch if state.batch is not self._batch else None,
            jobs=changed,
            names=names,
            counts=counts,
            upserts=upserts,
            next_seq=next_seq,
            next_shown=next_shown,
        )

    def _check_writable(self) -> None:
        if self._closed:
            raise RuntimeError("the store is closed")
        if self._db is None:
            raise RuntimeError("a snapshot is read-only")
        if self._broken is not None:
            raise LedgerWriteError(
                f"the batch state {self.where} could not be written earlier; stopping",
                details=[self._describe(self._broken)],
            )

    def _queued_group(self) -> _Group:
        """The group the next appends join (started if none is queued)."""
        group = self._group
        if group is None:
            self._gen += 1
            group = self._group = _Group(self._gen)
        return group

    def _append_step(self, record: Appendable) -> _Group | None:
        """:meth:`append` of the common case, one record that steps a known job: folded by
        :func:`apply_step` alone and put straight into the queued group and the pending jobs
        (what :meth:`_prepare`, ``_Group.add`` and :meth:`_show` do for any append, in two
        thirds of the time: this runs for every step, in trio's thread). Returns the group;
        None, with nothing changed, for any other record and for one the general fold must
        refuse."""
        self._check_writable()
        wire = to_wire(record)
        identity = wire.get("id")
        if wire.get("t") not in STEP_TYPES or type(identity) is not str:
            return None
        found = self._load(identity)
        if found is None:
            return None
        seq, job = found
        wire.setdefault("at", round(time.time(), 3))
        text = rows.dumps(wire)  # may refuse (NaN): nothing changed yet
        was = rows.counted(job) if self._folds_counts else None
        before = rows.stepped_values(job)
        named = apply_step(job, wire)  # refuses what the lifecycle forbids, changing nothing
        row = rows.job_row(seq, job)
        group = self._queued_group()
        gen = group.gen
        group.steps.append(rows.step_row(wire, text, seq))
        group.rows[identity] = row
        group.changed.add(rows.changed_columns(before, row))
        if named:
            key, shown = (job.file, identity), self._next_shown
            self._next_shown = shown + 1
            group.names[key] = shown  # type: ignore[index]
            self._pending_names[key] = (shown, gen)  # type: ignore[index]
        if was is not None:
            now = rows.counted(job)
            if now != was:
                rows.add_count_moves(group.counts, ((was, now, seq),))
        self._ahead.pop(identity, None)
        self._pending[identity] = (seq, job, gen)
        return group

    def _show(self, change: _Change, *, gen: int | None) -> None:
        """Make ``change`` what reads see: committed (``gen=None``) or pending in group ``gen``."""
        if change.batch is not None:
            self._batch = change.batch
        self._next_seq, self._next_shown = change.next_seq, change.next_shown
        ahead = self._ahead
        for identity, _, _ in change.jobs:
            ahead.pop(identity, None)
        if gen is not None:
            for identity, seq, job in change.jobs:
                self._pending[identity] = (seq, job, gen)
            for key, shown in change.names.items():
                self._pending_names[key] = (shown, gen)

    def _remember(self, jobs: Iterable[tuple[str, int, JobRecord]]) -> None:
        recent = self._recent
        for identity, seq, job in jobs:
            recent[identity] = (seq, job)
            recent.move_to_end(identity)
        while len(recent) > _RECENT:
            recent.popitem(last=False)

    def _settle_left_submitting(self) -> None:
        """A job left SUBMITTING by a run that died lost its answer: AMBIGUOUS, in its row."""
        left = self._reader.execute(self._sql.SELECT_SUBMITTING).fetchall()
        if not left:
            return
        state = LedgerState(jobs={})
        seqs, was = {}, {}
        for seq, text in left:
            job = rows.job_from_record(text)
            state.jobs[job.identity], seqs[job.identity] = job, seq
            was[job.identity] = rows.counted(job)
        state.finish_replay()
        group = _Group(0)
        group.rows = {i: rows.job_row(seqs[i], j) for i, j in state.jobs.items()}
        if self._folds_counts:
            rows.add_count_moves(group.counts, ((was[i], rows.counted(j), seqs[i]) for i, j in state.jobs.items()))
        try:
            self._commit(group)
        except self._errors as exc:
            raise self._write_error(exc) from exc

    # -- internals: committing -----------------------------------------------------------

    def _commit(self, group: _Group) -> None:
        """``group`` in one transaction (any thread; one at a time); on failure refuse every
        later append."""
        try:
            self._write_group(group)
        except self._errors as exc:
            self._broken = exc
            raise
        self.commit_count += 1

    def _write_error(self, exc: BaseException) -> LedgerWriteError:
        return LedgerWriteError(
            f"could not write the batch state {self.where}: {self._describe(exc)}",
            details=[f"the run stops so that nothing is sent without a record; {self._write_hint}, "
                     "then `lumozbatch resume`"],
        )

    def _describe(self, exc: BaseException) -> str:
        """``exc`` as a message may show it (a server's store strips its password)."""
        return str(exc)

    # -- group commit (GroupCommit's hooks) ------------------------------------------------

    def _take_group(self) -> _Group:
        group, self._group = self._group, None
        assert group is not None
        return group

    def _write_taken(self, group: _Group) -> None:
        self._commit(group)

    def _after_write(self, group: _Group) -> None:
        """The group's jobs and names are committed: no longer pending (unless a later group
        changed them again), kept as recent."""
        pending, gen = self._pending, group.gen
        done = []
        for identity in group.rows:
            hit = pending.get(identity)
            if hit is not None and hit[2] == gen:
                del pending[identity]
                done.append((identity, hit[0], hit[1]))
        self._remember(done)
        names = self._pending_names
        for key in group.names:
            hit = names.get(key)
            if hit is not None and hit[1] == gen:
                del names[key]
