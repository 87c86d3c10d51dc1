"""``done_outputs`` and ``first_jobs``: the column reads a run and the gallery make of every
job say what the full job records say, on SQLite and on the stores that answer from records."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import pytest
import trio

from lumozbatch.core.jobstate import JobState
from lumozbatch.core.records import Retire, Stored
from lumozbatch.shell import done_outputs as done_outputs_module
from lumozbatch.shell.done_outputs import DoneOutput, done_identities, done_outputs
from lumozbatch.shell.first_jobs import first_jobs
from lumozbatch.shell.sqlite_store import SqliteStore
from lumozbatch.shell.store import MemoryStore
from tests.shell.test_sqlite_store import BATCH, done, job


def _batch(store: Any, count: int = 30) -> None:
    """``count`` jobs of three manifest jobs (sheets), planned interleaved; three in four
    done, two retired, one kept in the store and shown under its name."""
    store.append_sync(BATCH, *(dataclasses.replace(job(f"j{n:03d}", n), job=f"sheet{n % 3}") for n in range(count)))
    for n in range(count):
        if n % 4 != 3:
            store.append_sync(*done(f"j{n:03d}", n + 1))
    store.append_sync(Stored(id="j000", object=".lumozbatch/objects/j0/j000.png", file="portraits/j000.png"))
    store.append_sync(Retire(id="j001"), Retire(id="j003"))


def _from_records(store: Any, retired: bool | None) -> list[DoneOutput]:
    if retired is None:  # active ones first, then retired, each in planning order
        return _from_records(store, False) + _from_records(store, True)
    return [DoneOutput.of(j) for j in store.iter_jobs([JobState.DONE], retired=retired)]


def test_done_outputs_are_the_records_outputs(tmp_path: Path) -> None:
    memory = MemoryStore()
    _batch(memory)
    with SqliteStore.open(tmp_path, create=True) as store:
        _batch(store)
        for retired in (False, True, None):
            got = list(done_outputs(store, retired=retired))
            assert got == _from_records(store, retired) == list(done_outputs(memory, retired=retired))
        assert got[0] == DoneOutput("j000", "portraits/j000", "portraits/j000.png",
                                    ".lumozbatch/objects/j0/j000.png", "0" * 64, 10)
        assert [d.identity for d in done_outputs(store, retired=True)] == ["j001"]
        assert len(list(done_outputs(store))) == 22
    with SqliteStore.open_snapshot(tmp_path, live=False) as snap:
        assert list(done_outputs(snap, retired=None)) == _from_records(snap, None)


def test_pages_are_read_whole_so_a_reader_may_append_between_items(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(done_outputs_module, "_PAGE", 4)
    with SqliteStore.open(tmp_path, create=True) as store:
        _batch(store)
        expected = [d.identity for d in _from_records(store, False)]
        seen = []
        for d in done_outputs(store):  # as reconcile records what it repaired
            seen.append(d.identity)
            store.append_sync(Stored(id=d.identity, object=f"o/{d.identity}.png", file=f"n/{d.identity}.png"))
        assert seen == expected
        assert all(d.object == f"o/{d.identity}.png" for d in done_outputs(store))


def test_an_append_not_yet_committed_is_seen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> None:
        with SqliteStore.open(tmp_path, create=True) as store:
            _batch(store)
            gate = threading.Event()  # holds the commit until the read is made
            write = store._write_taken
            monkeypatch.setattr(store, "_write_taken", lambda group: (gate.wait(10), write(group)))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(store.append, *done("j003", 4))
                for _ in range(100):
                    if store._pending:
                        break
                    await trio.sleep(0)
                assert store._pending  # folded, not committed
                got = list(done_outputs(store, retired=None))
                gate.set()
            assert "j003" in {d.identity for d in got}
            assert got == _from_records(store, None)

    trio.run(main)


def test_first_jobs_of_each_sheet_are_those_a_full_stream_keeps(tmp_path: Path) -> None:
    memory = MemoryStore()
    _batch(memory)
    with SqliteStore.open(tmp_path, create=True) as store:
        _batch(store)
        for per_job in (None, 1, 3, 100):
            assert [j.identity for j in first_jobs(store, per_job)] == [j.identity for j in first_jobs(memory, per_job)]
        # retired j001 and j003 are not shown; the first two of each sheet, in planning order
        assert [j.identity for j in first_jobs(store, 2)] == ["j000", "j002", "j004", "j005", "j006", "j007"]
        assert len(list(first_jobs(store, None))) == 28


def test_done_identities_are_those_of_the_done_outputs(tmp_path: Path) -> None:
    memory = MemoryStore()
    _batch(memory)
    with SqliteStore.open(tmp_path, create=True) as store:
        _batch(store)
        for reads in (store, memory):
            for retired in (False, True, None):
                assert list(done_identities(reads, retired=retired)) == [d.identity for d in _from_records(reads, retired)]
