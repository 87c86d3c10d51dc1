"""Every SQL statement of the SQLite ledger (``.lumozbatch/state.db``), and its rows.

All the SQL lives here, so that the next engine (PostgreSQL) can swap this module and keep
:mod:`lumozbatch.shell.sqlite_store`'s logic; it is portable where that costs nothing
(``INSERT ... ON CONFLICT``, window functions, no ``AUTOINCREMENT``, no SQLite-only types).

The schema (``PRAGMA user_version`` = :data:`SCHEMA_VERSION`; :data:`MIGRATIONS` brings an
older database forward on open):

``batch``: one row, the batch header.
    ``name``, ``manifest`` (its path), ``api``, ``v`` (record version), ``at`` (unix seconds),
    ``record`` (the ``batch`` record, JSON).
``jobs``: one row per identity ever planned, its current state.
    ``seq`` planning order (primary key), ``identity`` (unique), ``job`` (manifest job id),
    ``job_index``, ``repeat``, ``model``, ``filename``, ``state`` (a ``JobState`` value),
    ``retired`` (0/1: gone from the manifest), ``request_id``, ``file``, ``sha256``,
    ``bytes``, ``object`` (where the output is kept), ``reason``, ``code``, ``billed``
    (0/1/NULL), ``attempts``, ``paid_before``,
    ``record`` (every field of the job, JSON: the columns above are copies for queries).
``steps``: append-only, every record ever appended, in order.
    ``seq`` (primary key), ``at`` (unix seconds), ``t`` (record type), ``job_seq`` (the job's
    ``jobs.seq``; NULL for ``batch``), ``identity``, ``record`` (the record, JSON, exactly as a
    ``ledger.jsonl`` line holds it). One job's history: ``... WHERE job_seq = ?`` (indexed:
    jobs in flight have neighbouring seqs, so a commit touches few index pages; an index on
    the random-looking identity would dirty one page per step).
``names``: which jobs' outputs have been shown under each output name (all kept).
    ``file`` (the name), ``identity``, ``shown`` (when it was last shown there: ascending =
    :meth:`LedgerState.holders`' order).
``job_counts`` (version 2): how many jobs each (``job``, ``model``, ``state``, ``retired``)
    holds, ``n``, with their ``billed_failed`` (failed and billed) and summed ``paid_before``,
    and ``first``, the lowest ``seq`` ever counted there; so that counts, spent and spend read
    a few rows instead of scanning every job (status of a million-job batch). Rows whose ``n``
    fell to 0 stay. Kept by the writer (version 4): each commit adds what its steps changed
    (:data:`UPSERT_COUNT`, in the transaction that changes the jobs); a trigger takes a row
    deleted by hand out (versions 2 and 3 counted with triggers on every change).
``meta``: ``key`` / ``value`` pairs (``imported``: the ``ledger.jsonl`` this database was
    imported from, with its size and sha256).

A job left ``submitting`` by a run that died is read as ``ambiguous`` (settled in its row
when the next run opens the batch, as the JSONL replay settles it at its end; no step is
written for it).
"""

from __future__ import annotations

import functools
import sys
from typing import Any

from lumozbatch.shell.sql_rows import JOB_COLUMNS, STEPPED, page_filters
from lumozbatch.shell.sql_rows import job_row as job_row  # bench/scale_bench.py writes rows with it

SCHEMA_VERSION = 4

_COUNTED = "job, model, state, retired"
_ADD = (
    "INSERT INTO job_counts (job, model, state, retired, n, billed_failed, paid_before, first) "
    "VALUES (NEW.job, NEW.model, NEW.state, NEW.retired, 1, NEW.state = 'failed' AND NEW.billed IS 1, "
    "NEW.paid_before, NEW.seq) ON CONFLICT (job, model, state, retired) DO UPDATE SET n = n + 1, "
    "billed_failed = billed_failed + excluded.billed_failed, paid_before = paid_before + excluded.paid_before, "
    "first = MIN(first, excluded.first);"
)
_SUBTRACT = (
    "UPDATE job_counts SET n = n - 1, billed_failed = billed_failed - (OLD.state = 'failed' AND OLD.billed IS 1), "
    "paid_before = paid_before - OLD.paid_before "
    "WHERE job = OLD.job AND model = OLD.model AND state = OLD.state AND retired = OLD.retired;"
)
_COUNTS_MIGRATION = (
    f"""CREATE TABLE job_counts (
        job TEXT NOT NULL, model TEXT NOT NULL, state TEXT NOT NULL, retired INTEGER NOT NULL,
        n INTEGER NOT NULL, billed_failed INTEGER NOT NULL, paid_before INTEGER NOT NULL,
        first INTEGER NOT NULL,
        PRIMARY KEY ({_COUNTED})) WITHOUT ROWID""",
    f"CREATE TRIGGER jobs_counted_in AFTER INSERT ON jobs BEGIN {_ADD} END",
    f"CREATE TRIGGER jobs_counted_out AFTER DELETE ON jobs BEGIN {_SUBTRACT} END",
    # most steps change no counted column (attempts, request_id, file...): nothing to do
    "CREATE TRIGGER jobs_counted_again AFTER UPDATE ON jobs WHEN OLD.state IS NOT NEW.state"
    " OR OLD.retired IS NOT NEW.retired OR OLD.billed IS NOT NEW.billed OR OLD.paid_before IS NOT NEW.paid_before"
    f" OR OLD.job IS NOT NEW.job OR OLD.model IS NOT NEW.model BEGIN {_SUBTRACT} {_ADD} END",
    f"""INSERT INTO job_counts ({_COUNTED}, n, billed_failed, paid_before, first)
        SELECT {_COUNTED}, COUNT(*), SUM(state = 'failed' AND billed IS 1), SUM(paid_before), MIN(seq)
        FROM jobs GROUP BY {_COUNTED}""",
)
#: ``job_counts`` made again from ``jobs`` (a ledger imported, a benchmark's rows written straight)
RECOUNT = ("DELETE FROM job_counts", _COUNTS_MIGRATION[-1])

#: version -> the statements that bring a database at ``version - 1`` to ``version``
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE batch (
            only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
            name TEXT NOT NULL, manifest TEXT, api TEXT, v INTEGER, at REAL,
            record TEXT NOT NULL)""",
        """CREATE TABLE jobs (
            seq INTEGER PRIMARY KEY,
            identity TEXT NOT NULL UNIQUE,
            job TEXT NOT NULL, job_index INTEGER NOT NULL, repeat INTEGER NOT NULL,
            model TEXT NOT NULL, filename TEXT NOT NULL,
            state TEXT NOT NULL, retired INTEGER NOT NULL,
            request_id INTEGER, file TEXT, sha256 TEXT, bytes INTEGER, object TEXT,
            reason TEXT, code TEXT, billed INTEGER,
            attempts INTEGER NOT NULL, paid_before INTEGER NOT NULL,
            record TEXT NOT NULL)""",
        "CREATE INDEX jobs_by_state ON jobs (state, retired, seq)",
        # counts per manifest job / model read these alone (covering); paid_before > 0 is rare
        "CREATE INDEX jobs_by_job ON jobs (job, state, retired)",
        "CREATE INDEX jobs_by_model ON jobs (model, state, retired)",
        "CREATE INDEX jobs_paid_before ON jobs (paid_before) WHERE paid_before > 0",
        """CREATE TABLE steps (
            seq INTEGER PRIMARY KEY, at REAL, t TEXT NOT NULL, job_seq INTEGER, identity TEXT,
            record TEXT NOT NULL)""",
        "CREATE INDEX steps_by_job ON steps (job_seq, seq)",
        """CREATE TABLE names (
            file TEXT NOT NULL, identity TEXT NOT NULL, shown INTEGER NOT NULL,
            PRIMARY KEY (file, identity))""",
        "CREATE INDEX names_by_file ON names (file, shown)",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ),
    2: _COUNTS_MIGRATION,
    # the jobs a webhook relinked, found without reading every record (the summary asks)
    3: ("CREATE INDEX steps_relinked ON steps (job_seq) WHERE t = 'relinked'",),
    # every step: the writer adds the changes of the counts it folded (UPSERT_COUNT), cheaper
    # than a trigger's two statements per row; deletions (by hand: the store deletes nothing)
    # keep theirs. The indexes a step changed only to serve no query go: a job's state is in
    # jobs_by_state; the gallery asks a manifest job's first jobs in seq order.
    4: (
        "DROP TRIGGER jobs_counted_in",
        "DROP TRIGGER jobs_counted_again",
        "DROP INDEX jobs_by_model",
        "DROP INDEX jobs_by_job",
        "CREATE INDEX jobs_by_job ON jobs (job, retired)",
    ),
}

# -- connection setup ----------------------------------------------------------------------

#: WAL: readers never block the writer. synchronous=FULL: in WAL mode every commit fsyncs
#: the WAL, so a committed step survives power loss (NORMAL would only sync at checkpoints:
#: an intent acknowledged before its ``run`` was sent could vanish). Group commit pays it once
#: per group of concurrent steps.
WRITER_PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = OFF",
)
READER_PRAGMAS = ("PRAGMA query_only = ON",)
BUSY_TIMEOUT_S = 10.0

# -- statements ------------------------------------------------------------------------------

_COLS = ", ".join(c for c, _ in JOB_COLUMNS)
_UPDATES = ", ".join(f"{c} = excluded.{c}" for c, _ in JOB_COLUMNS if c != "identity")

UPSERT_JOB = (
    f"INSERT INTO jobs (seq, {_COLS}, record) VALUES (?, {', '.join('?' * len(JOB_COLUMNS))}, ?) "
    f"ON CONFLICT (identity) DO UPDATE SET {_UPDATES}, record = excluded.record"
)
INSERT_STEP = "INSERT INTO steps (at, t, job_seq, identity, record) VALUES (?, ?, ?, ?, ?)"

UPSERT_BATCH = (
    "INSERT INTO batch (only_row, name, manifest, api, v, at, record) VALUES (1, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (only_row) DO UPDATE SET name = excluded.name, manifest = excluded.manifest, "
    "api = excluded.api, v = excluded.v, record = excluded.record"
)
UPSERT_NAME = (
    "INSERT INTO names (file, identity, shown) VALUES (?, ?, ?) "
    "ON CONFLICT (file, identity) DO UPDATE SET shown = excluded.shown"
)
UPSERT_COUNT = (
    f"INSERT INTO job_counts ({_COUNTED}, n, billed_failed, paid_before, first) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    f"ON CONFLICT ({_COUNTED}) DO UPDATE SET n = n + excluded.n, "
    "billed_failed = billed_failed + excluded.billed_failed, paid_before = paid_before + excluded.paid_before, "
    "first = MIN(first, excluded.first)"
)


#: the most rows one statement writes (its parameters stay far below SQLite's 32,766)
ROWS_AT_ONCE = 64
#: prepared statements a connection keeps: the writer's of every size (a few kinds of job
#: update among them), and the rest
CACHED_STATEMENTS = 8 * ROWS_AT_ONCE + 64


@functools.lru_cache(maxsize=1024)  # sizes times the column sets a run's groups change: bounded
def update_jobs(n: int, columns: tuple[str, ...] = STEPPED) -> str:
    """``n`` jobs' ``columns`` (some of ``STEPPED``) and record, by seq; the values: each job's
    seq, those columns and its record, one flat sequence. Cheaper than an upsert, which tries
    the insert (both unique keys) first and sets every column; and a column left out is one
    SQLite need not write, nor its indexes (``retired`` is in two)."""
    sets = ", ".join(f"{c} = v.column{i}" for i, c in enumerate((*columns, "record"), 2))
    marks = "(" + ", ".join("?" * (len(columns) + 2)) + ")"
    return f"UPDATE jobs SET {sets} FROM (VALUES {', '.join([marks] * n)}) AS v WHERE jobs.seq = v.column1"


@functools.cache
def for_rows(statement: str, n: int) -> str:
    """``statement``, an INSERT of one row (``VALUES (?, ...)``, maybe ``ON CONFLICT ...``),
    for ``n`` rows at once (the keys it upserts must differ), their values in one flat sequence.

    A group commit writes each table with such statements: ``executemany`` takes the GIL back
    after every row, and while trio's thread folds the next steps each take waits for it. (One
    JSON array parameter unpacked by ``json_each``, as the PostgreSQL store sends its rows, cost
    SQLite more than it saved: each ``->>`` parses the element again.)
    """
    head, rest = statement.split(" VALUES ", 1)
    end = rest.index(")") + 1
    return f"{head} VALUES {', '.join([rest[:end]] * n)}{rest[end:]}"


SELECT_HOLDERS = "SELECT identity, shown FROM names WHERE file = ? ORDER BY shown"
SELECT_NAMES = "SELECT file, identity FROM names ORDER BY file, shown"
SELECT_MAX_SHOWN = "SELECT COALESCE(MAX(shown), 0) FROM names"
SELECT_BATCH = "SELECT record FROM batch"
SELECT_MAX_SEQ = "SELECT COALESCE(MAX(seq), 0) FROM jobs"
SELECT_JOB = "SELECT seq, record FROM jobs WHERE identity = ?"
#: the jobs planned after a ``seq`` (the writer's read-ahead), with their identities
SELECT_AHEAD = "SELECT seq, identity, record FROM jobs WHERE seq > ? ORDER BY seq LIMIT ?"
SELECT_SUBMITTING = "SELECT seq, record FROM jobs WHERE state = 'submitting'"
SELECT_META = "SELECT value FROM meta WHERE key = ?"
UPSERT_META = "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"

#: jobs passed over (the writer's not-yet-committed ones), as one JSON array parameter
_NOT_IN = "identity NOT IN (SELECT value FROM json_each(?))"


def select_jobs_page(state: str | None, retired: bool | None, *, exclude: bool) -> tuple[str, list[Any]]:
    """A page of jobs after a ``seq``, in planning order; params: ``[after, *filters,
    (excluded,) limit]``. With ``state`` and ``retired`` both given it walks the
    ``(state, retired, seq)`` index (only matching rows are read); else the table in seq order.
    """
    clauses, params = page_filters(state, retired, mark="?", flag=int)
    if exclude:
        clauses.append(_NOT_IN)
    return f"SELECT seq, record FROM jobs WHERE {' AND '.join(clauses)} ORDER BY seq LIMIT ?", params


def select_jobs_by_identity(count: int) -> str:
    return f"SELECT seq, record FROM jobs WHERE identity IN ({', '.join('?' * count)})"


#: what every count is made of: (job, model, state, retired, n, billed_failed, paid_before,
#: first) rows, to be summed per key (:meth:`SqlReads._count_rows`)
_COUNT_ROWS = f"SELECT {_COUNTED}, n, billed_failed, paid_before, first FROM job_counts WHERE n <> 0"
#: the same rows from ``jobs`` itself (a scan), for a version-1 database read as it is
_COUNT_ROWS_SCAN = (
    f"SELECT {_COUNTED}, COUNT(*), SUM(state = 'failed' AND billed IS 1), SUM(paid_before), MIN(seq) "
    "FROM jobs{where} GROUP BY " + _COUNTED
)


def select_count_rows(*, exclude: bool) -> str:
    """The count rows of the committed jobs, less those of the jobs passed over (each
    subtracted as a row of ``n = -1``); params: ``[(excluded,)]``. One statement: one moment."""
    if not exclude:
        return _COUNT_ROWS
    return (
        f"{_COUNT_ROWS} UNION ALL SELECT {_COUNTED}, -1, -(state = 'failed' AND billed IS 1), -paid_before, NULL "
        "FROM jobs WHERE identity IN (SELECT value FROM json_each(?))"
    )


def select_count_rows_scan(*, exclude: bool) -> str:
    """:func:`select_count_rows` for a database without ``job_counts`` (one scan of jobs)."""
    return _COUNT_ROWS_SCAN.format(where=f" WHERE {_NOT_IN}" if exclude else "")


def select_latest_holders(n: int) -> str:
    """(file, identity) of the last job shown under each of ``n`` names (``names_by_file``)."""
    marks = ", ".join("?" * n)
    return (
        "SELECT file, identity FROM names AS a WHERE file IN (" + marks + ")"
        " AND shown = (SELECT MAX(shown) FROM names AS b WHERE b.file = a.file)"
    )


def select_relinked(n: int, *, exclude: bool) -> str:
    """Active jobs in one of ``n`` states whose current request a webhook named: those with a
    ``relinked`` step (its partial index), their records read; params: ``[*states, (excluded,)]``."""
    return _relinked(n, exclude=exclude, among="seq IN (SELECT job_seq FROM steps WHERE t = 'relinked') AND ")


def select_relinked_scan(n: int, *, exclude: bool) -> str:
    """:func:`select_relinked` for a database older than version 3: every such job's record read
    (four seconds at a million done jobs)."""
    return _relinked(n, exclude=exclude, among="")


def _relinked(n: int, *, exclude: bool, among: str) -> str:
    also = f" AND {_NOT_IN}" if exclude else ""
    marks = ", ".join("?" * n)
    return (
        f"SELECT COUNT(*) FROM jobs WHERE {among}retired = 0 AND state IN ({marks})"
        f" AND json_extract(record, '$.relinked'){also}"
    )


def select_causes(*, exclude: bool) -> str:
    """Active jobs in one state grouped by (code, reason), biggest first, with the first
    ``?`` identities of each in planning order; params: ``[state, (excluded,) examples]``."""
    where = f" AND {_NOT_IN}" if exclude else ""
    return (
        "SELECT code, reason, n, identity, seq FROM ("
        " SELECT code, reason, identity, seq,"
        "  COUNT(*) OVER (PARTITION BY code, reason) AS n,"
        "  ROW_NUMBER() OVER (PARTITION BY code, reason ORDER BY seq) AS rn"
        f" FROM jobs WHERE state = ? AND retired = 0{where}"
        ") AS grouped WHERE rn <= ? ORDER BY n DESC, code, reason, seq"
    )


class _Older:
    """The statements for reading an older database as it is (a reader migrates nothing):
    these, but what a later version's table or index answers read without it (the counts
    from a scan of ``jobs`` below version 2, the relinked jobs by their records below 3)."""

    def __init__(self, version: int) -> None:
        if version < 2:
            self.select_count_rows = select_count_rows_scan
        if version < 3:
            self.select_relinked = select_relinked_scan

    def __getattr__(self, name: str) -> Any:
        return getattr(sys.modules[__name__], name)


def is_sqlite(statements: Any) -> bool:
    """Whether a store's ``_sql`` is this module's, at any version (the ``jobs`` table's
    columns are the same in all of them)."""
    return statements is sys.modules[__name__] or isinstance(statements, _Older)


def statements(version: int) -> Any:
    """The statements a reader of a database at ``version`` (1 to :data:`SCHEMA_VERSION`) uses."""
    return sys.modules[__name__] if version == SCHEMA_VERSION else _Older(version)


SELECT_STEPS_PAGE = "SELECT seq, record FROM steps WHERE seq > ? ORDER BY seq LIMIT ?"
SELECT_STEPS_OF = "SELECT seq, record FROM steps WHERE job_seq = ? AND seq > ? ORDER BY seq LIMIT ?"
