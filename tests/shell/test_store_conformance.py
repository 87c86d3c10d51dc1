"""One suite, every BatchStore: the file ledger, the in-memory store, the SQLite store and the
PostgreSQL store (on a throwaway server, ``tests/pg_server.py``) obey the same rules.

The next store joins by adding itself to ``STORES`` (``new`` and ``reopen``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from lumozbatch.core.jobstate import IllegalTransition, JobState
from lumozbatch.core.ledger_codec import BadRecord
from lumozbatch.core.records import (
    Accepted,
    Ambiguous,
    Batch,
    Completed,
    Downloaded,
    Failed,
    Intent,
    Job,
    Limits,
    Missing,
    Moved,
    Relinked,
    Reset,
    Retire,
    Stored,
    Unsent,
)
from lumozbatch.shell.ledger import Ledger
from lumozbatch.shell.pg_store import PgStore
from lumozbatch.shell.sqlite_store import SqliteStore
from lumozbatch.shell.store import BatchStore, MemoryStore

S = JobState


def job(identity: str, index: int = 0) -> Job:
    return Job(
        id=identity, job="portraits", index=index, repeat=0, model="flux-sketch-smudge",
        params={"prompt": identity, "seed": 1}, variables={"n": index}, filename=f"portraits/{identity}",
    )


class Kit:
    """Makes a store of one kind, and reads it back as a new process would."""

    def __init__(self, kind: str, tmp_path: Path, url: str = "") -> None:
        self.kind = kind
        self.out = tmp_path / "out"
        self.url = url

    def new(self) -> Any:
        if self.kind == "ledger":
            return Ledger.open(self.out, create=True)
        if self.kind == "sqlite":
            return SqliteStore.open(self.out, create=True)
        if self.kind == "pg":
            return PgStore.open(self.url, name="b", api="sandbox", create=True)
        return MemoryStore()

    def reopen(self, store: Any) -> Any:
        if self.kind == "ledger":
            store.close()
            return Ledger.open(self.out, create=False)
        if self.kind == "sqlite":
            store.close()
            return SqliteStore.open(self.out, create=False)
        if self.kind == "pg":
            store.close()
            return PgStore.open(self.url, name="b", api="sandbox", create=False)
        return MemoryStore(store.records)


STORES = ["ledger", "memory", "sqlite", "pg"]


@pytest.fixture(params=STORES)
def kit(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Kit]:
    url = request.getfixturevalue("pg_url") if request.param == "pg" else ""
    yield Kit(request.param, tmp_path, url)


@pytest.fixture
def store(kit: Kit) -> Iterator[Any]:
    s = kit.new()
    s.append_sync(Batch(name="b", manifest="m.yaml", api="sandbox"), job("a", 0), job("b", 1), job("c", 2))
    yield s
    s.close()


def test_it_is_a_batch_store(store: Any) -> None:
    assert isinstance(store, BatchStore)


def test_reads_the_plan_back(store: Any) -> None:
    assert store.batch["name"] == "b" and store.batch["api"] == "sandbox" and store.batch["v"] == 1
    assert [j.identity for j in store.all_jobs()] == ["a", "b", "c"]
    a = store.job("a")
    assert (a.job, a.index, a.model, a.params, a.variables) == ("portraits", 0, "flux-sketch-smudge", {"prompt": "a", "seed": 1}, {"n": 0})
    assert a.state is S.PENDING
    with pytest.raises(KeyError):
        store.job("never")
    assert store.counts()["pending"] == 3 and store.counts()["total"] == 3


def test_a_whole_lifecycle_and_the_reads_that_follow_it(store: Any, kit: Kit) -> None:
    store.append_sync(Intent(id="a", attempt=1), Accepted(id="a", request_id=7))
    store.append_sync(Completed(id="a", request_id=7, url="http://x/a.png", output_type="image"))
    store.append_sync(Downloaded(id="a", file="portraits/a.png", sha256="0" * 64, bytes=10))
    store.append_sync(Intent(id="b", attempt=1), Failed(id="b", reason="422", code="validation_error", billed=False))
    store.append_sync(Retire(id="c"))
    a = store.job("a")
    assert (a.state, a.request_id, a.file, a.bytes, a.attempts) == (S.DONE, 7, "portraits/a.png", 10, 1)
    assert [j.identity for j in store.jobs_in(S.DONE, S.FAILED)] == ["a", "b"]
    assert store.jobs_in(S.PENDING) == []  # c is retired: not active
    assert [j.identity for j in store.all_jobs()] == ["a", "b", "c"]
    counts = store.counts()
    assert (counts["done"], counts["failed"], counts["retired"], counts["total"]) == (1, 1, 1, 2)
    again = kit.reopen(store)
    try:
        assert again.counts() == counts
        assert again.job("b").reason == "422" and again.job("b").billed is False
    finally:
        again.close()


def test_outputs_kept_names_held_lost_and_a_moved_manifest(store: Any, kit: Kit) -> None:
    for identity, request_id in (("a", 1), ("b", 2)):
        store.append_sync(Intent(id=identity, attempt=1), Accepted(id=identity, request_id=request_id))
        store.append_sync(Completed(id=identity, request_id=request_id, url=f"http://x/{identity}.png"))
        store.append_sync(Downloaded(id=identity, file="p/x.png", sha256="0" * 64, bytes=3, object=f"o/{identity}.png"))
    store.append_sync(Stored(id="a", object="o/a.png", file="p/x.png"))  # a revert shows a again
    assert [j.identity for j in store.holders("p/x.png")] == ["b", "a"]
    assert store.holders("p/none.png") == []
    store.append_sync(Missing(id="b", reason="deleted"))
    store.append_sync(Moved(manifest="new.yaml", manifest_key="m/new.yaml"))
    store.append_sync(Limits(max_generations=7))
    again = kit.reopen(store)
    try:
        assert (again.job("b").state, again.job("b").object) == (S.MISSING, None)
        assert again.job("a").object == "o/a.png"
        assert [j.identity for j in again.holders("p/x.png")] == ["b", "a"]
        assert again.batch["manifest_key"] == "m/new.yaml" and again.batch["name"] == "b"
        assert again.batch["max_generations"] == 7
        assert again.counts()["missing"] == 1
    finally:
        again.close()


def test_a_refused_record_raises_and_changes_nothing(store: Any, kit: Kit) -> None:
    before = store.counts()
    with pytest.raises(IllegalTransition):
        store.append_sync(Intent(id="a", attempt=1), Downloaded(id="a", file="x", sha256="0", bytes=1))
    with pytest.raises(BadRecord):
        store.append_sync(Intent(id="never-planned", attempt=1))
    with pytest.raises(BadRecord):
        store.append_sync(Batch(name="b", manifest="m.yaml"))  # a second batch record
    assert store.counts() == before and store.job("a").attempts == 0
    again = kit.reopen(store)
    try:
        assert again.counts() == before  # nothing of the refused calls was recorded
    finally:
        again.close()


async def test_one_refused_step_alone_raises_and_changes_nothing(store: Any, kit: Kit) -> None:
    """A lone step, appended as a run appends it (the SQL stores fold it on their own path)."""
    await store.append(Intent(id="a", attempt=1))
    with pytest.raises(BadRecord):
        await store.append(Accepted(id="a", request_id="nine"))  # type: ignore[arg-type]
    with pytest.raises(BadRecord):
        await store.append({"t": "accepted", "id": "a"})  # no request_id
    with pytest.raises(IllegalTransition):
        await store.append(Downloaded(id="a", file="x", sha256="0", bytes=1))
    with pytest.raises(BadRecord):
        await store.append(Accepted(id="never-planned", request_id=1))
    if kit.kind != "memory":  # what is written refuses NaN, as the ledger's JSON does
        with pytest.raises(ValueError):
            await store.append(Unsent(id="a", reason=float("nan")))  # type: ignore[arg-type]
    a = store.job("a")
    assert (a.state, a.request_id, a.reason, a.attempts) == (S.SUBMITTING, None, None, 1)
    await store.append(Accepted(id="a", request_id=9))
    again = kit.reopen(store)
    try:
        a = again.job("a")
        assert (a.state, a.request_id, a.reason, a.attempts) == (S.SUBMITTED, 9, None, 1)
        assert again.counts()["submitted"] == 1
    finally:
        again.close()


def test_a_run_left_on_the_wire_reads_back_ambiguous_and_can_be_reset(store: Any, kit: Kit) -> None:
    store.append_sync(Intent(id="a", attempt=1))
    assert store.job("a").state is S.SUBMITTING  # live: the run is on the wire
    again = kit.reopen(store)
    try:
        assert again.job("a").state is S.AMBIGUOUS  # the process that sent it is gone
        again.append_sync(Reset(id="a", why="resubmit-ambiguous"), Intent(id="a", attempt=2))
        again.append_sync(Ambiguous(id="a", reason="timeout"))
        assert again.job("a").attempts == 2 and again.job("a").paid_before == 1
    finally:
        again.close()


def test_a_lost_run_relinked_by_its_webhook_reads_back_submitted(store: Any, kit: Kit) -> None:
    store.append_sync(Intent(id="a", attempt=1), Ambiguous(id="a", reason="connection reset"))
    store.append_sync(Relinked(id="a", request_id=9), Completed(id="a", request_id=9, url="http://x/a.png"))
    store.append_sync(Intent(id="b", attempt=1), Relinked(id="b", request_id=10))  # before its answer
    with pytest.raises(IllegalTransition):
        store.append_sync(Relinked(id="b", request_id=10))  # its request is known already
    assert store.count_relinked([S.COMPLETED, S.SUBMITTED]) == 2 and store.count_relinked([S.COMPLETED]) == 1
    again = kit.reopen(store)
    try:
        assert (again.job("a").state, again.job("a").request_id, again.job("a").attempts) == (S.COMPLETED, 9, 1)
        assert (again.job("b").state, again.job("b").request_id) == (S.SUBMITTED, 10)
        assert again.count_relinked([S.COMPLETED, S.SUBMITTED]) == 2
    finally:
        again.close()


def test_every_record_is_stamped_with_its_time(store: Any, kit: Kit) -> None:
    store.append_sync(Intent(id="a", attempt=1), Unsent(id="a", reason="connection refused", at=5.0))
    again = kit.reopen(store)
    try:
        assert again.batch["at"] > 1_000_000_000  # stamped by the store: wall-clock seconds
        assert again.job("a").reason == "connection refused"
    finally:
        again.close()


async def test_async_appends_keep_their_order_and_show_at_once(store: Any, kit: Kit) -> None:
    async def carry(identity: str) -> None:
        await store.append(Intent(id=identity, attempt=1))
        assert store.job(identity).state is S.SUBMITTING
        await store.append(Accepted(id=identity, request_id=1), Completed(id=identity, request_id=1, url="u"))

    async with trio.open_nursery() as nursery:
        await nursery.start(store.run_writer)
        async with trio.open_nursery() as workers:
            for identity in ("a", "b", "c"):
                workers.start_soon(carry, identity)
        nursery.cancel_scope.cancel()
    assert store.counts()["completed"] == 3
    again = kit.reopen(store)
    try:
        assert again.counts()["completed"] == 3
    finally:
        again.close()


async def test_an_async_append_that_is_refused_raises_before_anything_is_recorded(store: Any) -> None:
    with pytest.raises(IllegalTransition):
        await store.append(Accepted(id="a", request_id=1))
    assert store.job("a").state is S.PENDING


def test_close_is_idempotent_and_refuses_later_appends(kit: Kit) -> None:
    s = kit.new()
    s.close()
    s.close()
    with pytest.raises(RuntimeError):
        s.append_sync(Batch(name="b", manifest="m.yaml"))



def _reads_of_a_finished_edit(store: Any) -> None:
    """a done (shown as p/x.png), b failed twice over (billed), c retired while in flight."""
    store.append_sync(Intent(id="a", attempt=1), Accepted(id="a", request_id=1))
    store.append_sync(Completed(id="a", request_id=1, url="http://x/a.png"))
    store.append_sync(Downloaded(id="a", file="p/x.png", sha256="0" * 64, bytes=3, object="o/a.png"))
    store.append_sync(Intent(id="b", attempt=1), Failed(id="b", reason="boom", code="failed", billed=True))
    store.append_sync(Intent(id="c", attempt=1), Accepted(id="c", request_id=3), Retire(id="c"))


def _check_streaming_and_aggregate_reads(reads: Any) -> None:
    assert [j.identity for j in reads.iter_jobs()] == ["a", "b", "c"]
    assert [j.identity for j in reads.iter_jobs([S.DONE, S.FAILED], retired=False)] == ["a", "b"]
    assert [j.identity for j in reads.iter_jobs([S.SUBMITTED], retired=True)] == ["c"]
    assert [j.identity for j in reads.iter_jobs(retired=False, chunk=1)] == ["a", "b"]
    assert sorted(reads.jobs_by_identity(["c", "a", "never"])) == ["a", "c"]
    assert reads.latest_holders(["p/x.png", "p/none.png"]) == {"p/x.png": "a"}
    assert dict(reads.iter_names()) == {"p/x.png": ["a"]}
    by_job = reads.counts_by("job")
    assert by_job["portraits"]["done"] == 1 and by_job["portraits"]["failed"] == 1
    assert sum(by_job["portraits"].values()) == 2  # c is retired
    assert reads.counts_retired()["submitted"] == 1
    spend = reads.spend()
    assert spend.by_model == {"flux-sketch-smudge": 3} and spend.ambiguous == 0  # a, b (billed), c
    assert reads.spent() == 3
    [cause] = reads.failures(S.FAILED)
    assert (cause.code, cause.reason, cause.count, cause.identities) == ("failed", "boom", 1, ("b",))


def test_streaming_and_aggregate_reads_agree_on_every_store(store: Any, kit: Kit) -> None:
    _reads_of_a_finished_edit(store)
    _check_streaming_and_aggregate_reads(store)
    again = kit.reopen(store)
    try:
        _check_streaming_and_aggregate_reads(again)
    finally:
        again.close()
