"""The batch state in PostgreSQL (``--state postgresql://...``): a :class:`BatchStore` that a
team's runners on several machines share.

* One run per batch: a session advisory lock keyed by the batch's id, taken on the writer's
  connection and held for the store's life. The server drops it when that session ends (exit,
  kill -9, lost network), so the next runner, from any machine, goes on; a second opener
  meanwhile gets ``LockHeld`` naming the holder's host, pid and since when (a row the holder
  writes when it locks).
* Durable and in order: every group of appends is one transaction on that same connection
  (so nothing is written without the lock); ``append`` returns once the server committed it
  (``synchronous_commit`` as the server has it: on, by default, is flushed to its WAL). The
  fold, the group commit and the reads are :mod:`lumozbatch.shell.sql_store`'s, shared with
  SQLite; the statements are :class:`lumozbatch.shell.pg_schema.PgSql`'s.
* Blocking calls: psycopg's, in trio worker threads (the commits, as SQLite's are); reads
  run in the caller's thread on a second connection, as SQLite's do.
* Readers never block the run: :meth:`PgStore.open_snapshot` takes no lock and reads one
  REPEATABLE READ, READ ONLY transaction until it is closed.
* The URL's password appears in no message: :attr:`PgStore.where` is the URL without it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import psycopg

from lumozbatch.errors import LedgerNotFound, LockHeld, UsageError
from lumozbatch.shell import pg_schema as ddl
from lumozbatch.shell import sql_rows as rows
from lumozbatch.shell.ledger import LedgerWriteError
from lumozbatch.shell.sql_store import SqlStore, _Group
from lumozbatch.shell.state_choice import without_password as public_url

__all__ = ["PgStore", "describe_holder", "holder", "list_batches"]

_CONNECT_TIMEOUT_S = 10


def _scrub(text: str, url: str) -> str:
    """``text`` with the URL's password blotted out (a server's message might quote it)."""
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text


@contextlib.contextmanager
def _translated(url: str, doing: str) -> Iterator[None]:
    """psycopg's errors while ``doing`` as one line naming the server (no password)."""
    try:
        yield
    except psycopg.Error as exc:
        raise UsageError(
            f"cannot {doing} the batch state at {public_url(url)}: {_scrub(_first_line(exc), url)}"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _connect(url: str, **options: Any) -> psycopg.Connection[Any]:
    return psycopg.connect(url, connect_timeout=_CONNECT_TIMEOUT_S, **options)


def _migrate(conn: psycopg.Connection[Any], url: str) -> None:
    """Create or bring forward the schema, once, whoever else does it at the same time."""
    with conn.transaction():
        conn.execute(ddl.TAKE_MIGRATE_LOCK)
        conn.execute(ddl.CREATE_SCHEMA)
        conn.execute(ddl.CREATE_VERSION)
        version = conn.execute(ddl.SELECT_VERSION).fetchone()[0] or 0
        if version > ddl.SCHEMA_VERSION:
            raise UsageError(f"{public_url(url)} has schema version {version}: written by a newer lumozbatch")
        for step in range(version + 1, ddl.SCHEMA_VERSION + 1):
            for statement in ddl.MIGRATIONS[step]:
                conn.execute(statement)
        if version < ddl.SCHEMA_VERSION:  # one row: the version the schema is at
            conn.execute(ddl.CLEAR_VERSION)
            conn.execute(ddl.SET_VERSION, (ddl.SCHEMA_VERSION,))


def _schema_version(conn: psycopg.Connection[Any], url: str) -> int:
    """The schema's version (0: none yet); a reader reads an older one as it is."""
    if not conn.execute(ddl.HAS_VERSION).fetchone()[0]:
        return 0
    version = conn.execute(ddl.SELECT_VERSION).fetchone()[0] or 0
    if version > ddl.SCHEMA_VERSION:
        raise UsageError(f"{public_url(url)} has schema version {version}: written by a newer lumozbatch")
    return int(version)


def _batch_id(conn: psycopg.Connection[Any], name: str, api: str, *, create: bool) -> int | None:
    row = conn.execute(ddl.SELECT_BATCH_ID, (name, api)).fetchone()
    if row is None and create:
        row = conn.execute(ddl.INSERT_BATCH_ID, (name, api)).fetchone()
        if row is None:  # another runner created it between the two statements
            row = conn.execute(ddl.SELECT_BATCH_ID, (name, api)).fetchone()
    return None if row is None else int(row[0])


def _not_found(url: str, name: str, api: str) -> LedgerNotFound:
    return LedgerNotFound(
        f"no batch {name!r} (api {api}) in {public_url(url)}: nothing has been run there yet",
        details=["run `lumozbatch apply MANIFEST --state URL` first (or point at the right database)"],
    )


def _live_holder(conn: psycopg.Connection[Any], batch_id: int) -> dict[str, Any] | None:
    row = conn.execute(ddl.SELECT_LIVE_HOLDER, (batch_id,)).fetchone()
    return None if row is None else {"host": row[0], "pid": row[1], "since": row[2]}


def describe_holder(who: dict[str, Any] | None) -> str | None:
    """``host H, pid P, since T`` of a lock's holder (``holder``), or None when unknown."""
    if who is None or who["host"] is None:
        return None
    since = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(who["since"]))
    return f"host {who['host']}, pid {who['pid']}, since {since}"


def _lock_held(url: str, name: str, who: dict[str, Any] | None) -> LockHeld:
    described = describe_holder(who)
    by = "another lumozbatch run" + (f" ({described})" if described else "")
    return LockHeld(
        f"{by} is working on the batch {name!r} in {public_url(url)}",
        details=["wait for it to finish or stop it; its lock goes away the moment its connection ends"],
    )


class _Reader:
    """The reads' connection: a server lost mid-run stops the run as a failed write does
    (``LedgerWriteError``, one line, no password), not with psycopg's traceback."""

    def __init__(self, conn: psycopg.Connection[Any], url: str) -> None:
        self._conn = conn
        self._url = url

    def execute(self, query: str, params: Any = None) -> psycopg.Cursor[Any]:
        try:
            return self._conn.execute(query, params)  # the rows come whole: no later network read
        except psycopg.Error as exc:
            raise LedgerWriteError(
                f"could not read the batch state {public_url(self._url)}: {_scrub(_first_line(exc), self._url)}",
                details=["the run stops so that nothing is sent without a record; check the database "
                         "server and the network, then `lumozbatch resume`"],
            ) from None

    def close(self) -> None:
        self._conn.close()


class PgStore(SqlStore):
    """An open batch state in PostgreSQL. :meth:`open` (locked, writable) or
    :meth:`open_snapshot` (no lock, read-only); :meth:`close` (or ``with``) releases it."""

    _errors = (psycopg.Error,)
    _write_hint = "check the database server and the network"

    def __init__(
        self, url: str, *, batch_id: int, db: psycopg.Connection[Any] | None,
        reader: psycopg.Connection[Any], settle: bool, version: int = ddl.SCHEMA_VERSION,
    ) -> None:
        self.url = url
        self.batch_id = batch_id
        sql = ddl.PgSql(batch_id, version=version)
        super().__init__(sql=sql, db=db, reader=_Reader(reader, url), settle=settle)

    @classmethod
    def open(cls, url: str, *, name: str, api: str, create: bool) -> PgStore:
        """Connect, create or migrate the schema, lock the batch (name, api) and settle what a
        dead run left (SUBMITTING becomes AMBIGUOUS).

        ``create=False`` and no such batch: :class:`LedgerNotFound`. A live runner holds the
        lock: :class:`LockHeld`, naming it. The server cannot be used: :class:`UsageError`.
        """
        db = reader = None
        try:
            with _translated(url, "open"):
                db = _connect(url, autocommit=True)
                _migrate(db, url)
                batch_id = _batch_id(db, name, api, create=create)
                if batch_id is None:
                    raise _not_found(url, name, api)
                if not db.execute(ddl.TRY_LOCK, (batch_id,)).fetchone()[0]:
                    raise _lock_held(url, name, _live_holder(db, batch_id))
                db.execute(ddl.SET_HOLDER, (socket.gethostname(), os.getpid(), time.time(), batch_id))
                reader = _connect(url, autocommit=True)
                store = cls(url, batch_id=batch_id, db=db, reader=reader, settle=False)
                store._settle_left_submitting()
                return store
        except BaseException:
            for conn in (reader, db):
                if conn is not None:
                    conn.close()  # the lock, if taken, goes with the session
            raise

    @classmethod
    def open_snapshot(cls, url: str, *, name: str, api: str, live: bool | None = None) -> PgStore:
        """A read-only, lock-free view of one consistent moment (status, plan, gallery).

        While a run is live (``live=None``: whether some session holds the batch's lock), a
        job whose ``run`` is on the wire stays SUBMITTING; otherwise it reads AMBIGUOUS.
        """
        reader = None
        try:
            with _translated(url, "read"):
                reader = _connect(url, autocommit=False)
                reader.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                reader.read_only = True  # the transaction the first read begins is held to close
                version = _schema_version(reader, url)
                batch_id = _batch_id(reader, name, api, create=False) if version else None
                if batch_id is None:
                    raise _not_found(url, name, api)
                if live is None:
                    live = _live_holder(reader, batch_id) is not None
                return cls(url, batch_id=batch_id, db=None, reader=reader, settle=not live, version=version)
        except BaseException:
            if reader is not None:
                reader.close()
            raise

    @property
    def where(self) -> str:
        return public_url(self.url)

    def _describe(self, exc: BaseException) -> str:
        return _scrub(str(exc), self.url)

    def _write_group(self, group: _Group) -> None:
        db = self._db
        assert db is not None
        # one pipeline: the whole transaction is one round trip to the server (each wait for
        # an answer is a wait for the GIL too, which the event loop's thread holds meanwhile)
        with db.pipeline(), db.transaction(), db.cursor() as cur:
            for statement, params in self._group_statements(group):
                cur.execute(statement, params)

    def _group_statements(self, group: _Group) -> list[tuple[str, tuple[Any, ...]]]:
        """What writes ``group``: one statement per table, its rows one JSON parameter (the
        server unpacks them; ``executemany`` would make psycopg adapt every row in Python,
        holding the GIL that the event loop's thread needs)."""
        sql = self._sql
        out: list[tuple[str, tuple[Any, ...]]] = []
        if group.batch is not None:
            out.append((sql.UPSERT_BATCH, sql.batch_params(group.batch)))
        if group.steps:
            out.append((sql.INSERT_STEPS_JSON, (rows.dumps_checked(group.steps),)))
        if group.rows:
            out.append((sql.UPSERT_JOBS_JSON, (rows.dumps_checked(list(group.rows.values())),)))
        if group.names:
            names = [(f, i, shown) for (f, i), shown in group.names.items()]
            out.append((sql.UPSERT_NAMES_JSON, (rows.dumps_checked(names),)))
        return out

    def _release(self) -> None:
        self._reader.close()
        if self._db is not None:
            with contextlib.suppress(psycopg.Error):  # a lost session has released the lock
                self._db.execute(ddl.UNLOCK, (self.batch_id,))
            self._db.close()


def list_batches(url: str) -> list[tuple[str, str]]:
    """(name, api) of every batch the database at ``url`` holds (for errors and ``resume``)."""
    with _translated(url, "read"), _connect(url, autocommit=True) as conn:
        if not _schema_version(conn, url):
            return []
        return [(name, api) for name, api in conn.execute(ddl.LIST_BATCHES)]


def holder(url: str, *, name: str, api: str) -> dict[str, Any] | None:
    """``{host, pid, since}`` of the runner that holds the batch's lock now, or None."""
    with _translated(url, "read"), _connect(url, autocommit=True) as conn:
        if not _schema_version(conn, url):
            return None
        batch_id = _batch_id(conn, name, api, create=False)
        return None if batch_id is None else _live_holder(conn, batch_id)
