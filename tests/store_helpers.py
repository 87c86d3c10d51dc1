"""Reading and extending a batch's ``state.db`` from tests, as a user would with sqlite3."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from lumozbatch.core.records import Record
from lumozbatch.shell.sqlite_store import SqliteStore, state_path


def step_records(out: Path) -> list[dict[str, Any]]:
    """Every step the batch recorded, in order: what ``ledger.jsonl`` held line by line."""
    with sqlite3.connect(f"file:{state_path(out)}?mode=ro", uri=True) as db:
        return [json.loads(text) for (text,) in db.execute("SELECT record FROM steps ORDER BY seq")]


def state_dump(out: Path) -> str:
    """The whole database as SQL text: equal before and after means nothing was written."""
    db = sqlite3.connect(f"file:{state_path(out)}?mode=ro", uri=True)
    try:
        return "\n".join(db.iterdump())
    finally:
        db.close()


def append_records(out: Path, *records: Record) -> None:
    """Record ``records`` as a run would (the batch's lock held meanwhile)."""
    with SqliteStore.open(out, create=False) as store:
        store.append_sync(*records)
