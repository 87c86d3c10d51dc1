"""Which store holds a batch, and a lock-free read of it (status, plan, gallery).

``.lumozbatch/state.db`` is the store (:mod:`lumozbatch.shell.sqlite_store`). A folder with
only the older ``ledger.jsonl`` is read as it is, without the lock; only a locked open
(``apply``, ``resume``) imports it. A ledger with no ``batch`` record (an empty file: a run
that died before writing anything) is no ledger.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lumozbatch.errors import LedgerNotFound
from lumozbatch.shell.ledger import ledger_path, read_state
from lumozbatch.shell.sqlite_store import SqliteStore, state_path
from lumozbatch.shell.state_reads import StateSnapshot

__all__ = ["has_batch_files", "no_ledger", "open_reads"]


def has_batch_files(out_dir: Path) -> bool:
    """Whether ``out_dir`` holds a batch's state (``state.db`` or an older ``ledger.jsonl``)."""
    return state_path(out_dir).is_file() or ledger_path(Path(out_dir)).is_file()


def no_ledger(out_dir: Path) -> LedgerNotFound:
    return LedgerNotFound(
        f"no ledger in {out_dir}: nothing has been run there yet",
        details=["run `lumozbatch apply MANIFEST` first (or point at the right folder)"],
    )


def open_reads(out_dir: Path, *, live: bool | None = None) -> Any:
    """A read-only view of the batch in ``out_dir`` with the store's reads; close it (or use
    ``with``). ``LedgerNotFound`` (exit 2) when there is none, or it has no batch record.

    ``live``: as :meth:`SqliteStore.open_snapshot` (None: a run holds the lock)."""
    out_dir = Path(out_dir)
    reads: Any
    if state_path(out_dir).is_file():
        reads = SqliteStore.open_snapshot(out_dir, live=live)
    else:
        reads = StateSnapshot(read_state(out_dir, live=live))
    if reads.batch is None:
        reads.close()
        raise no_ledger(out_dir)
    return reads
