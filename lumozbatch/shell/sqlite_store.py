"""The batch state in SQLite: ``<out>/.lumozbatch/state.db``, a :class:`BatchStore`.

* One run per batch: ``.lumozbatch/lock`` is flocked for the life of a writable store, as
  :class:`lumozbatch.shell.ledger.Ledger` does (a second opener gets ``LockHeld``, exit 4).
* Durable and in order: WAL with ``synchronous=FULL`` (every commit fsyncs the WAL, so an
  acknowledged step survives kill -9 and power loss; an uncommitted one is gone whole).
  Concurrent ``await append(...)`` calls share one transaction, committed in a worker thread
  by whichever appender finds no commit under way (group commit, as the JSONL ledger does).
* One fold: every record goes through :meth:`LedgerState.check` / :meth:`LedgerState.apply`
  on the few jobs it names (loaded from the database), so the lifecycle table and the
  JSONL replay decide every state; a refused record raises and changes nothing. The job row
  keeps the whole :class:`JobRecord` as JSON, so new fields need no change here.
* Memory flat in the batch size: nothing is held but the jobs whose steps are not committed
  yet (shown at once by every read, as the protocol asks) and a few thousand lately
  committed ones; the streaming and aggregate reads are :mod:`lumozbatch.shell.sqlite_reads`.
* Readers never block the run: :meth:`SqliteStore.open_snapshot` takes no lock and reads one
  consistent snapshot while a run writes.
* Migration: a folder with only a ``ledger.jsonl`` is imported on first open
  (:mod:`lumozbatch.shell.sqlite_import`); the schema is :mod:`lumozbatch.shell.sqlite_schema`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from lumozbatch.core.jobstate import JobState
from lumozbatch.core.ledger_codec import JobRecord, LedgerState
from lumozbatch.errors import LedgerNotFound, UsageError
from lumozbatch.shell import sqlite_schema as sql
from lumozbatch.shell.durable import fsync_dir
from lumozbatch.shell.ledger import (
    LEDGER_DIR,
    LEDGER_FILE,
    LOCK_FILE,
    Appendable,
    LedgerWriteError,
    take_lock,
    run_in_progress,
    stamp,
)
from lumozbatch.shell.sqlite_import import finish_import, import_ledger
from lumozbatch.shell.sqlite_reads import SqliteReads

__all__ = ["STATE_FILE", "SqliteStore", "state_path"]

STATE_FILE = "state.db"
_RECENT = 4096  # committed jobs kept for the fold: several times any concurrency
_S = JobState


def state_path(out_dir: Path) -> Path:
    return Path(out_dir) / LEDGER_DIR / STATE_FILE


@dataclass(slots=True)
class _Change:
    """What one append does: rows to commit, and the jobs as they now stand."""

    steps: list[tuple[Any, ...]]
    rows: dict[str, tuple[Any, ...]]
    batch: dict[str, Any] | None  # the batch record, when this append changed it
    jobs: list[tuple[str, int, JobRecord]]
    names: dict[tuple[str, str], int]  # (file, identity) -> when shown under that name
    next_seq: int
    next_shown: int


class _Group:
    """Rows committed together; ``done`` once committed (or failed)."""

    __slots__ = ("batch", "done", "error", "gen", "names", "rows", "steps")

    def __init__(self, gen: int) -> None:
        self.gen = gen
        self.done = False
        self.error: BaseException | None = None
        self.steps: list[tuple[Any, ...]] = []
        self.rows: dict[str, tuple[Any, ...]] = {}  # the latest row of each job wins
        self.batch: tuple[Any, ...] | None = None
        self.names: dict[tuple[str, str], int] = {}

    def add(self, change: _Change) -> None:
        self.steps.extend(change.steps)
        self.rows.update(change.rows)
        self.names.update(change.names)
        if change.batch is not None:
            self.batch = sql.batch_row(change.batch)


class SqliteStore(SqliteReads):
    """An open batch state. :meth:`open` (locked, writable) or :meth:`open_snapshot` (no
    lock, read-only); :meth:`close` (or ``with``) releases it."""

    def __init__(
        self, out_dir: Path, *, db: sqlite3.Connection | None, reader: sqlite3.Connection,
        lock_fd: int | None, settle: bool,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.path = state_path(out_dir)
        self.commit_count = 0  # transactions committed by appends (group commit: < appends)
        self._db = db  # the writer's connection; None for a snapshot
        self._reader = reader
        self._lock_fd = lock_fd
        self._settle = settle  # a snapshot of a dead run's batch: submitting reads as ambiguous
        self._closed = False
        row = reader.execute(sql.SELECT_BATCH).fetchone()
        self._batch: dict[str, Any] | None = sql.loads(row[0]) if row else None
        self._next_seq = reader.execute(sql.SELECT_MAX_SEQ).fetchone()[0] + 1
        self._next_shown = reader.execute(sql.SELECT_MAX_SHOWN).fetchone()[0] + 1
        # names shown by appends not committed yet: (file, identity) -> (shown, group gen)
        self._pending_names: dict[tuple[str, str], tuple[int, int]] = {}
        # jobs changed by appends not committed yet: identity -> (seq, job, group gen)
        self._pending: dict[str, tuple[int, JobRecord, int]] = {}
        # jobs committed lately (the ones in flight are read again and again): identity ->
        # (seq, job); only this writer changes the rows, so it never goes stale
        self._recent: OrderedDict[str, tuple[int, JobRecord]] = OrderedDict()
        self._gen = 0
        self._group: _Group | None = None
        self._flushing = False
        self._flushed: trio.Event | None = None
        self._broken: BaseException | None = None

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def open(cls, out_dir: Path, *, create: bool) -> SqliteStore:
        """Lock the batch in ``out_dir``, migrate or import it, and settle what a dead run left.

        ``create=False`` and neither ``state.db`` nor ``ledger.jsonl``: :class:`LedgerNotFound`.
        Another live run holds the lock: :class:`LockHeld`.
        """
        out_dir = Path(out_dir)
        meta = out_dir / LEDGER_DIR
        path, jsonl = meta / STATE_FILE, meta / LEDGER_FILE
        if not create and not path.is_file() and not jsonl.is_file():
            raise _not_found(out_dir)
        lock_fd = _lock(out_dir, meta)
        db = reader = None
        try:
            existed = path.exists()
            db = _connect(path, sql.WRITER_PRAGMAS)
            _migrate(db, path, jsonl)
            if not existed:
                fsync_dir(meta)  # the new file's entry (SQLite syncs the WAL's itself)
            finish_import(db, jsonl, fsync_dir)
            reader = _connect(path, sql.READER_PRAGMAS)
            store = cls(out_dir, db=db, reader=reader, lock_fd=lock_fd, settle=False)
            store._settle_left_submitting()
            return store
        except BaseException as exc:
            for conn in (reader, db):
                if conn is not None:
                    conn.close()
            os.close(lock_fd)
            if isinstance(exc, (sqlite3.Error, OSError)):
                raise UsageError(f"cannot open the batch state {path}: {exc}") from None
            raise

    @classmethod
    def open_snapshot(cls, out_dir: Path, *, live: bool | None = None) -> SqliteStore:
        """A read-only, lock-free view of one consistent moment (status, plan, gallery).

        While a run is live (``live=None``: detected from the lock file), a job whose ``run``
        is on the wire stays SUBMITTING; otherwise it reads AMBIGUOUS.
        """
        path = state_path(out_dir)
        if not path.is_file():
            raise _not_found(Path(out_dir))
        if live is None:
            live = run_in_progress(out_dir) is not None
        try:
            reader = sqlite3.connect(
                path.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None,
                check_same_thread=False, timeout=sql.BUSY_TIMEOUT_S,
            )
            version = reader.execute("PRAGMA user_version").fetchone()[0]
            if version != sql.SCHEMA_VERSION:
                reader.close()
                raise _version_error(path, version) if version > sql.SCHEMA_VERSION else _not_found(Path(out_dir))
            reader.execute("BEGIN")  # held until close: every read sees the same moment
            return cls(out_dir, db=None, reader=reader, lock_fd=None, settle=not live)
        except sqlite3.Error as exc:
            raise UsageError(f"cannot read the batch state {path}: {exc}") from None

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
        except sqlite3.Error as exc:
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
        change = self._prepare(records)
        if self._group is None:
            self._gen += 1
            self._group = _Group(self._gen)
        group = self._group
        group.add(change)
        self._show(change, gen=group.gen)
        with trio.CancelScope(shield=True):
            await self._wait_durable(group)

    async def flush(self) -> None:
        """Return once everything appended so far is committed."""
        with trio.CancelScope(shield=True):
            if self._group is not None:
                await self._wait_durable(self._group)
            while self._flushing:
                await self._flushed_event().wait()

    async def run_writer(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Companion task for the runner's nursery: appends commit themselves; when the
        nursery is cancelled this commits anything still queued, shielded, and returns."""
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            await self.flush()

    def close(self) -> None:
        """Commit anything still queued, then release the database and the lock. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            group = self._group
            if group is not None and not self._flushing and self._broken is None:
                self._group = None
                try:
                    self._commit(group)
                finally:
                    group.done = True
        finally:
            self._reader.close()
            if self._db is not None:
                self._db.close()
            if self._lock_fd is not None:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._lock_fd, 0)  # no pid left behind: nobody is running
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> SqliteStore:
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
        row = self._reader.execute(sql.SELECT_JOB, (identity,)).fetchone()
        return None if row is None else (row[0], self._settled(sql.job_from_record(row[1])))

    def _prepare(self, records: tuple[Appendable, ...]) -> _Change:
        """Stamp, check and fold ``records`` into the jobs they name (loaded, or the pending
        ones, which are mutated: what the caller shows at once)."""
        if self._closed:
            raise RuntimeError("the store is closed")
        if self._db is None:
            raise RuntimeError("a snapshot is read-only")
        if self._broken is not None:
            raise LedgerWriteError(
                f"the batch state {self.path} could not be written earlier; stopping",
                details=[str(self._broken)],
            )
        wire = stamp(records, time.time())
        state = LedgerState(batch=self._batch)
        seqs: dict[str, int] = {}
        for record in wire:
            identity = record.get("id")
            if isinstance(identity, str) and identity not in state.jobs:
                found = self._load(identity)
                if found is not None:
                    seqs[identity], state.jobs[identity] = found
        state.check(wire)  # raises before anything is changed or queued
        texts = [sql.dumps(r) for r in wire]  # may refuse (NaN): still nothing changed
        for record in wire:
            state.apply(record)
        next_seq, next_shown = self._next_seq, self._next_shown
        jobs = []
        for identity, job in state.jobs.items():
            if identity not in seqs:
                seqs[identity] = next_seq
                next_seq += 1
            jobs.append((identity, seqs[identity], job))
        names = {}  # the fold started from no names: what it holds is what these records showed
        for file, shown in state.named.items():
            for identity in shown:
                names[(file, identity)] = next_shown
                next_shown += 1
        return _Change(
            steps=[sql.step_row(r, text, seqs.get(r.get("id"))) for r, text in zip(wire, texts)],  # type: ignore[arg-type]
            rows={identity: sql.job_row(seq, job) for identity, seq, job in jobs},
            batch=state.batch if state.batch is not self._batch else None,
            jobs=jobs,
            names=names,
            next_seq=next_seq,
            next_shown=next_shown,
        )

    def _show(self, change: _Change, *, gen: int | None) -> None:
        """Make ``change`` what reads see: committed (``gen=None``) or pending in group ``gen``."""
        if change.batch is not None:
            self._batch = change.batch
        self._next_seq, self._next_shown = change.next_seq, change.next_shown
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
        rows = self._reader.execute(sql.SELECT_SUBMITTING).fetchall()
        if not rows:
            return
        state = LedgerState(jobs={})
        seqs = {}
        for seq, text in rows:
            job = sql.job_from_record(text)
            state.jobs[job.identity], seqs[job.identity] = job, seq
        state.finish_replay()
        group = _Group(0)
        group.rows = {i: sql.job_row(seqs[i], j) for i, j in state.jobs.items()}
        try:
            self._commit(group)
        except sqlite3.Error as exc:
            raise self._write_error(exc) from exc

    # -- internals: committing -----------------------------------------------------------

    def _commit(self, group: _Group) -> None:
        """``group`` in one transaction (any thread; one at a time); on failure roll back
        and refuse every later append."""
        db = self._db
        assert db is not None
        try:
            db.execute("BEGIN IMMEDIATE")
            if group.batch is not None:
                db.execute(sql.UPSERT_BATCH, group.batch)
            db.executemany(sql.INSERT_STEP, group.steps)
            db.executemany(sql.UPSERT_JOB, group.rows.values())
            db.executemany(sql.UPSERT_NAME, ((f, i, shown) for (f, i), shown in group.names.items()))
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._broken = exc
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        self.commit_count += 1

    def _write_error(self, exc: BaseException) -> LedgerWriteError:
        return LedgerWriteError(
            f"could not write the batch state {self.path}: {exc}",
            details=["the run stops so that nothing is sent without a record; "
                     "free the disk, then `lumozbatch resume`"],
        )

    def _flushed_event(self) -> trio.Event:
        if self._flushed is None:
            self._flushed = trio.Event()
        return self._flushed

    async def _wait_durable(self, group: _Group) -> None:
        while not group.done:
            if self._flushing:
                await self._flushed_event().wait()
            else:
                await self._flush_once()
        if group.error is not None:
            raise self._write_error(group.error) from group.error

    async def _flush_once(self) -> None:
        self._flushing = True
        try:
            await trio.lowlevel.checkpoint()  # appenders of this same tick join the group
            group, self._group = self._group, None
            assert group is not None
            try:
                await trio.to_thread.run_sync(self._commit, group)
            except sqlite3.Error as exc:
                group.error = exc
            else:
                done = [(k, v[0], v[1]) for k, v in self._pending.items() if v[2] == group.gen]
                for identity, _, _ in done:
                    del self._pending[identity]
                self._remember(done)
                for key in [k for k, v in self._pending_names.items() if v[1] == group.gen]:
                    del self._pending_names[key]
            finally:
                group.done = True
        finally:
            self._flushing = False
            event = self._flushed_event()
            self._flushed = trio.Event()
            event.set()


def _not_found(out_dir: Path) -> LedgerNotFound:
    return LedgerNotFound(
        f"no ledger in {out_dir}: nothing has been run there yet",
        details=["run `lumozbatch apply MANIFEST` first (or point at the right folder)"],
    )


def _version_error(path: Path, version: int) -> UsageError:
    return UsageError(f"{path} has schema version {version}: written by a newer lumozbatch")


def _lock(out_dir: Path, meta: Path) -> int:
    try:
        missing = [f for f in (meta, *meta.parents) if not f.is_dir()]
        meta.mkdir(parents=True, exist_ok=True)
        for folder in reversed(missing):  # each new folder's entry must survive power loss
            fsync_dir(folder.parent)
        return take_lock(meta / LOCK_FILE, out_dir)
    except OSError as exc:
        raise UsageError(f"cannot use {out_dir} as the output folder: {exc.strerror or exc}") from None


def _connect(path: Path, pragmas: tuple[str, ...]) -> sqlite3.Connection:
    # isolation_level=None: we BEGIN and COMMIT ourselves; the writer's connection is used by
    # one thread at a time (the committing one), never concurrently
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=sql.BUSY_TIMEOUT_S)
    for pragma in pragmas:
        conn.execute(pragma)
    return conn


def _migrate(db: sqlite3.Connection, path: Path, jsonl: Path) -> None:
    """Bring the schema to :data:`SCHEMA_VERSION` (importing ``jsonl`` into a new one), in
    one transaction: a crash leaves the database as it was."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > sql.SCHEMA_VERSION:
        raise _version_error(path, version)
    if version == sql.SCHEMA_VERSION:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        for step in range(version + 1, sql.SCHEMA_VERSION + 1):
            for statement in sql.MIGRATIONS[step]:
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {sql.SCHEMA_VERSION}")
        if version == 0 and jsonl.is_file():
            import_ledger(db, jsonl)
        db.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise
