"""The switch interval is short while a store that commits in a worker thread is open."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lumozbatch.core.records import Intent
from lumozbatch.shell import switch_interval
from lumozbatch.shell.sqlite_store import SqliteStore
from tests.shell.test_sqlite_store import BATCH, job


def test_opened_and_closed_in_pairs_give_the_interval_back() -> None:
    before = sys.getswitchinterval()
    switch_interval.writer_opened()
    switch_interval.writer_opened()
    assert sys.getswitchinterval() == pytest.approx(min(before, switch_interval.WRITING_INTERVAL_S))
    switch_interval.writer_closed()
    assert sys.getswitchinterval() == pytest.approx(min(before, switch_interval.WRITING_INTERVAL_S))  # one still open
    switch_interval.writer_closed()
    assert sys.getswitchinterval() == before


async def test_a_store_shortens_it_from_its_first_threaded_write_until_closed(tmp_path: Path) -> None:
    before = sys.getswitchinterval()
    store = SqliteStore.open(tmp_path, create=True)
    store.append_sync(BATCH, job("a"))  # written in this thread: nothing to hand over
    assert sys.getswitchinterval() == before
    await store.append(Intent(id="a", attempt=1))
    assert sys.getswitchinterval() == pytest.approx(min(before, switch_interval.WRITING_INTERVAL_S))
    store.close()
    assert sys.getswitchinterval() == before
