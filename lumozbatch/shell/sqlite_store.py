"""The batch state in SQLite: ``<out>/.lumozbatch/state.db``, a :class:`BatchStore`.

* One run per batch: ``.lumozbatch/lock`` is flocked for the life of a writable store, as
  :class:`lumozbatch.shell.ledger.Ledger` does (a second opener gets ``LockHeld``, exit 4).
* Durable and in order: WAL with ``synchronous=FULL`` (every commit fsyncs the WAL, so an
  acknowledged step survives kill -9 and power loss; an uncommitted one is gone whole).
* The fold, the group commit and the reads are :mod:`lumozbatch.shell.sql_store`'s (shared
  with the PostgreSQL store); this module opens, writes one group and releases.
* Readers never block the run: :meth:`SqliteStore.open_snapshot` takes no lock and reads one
  consistent snapshot while a run writes.
* Migration: a folder with only a ``ledger.jsonl`` is imported on first open
  (:mod:`lumozbatch.shell.sqlite_import`); the schema is :mod:`lumozbatch.shell.sqlite_schema`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from lumozbatch.errors import LedgerNotFound, UsageError
from lumozbatch.shell import sql_rows
from lumozbatch.shell import sqlite_schema as sql
from lumozbatch.shell.durable import fsync_dir
from lumozbatch.shell.ledger import LEDGER_DIR, LEDGER_FILE
from lumozbatch.shell.lockfile import LOCK_FILE, run_in_progress, take_lock
from lumozbatch.shell.sqlite_import import finish_import, import_ledger
from lumozbatch.shell.sql_store import SqlStore, _Group

__all__ = ["STATE_FILE", "SqliteStore", "state_path"]

STATE_FILE = "state.db"


def state_path(out_dir: Path) -> Path:
    return Path(out_dir) / LEDGER_DIR / STATE_FILE


class SqliteStore(SqlStore):
    """An open batch state. :meth:`open` (locked, writable) or :meth:`open_snapshot` (no
    lock, read-only); :meth:`close` (or ``with``) releases it."""

    def __init__(
        self, out_dir: Path, *, db: sqlite3.Connection | None, reader: sqlite3.Connection,
        lock_fd: int | None, settle: bool, version: int = sql.SCHEMA_VERSION,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.path = state_path(out_dir)
        self._lock_fd = lock_fd
        # a snapshot of an older database is read as it is (a reader migrates nothing)
        super().__init__(sql=sql.statements(version), db=db, reader=reader, settle=settle)

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
            if not 1 <= version <= sql.SCHEMA_VERSION:
                reader.close()
                raise _version_error(path, version) if version > sql.SCHEMA_VERSION else _not_found(Path(out_dir))
            reader.execute("BEGIN")  # held until close: every read sees the same moment
            return cls(out_dir, db=None, reader=reader, lock_fd=None, settle=not live, version=version)
        except sqlite3.Error as exc:
            raise UsageError(f"cannot read the batch state {path}: {exc}") from None

    # -- the engine --------------------------------------------------------------------

    _errors = (sqlite3.Error,)
    _write_hint = "free the disk"
    _folds_counts = True

    @property
    def where(self) -> str:
        return str(self.path)

    def _begin_write(self, group: _Group) -> None:
        assert self._db is not None
        self._db.execute("BEGIN IMMEDIATE")
        group.begun = True

    def _write_group(self, group: _Group) -> None:
        db = self._db
        assert db is not None
        try:
            if not group.begun:
                db.execute("BEGIN IMMEDIATE")
            if group.batch is not None:
                db.execute(sql.UPSERT_BATCH, group.batch)
            _insert_many(db, sql.INSERT_STEP, group.steps)
            upserts = group.upserts
            if upserts:
                _insert_many(db, sql.UPSERT_JOB, [row for i, row in group.rows.items() if i in upserts])
                _update_jobs(db, [row for i, row in group.rows.items() if i not in upserts], group.stepped())
            else:
                _update_jobs(db, list(group.rows.values()), group.stepped())
            _insert_many(db, sql.UPSERT_NAME, [(f, i, shown) for (f, i), shown in group.names.items()])
            _insert_many(db, sql.UPSERT_COUNT, sql_rows.count_rows(group.counts))
            db.execute("COMMIT")
        except sqlite3.Error:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise

    def _release(self) -> None:
        self._reader.close()
        if self._db is not None:
            self._db.close()
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._lock_fd, 0)  # no pid left behind: nobody is running
            os.close(self._lock_fd)
            self._lock_fd = None


def _insert_many(db: sqlite3.Connection, statement: str, rows: list[tuple[Any, ...]]) -> None:
    """``rows`` in statements of up to ROWS_AT_ONCE rows each (``sqlite_schema.for_rows``)."""
    for chunk in _chunks(rows):
        db.execute(sql.for_rows(statement, len(chunk)), _flat(chunk))


def _update_jobs(db: sqlite3.Connection, rows: list[tuple[Any, ...]], columns: tuple[str, ...] = sql_rows.STEPPED) -> None:
    """The ``columns`` and records of jobs whose rows exist, from their ``job_row``s, by seq
    (``sqlite_schema.update_jobs``); a chunk that finds fewer rows than it holds is upserted
    whole (it cannot happen: then it costs time, never a job's state)."""
    pick = sql_rows.stepped_picker(columns)
    for chunk in _chunks(rows):
        n = len(chunk)
        if db.execute(sql.update_jobs(n, columns), _flat(map(pick, chunk))).rowcount != n:
            db.execute(sql.for_rows(sql.UPSERT_JOB, n), _flat(chunk))


def _chunks(rows: list[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    """``rows`` ROWS_AT_ONCE at a time."""
    for at in range(0, len(rows), sql.ROWS_AT_ONCE):
        yield rows[at:at + sql.ROWS_AT_ONCE]


def _flat(rows: Iterable[tuple[Any, ...]]) -> list[Any]:
    """The values of ``rows``, one after another (the parameters of a many-row statement)."""
    return list(itertools.chain.from_iterable(rows))


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
    conn = sqlite3.connect(
        str(path), isolation_level=None, check_same_thread=False, timeout=sql.BUSY_TIMEOUT_S,
        cached_statements=sql.CACHED_STATEMENTS,
    )
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
