"""``statuses_by_identity``: the columns planning reads say what the full job records say."""

from __future__ import annotations

import random
from functools import partial
from pathlib import Path

import pytest
import trio

from lumozbatch.core.grid import expand
from lumozbatch.core.jobstate import JobState
from lumozbatch.core.plansummary import store_view, summarize_against
from lumozbatch.core.records import Accepted, Intent, Retire
from lumozbatch.shell import job_statuses
from lumozbatch.shell.job_statuses import JobStatus, StatusesInOrder, statuses_by_identity
from lumozbatch.shell.sqlite_store import SqliteStore, state_path
from lumozbatch.shell.store import MemoryStore
from tests.core.test_plansummary import finished, manifest
from tests.shell.test_sqlite_store import BATCH, _as_version, done, every_kind_of_job, job

ASKED = [*"abcdefgh", "never-planned"]


def expected(reads: object) -> dict[str, JobStatus]:
    return {i: JobStatus.of(j) for i, j in reads.jobs_by_identity(ASKED).items()}  # type: ignore[attr-defined]


def test_a_store_and_its_snapshots_answer_as_their_job_records(tmp_path: Path) -> None:
    with SqliteStore.open(tmp_path, create=True) as store:
        every_kind_of_job(store)
        got = statuses_by_identity(store, ASKED)
        assert got == expected(store) and "never-planned" not in got
        assert got["b"] == JobStatus("b", JobState.FAILED, False, True, "failed")
        assert got["g"].retired and got["h"].state is JobState.SUBMITTING
        with SqliteStore.open_snapshot(tmp_path, live=True) as snap:  # its run is alive
            assert statuses_by_identity(snap, ASKED)["h"].state is JobState.SUBMITTING
    with SqliteStore.open_snapshot(tmp_path, live=False) as snap:  # its run died: h read as ambiguous
        got = statuses_by_identity(snap, ASKED)
        assert got == expected(snap) and got["h"] == JobStatus("h", JobState.AMBIGUOUS, False, None, None)


def test_an_append_is_seen_once_it_returns(tmp_path: Path) -> None:
    async def main() -> None:
        with SqliteStore.open(tmp_path, create=True) as store:
            every_kind_of_job(store)
            await store.append(Intent(id="e", attempt=2))
            assert statuses_by_identity(store, ASKED) == expected(store)
            assert statuses_by_identity(store, ["e"])["e"].state is JobState.SUBMITTING
            await store.append(Accepted(id="e", request_id=9))
            assert statuses_by_identity(store, ["e"])["e"].state is JobState.SUBMITTED

    trio.run(main)


def test_a_store_in_memory_answers_from_its_records() -> None:
    store = MemoryStore()
    every_kind_of_job(store)
    assert statuses_by_identity(store, ASKED) == expected(store)


@pytest.mark.parametrize("step", ["first", "edit", "revert"])
def test_plan_counts_alike_from_the_state_columns(tmp_path: Path, step: str) -> None:
    """``store_view(..., jobs=statuses)``: the plan a person sees is the one from the records."""
    q80, q90 = manifest("a {subject}"), manifest("an old {subject}")
    ledger = finished(q80)
    if step != "first":
        ledger.apply_plan(list(expand(q90)))
        ledger.run(list(expand(q90))[0], until="accepted")
    target = q90 if step == "edit" else q80
    with SqliteStore.open(tmp_path, create=True) as store:
        store.append_sync(*ledger.records)
        by_records = summarize_against(target, expand(target), store_view(store))
        by_columns = summarize_against(target, expand(target), store_view(store, jobs=partial(statuses_by_identity, store)))
    assert by_columns == by_records and by_columns.total == 2


def _many(store: SqliteStore, count: int) -> list[str]:
    """``count`` jobs planned in order, every third done, one in ten retired."""
    identities = [f"j{n:04d}" for n in range(count)]
    store.append_sync(BATCH, *(job(i, n) for n, i in enumerate(identities)))
    for n, identity in enumerate(identities):
        if n % 3 == 0:
            store.append_sync(*done(identity, n + 1))
        if n % 10 == 7:
            store.append_sync(Retire(id=identity))
    return identities


@pytest.mark.parametrize("order", ["as planned", "reversed", "shuffled", "grown", "shrunk"])
def test_statuses_asked_chunk_after_chunk_are_those_of_the_records(
    tmp_path: Path, order: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read ahead in seq order or looked up by identity, the answer is the same, however the
    manifest now orders, adds or drops its jobs; as planned, nothing is looked up by identity."""
    by_identity: list[int] = []
    monkeypatch.setattr(job_statuses, "statuses_by_identity",
                        lambda reads, ids: by_identity.append(len(ids)) or statuses_by_identity(reads, ids))
    with SqliteStore.open(tmp_path, create=True) as store:
        planned = _many(store, 700)
        asked = {
            "as planned": planned,
            "reversed": planned[::-1],
            "shuffled": random.Random(7).sample(planned, len(planned)),
            # new jobs in the middle and at the end: the ones after them still match in order
            "grown": planned[:300] + [f"new{n}" for n in range(150)] + planned[300:] + ["new-last"],
            "shrunk": planned[::2],
        }[order]
        lookup = StatusesInOrder(store)
        got: dict[str, JobStatus] = {}
        for start in range(0, len(asked), 100):
            got.update(lookup(asked[start:start + 100]))
        assert got == statuses_by_identity(store, asked) == expected_of(store, asked)
        assert len(got) == len([i for i in asked if not i.startswith("new")])
        if order == "as planned":
            assert by_identity == []
        elif order == "grown":  # only the new ones were looked up by identity
            assert sum(by_identity) == 151


def test_statuses_in_order_see_a_pending_append(tmp_path: Path) -> None:
    async def main() -> None:
        with SqliteStore.open(tmp_path, create=True) as store:
            planned = _many(store, 50)
            lookup = StatusesInOrder(store)
            assert lookup(planned[:10])["j0001"].state is JobState.PENDING
            await store.append(Intent(id="j0011", attempt=1))
            assert lookup(planned[10:20])["j0011"].state is JobState.SUBMITTING

    trio.run(main)


def expected_of(reads: object, asked: list[str]) -> dict[str, JobStatus]:
    return {i: JobStatus.of(j) for i, j in reads.jobs_by_identity(asked).items()}  # type: ignore[attr-defined]


def test_an_older_database_is_read_from_its_columns_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A snapshot of a version-1 database (read as it is, not migrated) has the same columns."""
    with SqliteStore.open(tmp_path, create=True) as store:
        planned = _many(store, 300)
    _as_version(state_path(tmp_path), 1)
    monkeypatch.setattr(SqliteStore, "jobs_by_identity", lambda *a: pytest.fail("decoded the records"))
    with SqliteStore.open_snapshot(tmp_path) as snap:
        assert job_statuses.reads_columns(snap)
        lookup = StatusesInOrder(snap)
        got = {i: s for start in range(0, 300, 100) for i, s in lookup(planned[start:start + 100]).items()}
        assert len(got) == 300 and got["j0003"].state is JobState.DONE and got["j0007"].retired
