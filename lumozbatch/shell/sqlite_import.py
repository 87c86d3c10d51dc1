"""A batch written by an older lumozbatch (``ledger.jsonl``) becomes a ``state.db``, once.

The import runs inside the transaction that creates the schema (see
:func:`lumozbatch.shell.sqlite_store.SqliteStore.open`): a crash mid-import leaves an empty
database and the old file authoritative, and the next open imports again. Once committed,
the database records which file it came from (size and sha256, in ``meta``), then the old
file is renamed ``ledger.jsonl.imported`` and kept. A crash between the two finds the marker
at the next open and only renames.

Every record is replayed through :func:`lumozbatch.core.ledger_codec.replay` (the same fold
as the JSONL ledger: every state, request_id, pinned seed, ambiguity and failure) and kept as
a step; a torn last line is dropped, as the JSONL ledger drops it. Jobs left SUBMITTING stay
so (the store settles them to AMBIGUOUS when a run opens it, as replay would).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from lumozbatch.core.ledger_codec import RecordReader, replay
from lumozbatch.errors import UsageError
from lumozbatch.shell import sql_rows as rows
from lumozbatch.shell import sqlite_schema as sql
from lumozbatch.shell.ledger import gc_paused

__all__ = ["IMPORTED_SUFFIX", "finish_import", "import_ledger"]

IMPORTED_SUFFIX = ".imported"
_STEP_CHUNK = 10_000


class _TeeReader(RecordReader):
    """A :class:`RecordReader` that hands every record it yields to ``sink`` too (so replay
    keeps its line numbers in error messages)."""

    def __init__(self, data: bytes, *, file: str, sink: Callable[[dict[str, Any]], None]) -> None:
        super().__init__(data, file=file)
        self.sink = sink

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for record in super().__iter__():
            self.sink(record)
            yield record


def _marker(data: bytes) -> str:
    return rows.dumps({"file": "ledger.jsonl", "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})


def import_ledger(db: sqlite3.Connection, path: Path) -> int:
    """Import the JSONL ledger at ``path`` into ``db`` (inside the caller's transaction, on an
    empty schema); returns the number of jobs. A damaged ledger raises ``LedgerCorrupt``."""
    data = path.read_bytes()
    steps: list[tuple[Any, ...]] = []
    seqs: dict[str, int] = {}  # as replay orders the jobs: by their first ``job`` record

    def keep(record: dict[str, Any]) -> None:
        identity = record.get("id")
        if record.get("t") == "job" and isinstance(identity, str):
            seqs.setdefault(identity, len(seqs) + 1)
        steps.append(rows.step_row(record, rows.dumps_checked(record), seqs.get(identity)))  # type: ignore[arg-type]
        if len(steps) >= _STEP_CHUNK:
            db.executemany(sql.INSERT_STEP, steps)
            steps.clear()

    with gc_paused():  # half a million records that all survive: nothing for the GC to free
        state = replay(_TeeReader(data, file=str(path), sink=keep), file=str(path), settle=False)
    db.executemany(sql.INSERT_STEP, steps)
    if state.batch is not None:
        db.execute(sql.UPSERT_BATCH, rows.batch_row(state.batch))
    db.executemany(sql.UPSERT_NAME, (
        (file, identity, shown) for file, identities in state.named.items()
        for shown, identity in enumerate(identities, 1)
    ))
    db.executemany(sql.UPSERT_JOB, (rows.job_row(seq, job) for seq, job in enumerate(state.jobs.values(), 1)))
    for statement in sql.RECOUNT:
        db.execute(statement)
    db.execute(sql.UPSERT_META, ("imported", _marker(data)))
    return len(state.jobs)


def finish_import(db: sqlite3.Connection, path: Path, fsync_dir: Callable[[Path], None]) -> Path | None:
    """Rename the imported ``ledger.jsonl`` aside (if it is still there); returns its new path.

    A ``ledger.jsonl`` that this database was not imported from (another batch's, or written
    by an older lumozbatch after the import) is refused: neither may silently win.
    """
    if not path.is_file():
        return None
    row = db.execute(sql.SELECT_META, ("imported",)).fetchone()
    if row is None or row[0] != _marker(path.read_bytes()):
        raise UsageError(
            f"{path.parent} holds both a state.db and a ledger.jsonl it was not imported from",
            details=[
                "an older lumozbatch wrote to this batch after it moved to state.db, or the files "
                "come from two batches; move one of them aside (nothing was changed)",
            ],
        )
    target = path.with_name(path.name + IMPORTED_SUFFIX)
    n = 1
    while target.exists():  # an earlier import's file is kept too
        n += 1
        target = path.with_name(f"{path.name}{IMPORTED_SUFFIX}.{n}")
    os.rename(path, target)
    fsync_dir(path.parent)
    return target
