"""``statuses_by_identity``: the columns planning reads say what the full job records say."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import trio

from lumozbatch.core.grid import expand
from lumozbatch.core.jobstate import JobState
from lumozbatch.core.plansummary import store_view, summarize_against
from lumozbatch.core.records import Accepted, Intent
from lumozbatch.shell.job_statuses import JobStatus, statuses_by_identity
from lumozbatch.shell.sqlite_store import SqliteStore
from lumozbatch.shell.store import MemoryStore
from tests.core.test_plansummary import finished, manifest
from tests.shell.test_sqlite_store import every_kind_of_job

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
