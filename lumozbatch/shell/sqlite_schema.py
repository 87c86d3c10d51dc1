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
``meta``: ``key`` / ``value`` pairs (``imported``: the ``ledger.jsonl`` this database was
    imported from, with its size and sha256).

A job left ``submitting`` by a run that died is read as ``ambiguous`` (settled in its row
when the next run opens the batch, as the JSONL replay settles it at its end; no step is
written for it).
"""

from __future__ import annotations

from typing import Any

from lumozbatch.shell.sql_rows import JOB_COLUMNS, page_filters
from lumozbatch.shell.sql_rows import job_row as job_row  # bench/scale_bench.py writes rows with it

SCHEMA_VERSION = 1

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
SELECT_HOLDERS = "SELECT identity, shown FROM names WHERE file = ? ORDER BY shown"
SELECT_NAMES = "SELECT file, identity FROM names ORDER BY file, shown"
SELECT_MAX_SHOWN = "SELECT COALESCE(MAX(shown), 0) FROM names"
SELECT_BATCH = "SELECT record FROM batch"
SELECT_MAX_SEQ = "SELECT COALESCE(MAX(seq), 0) FROM jobs"
SELECT_JOB = "SELECT seq, record FROM jobs WHERE identity = ?"
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


def select_counts(*, exclude: bool) -> str:
    """(state, retired, n), read from the state index alone."""
    where = f" WHERE {_NOT_IN}" if exclude else ""
    return f"SELECT state, retired, COUNT(*) FROM jobs{where} GROUP BY state, retired"


def select_counts_by(column: str, *, exclude: bool) -> str:
    """(column, state, n) over active jobs, in planning order of each column value's first
    job; ``column`` is ``job`` or ``model`` (each has a covering index)."""
    where = f" AND {_NOT_IN}" if exclude else ""
    return (
        f"SELECT {column}, state, COUNT(*) FROM jobs WHERE retired = 0{where} "
        f"GROUP BY {column}, state ORDER BY MIN(seq)"
    )


def select_spent(*, exclude: bool, spent_states: tuple[str, ...]) -> tuple[str, list[Any]]:
    """The generation cap's count (:func:`lumozbatch.core.jobcategory.spent_generations`) as
    SQL, each term answered by an index; params: ``[*these, (excluded,)]`` (it repeats them)."""
    marks = ", ".join("?" * len(spent_states))
    also = f" AND {_NOT_IN}" if exclude else ""
    sql = (
        f"SELECT (SELECT COUNT(*) FROM jobs WHERE state IN ({marks}){also})"
        f" + (SELECT COUNT(*) FROM jobs WHERE state = 'failed' AND billed = 1{also})"
        f" + (SELECT COALESCE(SUM(paid_before), 0) FROM jobs WHERE paid_before > 0{also})"
    )
    return sql, list(spent_states)


def select_spend(*, exclude: bool) -> tuple[str, str, str]:
    """:func:`select_spent`'s three terms per model, retired jobs included: (model, state, n)
    from the model index alone, then (model, n) of billed failures and (model, sum) of
    ``paid_before``; params: ``[(excluded,)]``."""
    where, also = (f" WHERE {_NOT_IN}", f" AND {_NOT_IN}") if exclude else ("", "")
    return (
        f"SELECT model, state, COUNT(*) FROM jobs{where} GROUP BY model, state",
        f"SELECT model, COUNT(*) FROM jobs WHERE state = 'failed' AND billed = 1{also} GROUP BY model",
        # "+model": group after the partial paid_before index, not by walking the model index
        # over every row (2.5 s at a million jobs, 0 ms this way)
        f"SELECT model, SUM(paid_before) FROM jobs WHERE paid_before > 0{also} GROUP BY +model",
    )


def select_latest_holders(n: int) -> str:
    """(file, identity) of the last job shown under each of ``n`` names (``names_by_file``)."""
    marks = ", ".join("?" * n)
    return (
        "SELECT file, identity FROM names AS a WHERE file IN (" + marks + ")"
        " AND shown = (SELECT MAX(shown) FROM names AS b WHERE b.file = a.file)"
    )


def select_relinked(n: int, *, exclude: bool) -> str:
    """Active jobs in one of ``n`` states whose current request a webhook named (a scan of
    those jobs' records); params: ``[*states, (excluded,)]``."""
    also = f" AND {_NOT_IN}" if exclude else ""
    marks = ", ".join("?" * n)
    return (
        f"SELECT COUNT(*) FROM jobs WHERE retired = 0 AND state IN ({marks})"
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


SELECT_STEPS_PAGE = "SELECT seq, record FROM steps WHERE seq > ? ORDER BY seq LIMIT ?"
SELECT_STEPS_OF = "SELECT seq, record FROM steps WHERE job_seq = ? AND seq > ? ORDER BY seq LIMIT ?"
