"""Every SQL statement of the PostgreSQL batch state, and its schema.

Many batches share one database, each keyed by (name, api) in ``lumozbatch.batches``; every
other table carries the batch's id. :class:`PgSql` is one batch's statements, with the same
names and parameters as :mod:`lumozbatch.shell.sqlite_schema`'s, so that
:mod:`lumozbatch.shell.sql_store` and :mod:`lumozbatch.shell.sql_reads` run on either engine;
the batch id (an integer this module read from the database) is written into each statement,
so that their parameters stay those of the SQLite statements.

The schema lives in the ``lumozbatch`` schema (no clash with a team's own tables):

``schema_version``: one row, the version (:data:`SCHEMA_VERSION`); :data:`MIGRATIONS` brings
    an older database forward, under a transaction-scoped advisory lock (two first runs at
    once migrate once).
``batches``: ``id``, ``name``, ``api`` (unique together), ``record`` (the ``batch`` record,
    JSON; NULL until appended), ``manifest``, ``at``, and the live holder of its lock:
    ``holder_host``, ``holder_pid``, ``holder_since`` (written when a runner locks it; trusted
    only while the advisory lock is held).
``jobs``, ``steps``, ``names``, ``job_counts`` (version 2, kept by triggers on ``jobs``): as in
    SQLite (see there), each with ``batch_id`` first in its
    keys and indexes (no foreign key: only this module writes them, and a key's check costs
    every step a lookup). ``steps.seq`` comes from one identity shared by every batch: ascending
    within a batch, which is all its order needs.
"""

from __future__ import annotations

from typing import Any

from lumozbatch.shell.sql_rows import JOB_COLUMNS, page_filters

SCHEMA_VERSION = 2
#: ``pg_advisory_lock(LOCK_SPACE, batch id)``: one runner per batch, released by the server
#: when the runner's session ends (exit, kill -9, lost network)
LOCK_SPACE = 0x6C756D6F  # "lumo"
#: ``pg_advisory_xact_lock(LOCK_SPACE, MIGRATE_KEY)`` while the schema is created or migrated
MIGRATE_KEY = 0

_JOB_TYPES = {
    "job_index": "BIGINT NOT NULL", "repeat": "BIGINT NOT NULL", "retired": "BOOLEAN NOT NULL",
    "request_id": "BIGINT", "bytes": "BIGINT", "billed": "BOOLEAN",
    "attempts": "BIGINT NOT NULL", "paid_before": "BIGINT NOT NULL",
    "identity": "TEXT NOT NULL", "job": "TEXT NOT NULL", "model": "TEXT NOT NULL",
    "filename": "TEXT NOT NULL", "state": "TEXT NOT NULL",
}
_JOB_COLUMN_DDL = ", ".join(f"{c} {_JOB_TYPES.get(c, 'TEXT')}" for c, _ in JOB_COLUMNS)

_COUNTED = "batch_id, job, model, state, retired"
_KEY = "batch_id = OLD.batch_id AND job = OLD.job AND model = OLD.model AND state = OLD.state AND retired = OLD.retired"
_COUNTS_MIGRATION = (
    f"""CREATE TABLE lumozbatch.job_counts (
        batch_id BIGINT NOT NULL, job TEXT NOT NULL, model TEXT NOT NULL, state TEXT NOT NULL,
        retired BOOLEAN NOT NULL, n BIGINT NOT NULL, billed_failed BIGINT NOT NULL,
        paid_before BIGINT NOT NULL, first BIGINT NOT NULL, PRIMARY KEY ({_COUNTED}))""",
    f"""CREATE FUNCTION lumozbatch.count_job() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP <> 'INSERT' THEN
            UPDATE lumozbatch.job_counts SET n = n - 1,
                billed_failed = billed_failed - (OLD.state = 'failed' AND OLD.billed IS TRUE)::int,
                paid_before = paid_before - OLD.paid_before
            WHERE {_KEY};
        END IF;
        IF TG_OP <> 'DELETE' THEN
            INSERT INTO lumozbatch.job_counts ({_COUNTED}, n, billed_failed, paid_before, first)
            VALUES (NEW.batch_id, NEW.job, NEW.model, NEW.state, NEW.retired, 1,
                    (NEW.state = 'failed' AND NEW.billed IS TRUE)::int, NEW.paid_before, NEW.seq)
            ON CONFLICT ({_COUNTED}) DO UPDATE SET n = job_counts.n + 1,
                billed_failed = job_counts.billed_failed + excluded.billed_failed,
                paid_before = job_counts.paid_before + excluded.paid_before,
                first = LEAST(job_counts.first, excluded.first);
        END IF;
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER jobs_counted AFTER INSERT OR DELETE ON lumozbatch.jobs"
    " FOR EACH ROW EXECUTE FUNCTION lumozbatch.count_job()",
    # most steps change no counted column (attempts, request_id, file...): nothing to do
    "CREATE TRIGGER jobs_counted_again AFTER UPDATE ON lumozbatch.jobs FOR EACH ROW WHEN ("
    "OLD.state IS DISTINCT FROM NEW.state OR OLD.retired IS DISTINCT FROM NEW.retired"
    " OR OLD.billed IS DISTINCT FROM NEW.billed OR OLD.paid_before IS DISTINCT FROM NEW.paid_before"
    " OR OLD.job IS DISTINCT FROM NEW.job OR OLD.model IS DISTINCT FROM NEW.model)"
    " EXECUTE FUNCTION lumozbatch.count_job()",
    f"""INSERT INTO lumozbatch.job_counts ({_COUNTED}, n, billed_failed, paid_before, first)
        SELECT {_COUNTED}, COUNT(*), COUNT(*) FILTER (WHERE state = 'failed' AND billed), SUM(paid_before), MIN(seq)
        FROM lumozbatch.jobs GROUP BY {_COUNTED}""",
)

MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE lumozbatch.batches (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name TEXT NOT NULL, api TEXT NOT NULL, record TEXT, manifest TEXT, at DOUBLE PRECISION,
            holder_host TEXT, holder_pid BIGINT, holder_since DOUBLE PRECISION,
            UNIQUE (name, api))""",
        f"""CREATE TABLE lumozbatch.jobs (
            batch_id BIGINT NOT NULL, seq BIGINT NOT NULL,
            {_JOB_COLUMN_DDL}, record TEXT NOT NULL,
            PRIMARY KEY (batch_id, seq), UNIQUE (batch_id, identity))""",
        "CREATE INDEX jobs_by_state ON lumozbatch.jobs (batch_id, state, retired, seq)",
        "CREATE INDEX jobs_by_job ON lumozbatch.jobs (batch_id, job, state, retired)",
        "CREATE INDEX jobs_by_model ON lumozbatch.jobs (batch_id, model, state, retired)",
        "CREATE INDEX jobs_paid_before ON lumozbatch.jobs (batch_id, paid_before) WHERE paid_before > 0",
        """CREATE TABLE lumozbatch.steps (
            batch_id BIGINT NOT NULL,
            seq BIGINT GENERATED ALWAYS AS IDENTITY, at DOUBLE PRECISION, t TEXT NOT NULL,
            job_seq BIGINT, identity TEXT, record TEXT NOT NULL, PRIMARY KEY (batch_id, seq))""",
        "CREATE INDEX steps_by_job ON lumozbatch.steps (batch_id, job_seq, seq)",
        """CREATE TABLE lumozbatch.names (
            batch_id BIGINT NOT NULL,
            file TEXT NOT NULL, identity TEXT NOT NULL, shown BIGINT NOT NULL,
            PRIMARY KEY (batch_id, file, identity))""",
        "CREATE INDEX names_by_file ON lumozbatch.names (batch_id, file, shown)",
    ),
    2: _COUNTS_MIGRATION,
}

CREATE_SCHEMA = "CREATE SCHEMA IF NOT EXISTS lumozbatch"
CREATE_VERSION = "CREATE TABLE IF NOT EXISTS lumozbatch.schema_version (version INTEGER NOT NULL)"
SELECT_VERSION = "SELECT MAX(version) FROM lumozbatch.schema_version"
CLEAR_VERSION = "DELETE FROM lumozbatch.schema_version"
SET_VERSION = "INSERT INTO lumozbatch.schema_version (version) VALUES (%s)"
HAS_VERSION = "SELECT to_regclass('lumozbatch.schema_version') IS NOT NULL"
TAKE_MIGRATE_LOCK = f"SELECT pg_advisory_xact_lock({LOCK_SPACE}, {MIGRATE_KEY})"

SELECT_BATCH_ID = "SELECT id FROM lumozbatch.batches WHERE name = %s AND api = %s"
INSERT_BATCH_ID = (
    "INSERT INTO lumozbatch.batches (name, api) VALUES (%s, %s) "
    "ON CONFLICT (name, api) DO NOTHING RETURNING id"
)
LIST_BATCHES = "SELECT name, api FROM lumozbatch.batches ORDER BY name, api"
TRY_LOCK = f"SELECT pg_try_advisory_lock({LOCK_SPACE}, %s)"
UNLOCK = f"SELECT pg_advisory_unlock({LOCK_SPACE}, %s)"
SET_HOLDER = "UPDATE lumozbatch.batches SET holder_host = %s, holder_pid = %s, holder_since = %s WHERE id = %s"
#: the holder recorded for a batch whose advisory lock some session holds now (else no row)
SELECT_LIVE_HOLDER = (
    "SELECT b.holder_host, b.holder_pid, b.holder_since FROM lumozbatch.batches AS b "
    "WHERE b.id = %s AND EXISTS (SELECT 1 FROM pg_locks AS l WHERE l.locktype = 'advisory' "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    f"AND l.classid::bigint = {LOCK_SPACE} AND l.objid::bigint = b.id AND l.objsubid = 2 AND l.granted)"
)

#: jobs passed over (the writer's not-yet-committed ones), as one JSON array parameter
_NOT_IN = "identity NOT IN (SELECT jsonb_array_elements_text(%s::jsonb))"


def _from_json(columns: tuple[str, ...]) -> str:
    """The rows of a JSON array of arrays parameter, each value cast to its column's type."""
    cast = {c: t.split()[0] for c, t in _JOB_TYPES.items()} | {
        "seq": "BIGINT", "at": "DOUBLE PRECISION", "job_seq": "BIGINT", "shown": "BIGINT",
    }
    values = ", ".join(f"(x ->> {i})::{cast.get(c, 'TEXT')}" for i, c in enumerate(columns))
    return f"{values} FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS e(x, n) ORDER BY n"


def _marks(n: int) -> str:
    return ", ".join(["%s"] * n)


class PgSql:
    """One batch's statements: :mod:`lumozbatch.shell.sqlite_schema`'s names and parameters."""

    def __init__(self, batch_id: int, *, version: int = SCHEMA_VERSION) -> None:
        b = int(batch_id)  # an integer written into SQL: never text from outside
        self.batch_id = b
        self.version = version  # a snapshot reads an older schema as it is
        updates = ", ".join(f"{c} = excluded.{c}" for c, _ in JOB_COLUMNS if c != "identity")
        cols = ", ".join(c for c, _ in JOB_COLUMNS)
        # a group commit writes each table with one statement: the rows as one JSON array
        # parameter (``PgStore._group_statements``)
        self.UPSERT_JOBS_JSON = (
            f"INSERT INTO lumozbatch.jobs (batch_id, seq, {cols}, record) "
            f"SELECT {b}, {_from_json(('seq', *(c for c, _ in JOB_COLUMNS), 'record'))} "
            f"ON CONFLICT (batch_id, identity) DO UPDATE SET {updates}, record = excluded.record"
        )
        self.INSERT_STEPS_JSON = (
            "INSERT INTO lumozbatch.steps (batch_id, at, t, job_seq, identity, record) "
            f"SELECT {b}, {_from_json(('at', 't', 'job_seq', 'identity', 'record'))}"
        )
        # batch_row's columns: name and api are the batch's key (set when it was created)
        self.UPSERT_BATCH = (
            "UPDATE lumozbatch.batches SET manifest = %s, at = COALESCE(at, %s), record = %s "
            f"WHERE id = {b}"
        )
        self.UPSERT_NAMES_JSON = (
            f"INSERT INTO lumozbatch.names (batch_id, file, identity, shown) "
            f"SELECT {b}, {_from_json(('file', 'identity', 'shown'))} "
            "ON CONFLICT (batch_id, file, identity) DO UPDATE SET shown = excluded.shown"
        )
        self.SELECT_HOLDERS = f"SELECT identity, shown FROM lumozbatch.names WHERE batch_id = {b} AND file = %s ORDER BY shown"
        self.SELECT_NAMES = f"SELECT file, identity FROM lumozbatch.names WHERE batch_id = {b} ORDER BY file, shown"
        self.SELECT_MAX_SHOWN = f"SELECT COALESCE(MAX(shown), 0) FROM lumozbatch.names WHERE batch_id = {b}"
        self.SELECT_BATCH = f"SELECT record FROM lumozbatch.batches WHERE id = {b} AND record IS NOT NULL"
        self.SELECT_MAX_SEQ = f"SELECT COALESCE(MAX(seq), 0) FROM lumozbatch.jobs WHERE batch_id = {b}"
        self.SELECT_JOB = f"SELECT seq, record FROM lumozbatch.jobs WHERE batch_id = {b} AND identity = %s"
        self.SELECT_AHEAD = (
            f"SELECT seq, identity, record FROM lumozbatch.jobs WHERE batch_id = {b} AND seq > %s ORDER BY seq LIMIT %s"
        )
        self.SELECT_SUBMITTING = f"SELECT seq, record FROM lumozbatch.jobs WHERE batch_id = {b} AND state = 'submitting'"
        self.SELECT_STEPS_PAGE = (
            f"SELECT seq, record FROM lumozbatch.steps WHERE batch_id = {b} AND seq > %s ORDER BY seq LIMIT %s"
        )
        self.SELECT_STEPS_OF = (
            f"SELECT seq, record FROM lumozbatch.steps WHERE batch_id = {b} AND job_seq = %s AND seq > %s "
            "ORDER BY seq LIMIT %s"
        )
        self._jobs = f"lumozbatch.jobs WHERE batch_id = {b}"

    @staticmethod
    def batch_params(row: tuple[Any, ...]) -> tuple[Any, ...]:
        """:func:`lumozbatch.shell.sql_rows.batch_row`'s values as :attr:`UPSERT_BATCH` takes them."""
        _name, manifest, _api, _v, at, record = row
        return (manifest, at, record)

    def select_jobs_page(self, state: str | None, retired: bool | None, *, exclude: bool) -> tuple[str, list[Any]]:
        clauses, params = page_filters(state, retired, mark="%s", flag=bool)
        if exclude:
            clauses.append(_NOT_IN)
        return f"SELECT seq, record FROM {self._jobs} AND {' AND '.join(clauses)} ORDER BY seq LIMIT %s", params

    def select_jobs_by_identity(self, count: int) -> str:
        return f"SELECT seq, record FROM {self._jobs} AND identity IN ({_marks(count)})"

    def select_count_rows(self, *, exclude: bool) -> str:
        """(job, model, state, retired, n, billed_failed, paid_before, first) rows, as
        :func:`lumozbatch.shell.sqlite_schema.select_count_rows`: from ``job_counts`` less the
        committed rows of the jobs passed over; a version-1 database, one grouped scan."""
        b = self.batch_id
        if self.version < 2:
            also = f" AND {_NOT_IN}" if exclude else ""
            return (
                "SELECT job, model, state, retired, COUNT(*), COUNT(*) FILTER (WHERE state = 'failed' AND billed),"
                f" SUM(paid_before), MIN(seq) FROM {self._jobs}{also} GROUP BY job, model, state, retired"
            )
        counted = (
            "SELECT job, model, state, retired, n, billed_failed, paid_before, first"
            f" FROM lumozbatch.job_counts WHERE batch_id = {b} AND n <> 0"
        )
        if not exclude:
            return counted
        return (
            f"{counted} UNION ALL SELECT job, model, state, retired, -1,"
            " -((state = 'failed' AND billed IS TRUE)::int), -paid_before, NULL"
            f" FROM {self._jobs} AND identity IN (SELECT jsonb_array_elements_text(%s::jsonb))"
        )

    def select_latest_holders(self, n: int) -> str:
        b = self.batch_id
        return (
            f"SELECT file, identity FROM lumozbatch.names AS a WHERE a.batch_id = {b} AND file IN ({_marks(n)})"
            f" AND shown = (SELECT MAX(shown) FROM lumozbatch.names AS c WHERE c.batch_id = {b} AND c.file = a.file)"
        )

    def select_relinked(self, n: int, *, exclude: bool) -> str:
        also = f" AND {_NOT_IN}" if exclude else ""
        return (
            f"SELECT COUNT(*) FROM {self._jobs} AND NOT retired AND state IN ({_marks(n)})"
            f" AND COALESCE((record::jsonb ->> 'relinked')::boolean, false){also}"
        )

    def select_causes(self, *, exclude: bool) -> str:
        also = f" AND {_NOT_IN}" if exclude else ""
        return (
            "SELECT code, reason, n, identity, seq FROM ("
            " SELECT code, reason, identity, seq,"
            "  COUNT(*) OVER (PARTITION BY code, reason) AS n,"
            "  ROW_NUMBER() OVER (PARTITION BY code, reason ORDER BY seq) AS rn"
            f" FROM {self._jobs} AND state = %s AND NOT retired{also}"
            ") AS grouped WHERE rn <= %s ORDER BY n DESC, code, reason, seq"
        )
