"""The SQLite batch state: schema, import of ledger.jsonl, lock, crash safety, snapshots,
and the streaming / aggregate reads the runner and status will use.

The rules every store shares are in ``test_store_conformance.py``; these are SQLite's own.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
import trio

from lumozbatch.core.jobcategory import spent_generations
from lumozbatch.core.jobstate import JobState
from lumozbatch.core.ledger_codec import JobRecord, LedgerCorrupt, LedgerState, encode
from lumozbatch.core.records import (
    Accepted,
    Ambiguous,
    Batch,
    Completed,
    Downloaded,
    Failed,
    Intent,
    Job,
    Missing,
    Relinked,
    Reset,
    Retire,
    Unsent,
)
from lumozbatch.errors import LedgerNotFound, LockHeld, UsageError
from lumozbatch.shell import sql_rows, sqlite_schema
from lumozbatch.shell import sqlite_store as store_module
from lumozbatch.shell.ledger import Ledger, LedgerWriteError, ledger_path, read_state
from lumozbatch.shell.sqlite_schema import SCHEMA_VERSION, select_relinked
from lumozbatch.shell.sql_reads import Cause
from lumozbatch.core.ledger_codec import replay
from lumozbatch.core.spend import spend_of
from lumozbatch.shell.state_reads import StateSnapshot
from lumozbatch.shell.sqlite_store import SqliteStore, state_path

S = JobState
BATCH = Batch(name="b", manifest="m.yaml", api="sandbox")


def job(identity: str, index: int = 0, *, model: str = "flux-sketch-smudge", seed: int = 1) -> Job:
    return Job(
        id=identity, job="portraits" if index % 2 == 0 else "landscapes", index=index, repeat=0, model=model,
        params={"prompt": identity, "seed": seed}, variables={"n": index}, filename=f"portraits/{identity}",
    )


def done(identity: str, request_id: int) -> list[Any]:
    return [
        Intent(id=identity, attempt=1), Accepted(id=identity, request_id=request_id),
        Completed(id=identity, request_id=request_id, url=f"http://x/{identity}.png", output_type="image"),
        Downloaded(id=identity, file=f"portraits/{identity}.png", sha256="0" * 64, bytes=10),
    ]


def every_kind_of_job(store: Any) -> None:
    """One job in each state a real batch reaches, through the records the runner writes."""
    store.append_sync(BATCH, *(job(i, n, seed=4_000_000_000 + n) for n, i in enumerate("abcdefgh")))
    store.append_sync(*done("a", 1))
    store.append_sync(Intent(id="b", attempt=1), Accepted(id="b", request_id=2),
                      Failed(id="b", reason="failed on the provider", code="failed", billed=True))
    store.append_sync(Intent(id="c", attempt=1), Failed(id="c", reason="422 bad guidance", code="validation_error", billed=False))
    store.append_sync(Intent(id="d", attempt=1), Ambiguous(id="d", reason="read timeout"))
    store.append_sync(Intent(id="e", attempt=1), Unsent(id="e", reason="connection refused"))
    store.append_sync(Intent(id="f", attempt=1), Ambiguous(id="f", reason="reset"),
                      Reset(id="f", why="resubmit-ambiguous"), Intent(id="f", attempt=2), Accepted(id="f", request_id=6))
    store.append_sync(Retire(id="g"))
    store.append_sync(Intent(id="h", attempt=1))  # left on the wire: ambiguous once reopened


# -- open, schema ----------------------------------------------------------------------------


def test_open_without_a_batch_refuses_and_creates_nothing(tmp_path: Path) -> None:
    out = tmp_path / "outputs" / "b"
    with pytest.raises(LedgerNotFound):
        SqliteStore.open(out, create=False)
    with pytest.raises(LedgerNotFound):
        SqliteStore.open_snapshot(out)
    assert not out.exists()


def test_the_documented_schema_answers_a_users_query(tmp_path: Path) -> None:
    with SqliteStore.open(tmp_path, create=True) as store:
        # FULL (2): every commit fsyncs the WAL; NORMAL would let a power loss take back an
        # intent acknowledged before its run was sent
        assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # type: ignore[union-attr]
        every_kind_of_job(store)
    db = sqlite3.connect(state_path(tmp_path))
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        by_state = dict(db.execute("select state, count(*) from jobs where retired = 0 group by 1"))
        # h's run is gone without an answer: its row says so until the next run settles it
        assert by_state == {"done": 1, "failed": 2, "ambiguous": 1, "submitting": 1, "pending": 1, "submitted": 1}
        assert db.execute("select name, api from batch").fetchone() == ("b", "sandbox")
        history = [t for (t,) in db.execute("select t from steps where identity = 'f' order by seq")]
        assert history == ["job", "intent", "ambiguous", "reset", "intent", "accepted"]
        row = db.execute("select request_id, attempts, paid_before, billed from jobs where identity = 'f'").fetchone()
        assert row == (6, 2, 1, None)
        assert json.loads(db.execute("select record from jobs where identity = 'a'").fetchone()[0])["params"]["seed"] == 4_000_000_000
    finally:
        db.close()


def test_a_database_from_a_newer_lumozbatch_is_refused(tmp_path: Path) -> None:
    with SqliteStore.open(tmp_path, create=True) as store:
        store.append_sync(BATCH)
    db = sqlite3.connect(state_path(tmp_path))
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    for opener in (lambda: SqliteStore.open(tmp_path, create=False), lambda: SqliteStore.open_snapshot(tmp_path)):
        with pytest.raises(UsageError, match="newer lumozbatch"):
            opener()
    with pytest.raises(UsageError, match="newer"):  # not LockHeld: the refusal released the lock
        SqliteStore.open(tmp_path, create=False)


def test_job_rows_keep_fields_they_do_not_know_and_default_those_they_lack(tmp_path: Path) -> None:
    with SqliteStore.open(tmp_path, create=True) as store:
        store.append_sync(BATCH, job("a"))
    db = sqlite3.connect(state_path(tmp_path))
    record = json.loads(db.execute("select record from jobs").fetchone()[0])
    record["from_a_newer_writer"] = 1
    del record["paid_before"]  # as an older writer would have left it
    db.execute("update jobs set record = ?", (json.dumps(record),))
    db.commit()
    db.close()
    with SqliteStore.open(tmp_path, create=False) as store:
        assert store.job("a").paid_before == 0
        store.append_sync(*done("a", 9))
        assert store.job("a").state is S.DONE


# -- import of ledger.jsonl ------------------------------------------------------------------


def write_jsonl(out: Path, *, torn: bool = False) -> LedgerState:
    """A ledger written by the current JSONL code, and what it replays to."""
    with Ledger.open(out, create=True) as ledger:
        every_kind_of_job(ledger)
    if torn:
        with open(ledger_path(out), "ab") as f:
            f.write(encode(Intent(id="e", attempt=2))[:-9])  # the write in progress at power loss
    return read_state(out, live=False)


@pytest.mark.parametrize("torn", [False, True])
def test_a_jsonl_ledger_is_imported_once_losing_nothing(tmp_path: Path, torn: bool) -> None:
    expected = write_jsonl(tmp_path, torn=torn)
    lines = ledger_path(tmp_path).read_bytes().count(b"\n")
    with SqliteStore.open(tmp_path, create=False) as store:
        assert store.batch == expected.batch
        assert list(store.all_jobs()) == list(expected.jobs.values())  # every field of every job
        assert store.job("h").state is S.AMBIGUOUS and store.job("f").paid_before == 1
        assert store.job("e").state is S.PENDING  # the torn intent was never acknowledged
        assert len(list(store.steps())) == lines
        assert dict(store.iter_names()) == expected.named == {"portraits/a.png": ["a"]}
        assert store.holders("portraits/a.png") == expected.holders("portraits/a.png")
    assert not ledger_path(tmp_path).exists()
    kept = ledger_path(tmp_path).with_name("ledger.jsonl.imported")
    assert kept.read_bytes().count(b"\n") == lines
    with SqliteStore.open(tmp_path, create=False) as store:  # not imported twice
        assert len(list(store.steps())) == lines
        assert list(store.all_jobs()) == list(expected.jobs.values())


def test_a_crash_mid_import_leaves_the_old_file_authoritative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = write_jsonl(tmp_path)
    real = store_module.import_ledger

    def crash_after_the_inserts(db: Any, path: Path) -> int:
        real(db, path)
        raise KeyboardInterrupt  # the process dies before COMMIT

    monkeypatch.setattr(store_module, "import_ledger", crash_after_the_inserts)
    with pytest.raises(KeyboardInterrupt):
        SqliteStore.open(tmp_path, create=False)
    monkeypatch.undo()
    assert ledger_path(tmp_path).is_file()
    db = sqlite3.connect(state_path(tmp_path))
    assert db.execute("PRAGMA user_version").fetchone()[0] == 0  # nothing of it was committed
    db.close()
    with SqliteStore.open(tmp_path, create=False) as store:
        assert list(store.all_jobs()) == list(expected.jobs.values())


def test_a_crash_between_import_and_rename_only_renames_next_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_jsonl(tmp_path)
    lines = ledger_path(tmp_path).read_bytes().count(b"\n")
    monkeypatch.setattr(store_module, "finish_import", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        SqliteStore.open(tmp_path, create=False)
    monkeypatch.undo()
    with SqliteStore.open(tmp_path, create=False) as store:
        assert len(list(store.steps())) == lines  # the committed import, not a second one
    assert not ledger_path(tmp_path).exists()


def test_a_jsonl_ledger_the_database_did_not_come_from_is_refused(tmp_path: Path) -> None:
    with SqliteStore.open(tmp_path, create=True) as store:
        store.append_sync(BATCH, job("a"))
    ledger_path(tmp_path).write_bytes(encode(BATCH))  # an older lumozbatch ran here since
    with pytest.raises(UsageError, match="not imported from"):
        SqliteStore.open(tmp_path, create=False)
    assert ledger_path(tmp_path).is_file()
    with pytest.raises(UsageError):  # and the lock was released
        SqliteStore.open(tmp_path, create=False)


def test_a_damaged_jsonl_ledger_is_not_imported(tmp_path: Path) -> None:
    write_jsonl(tmp_path)
    data = ledger_path(tmp_path).read_bytes().split(b"\n")
    data[2] = b"{not json"
    ledger_path(tmp_path).write_bytes(b"\n".join(data))
    with pytest.raises(LedgerCorrupt):
        SqliteStore.open(tmp_path, create=False)
    assert ledger_path(tmp_path).is_file()


# -- lock, snapshots, crashes ------------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import sys, time
    from lumozbatch.core.records import Batch, Intent, Job
    from lumozbatch.shell.sqlite_store import SqliteStore
    store = SqliteStore.open(sys.argv[1], create=True)
    store.append_sync(Batch(name="b", manifest="m"), Job(id="x", job="j", index=0, repeat=0,
        model="m", params={}, variables={}, filename="x"))
    store.append_sync(Intent(id="x", attempt=1))
    print("locked", flush=True)
    time.sleep(60)
    """
)


def test_lock_held_by_another_process_then_released_by_sigkill(tmp_path: Path) -> None:
    out = tmp_path / "batch"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(LockHeld) as info:
            SqliteStore.open(out, create=False)
        assert f"pid {proc.pid}" in info.value.message and info.value.exit_code == 4
        with SqliteStore.open_snapshot(out) as snap:  # no lock needed; the run is live
            assert snap.job("x").state is S.SUBMITTING and snap.counts()["submitting"] == 1
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        with SqliteStore.open_snapshot(out) as snap:  # its run died: the answer is lost
            assert snap.job("x").state is S.AMBIGUOUS
            assert snap.counts()["ambiguous"] == 1 and snap.jobs_in(S.AMBIGUOUS)[0].identity == "x"
            assert [(c.code, c.count, c.identities) for c in snap.failures(S.AMBIGUOUS)] == [(None, 1, ("x",))]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    with SqliteStore.open(out, create=False) as store:
        assert store.job("x").state is S.AMBIGUOUS and store.job("x").attempts == 1
        store.append_sync(Reset(id="x", why="resubmit-ambiguous"))
        assert store.job("x").paid_before == 1


WRITER = textwrap.dedent(
    """
    import sys, trio
    from lumozbatch.core.records import Accepted, Batch, Intent, Job
    from lumozbatch.shell.sqlite_store import SqliteStore
    store = SqliteStore.open(sys.argv[1], create=True)
    ids = [f"{n:04d}" for n in range(4000)]
    store.append_sync(Batch(name="b", manifest="m"), *(Job(id=i, job="j", index=n, repeat=0,
        model="m", params={}, variables={}, filename=i) for n, i in enumerate(ids)))
    print("ready", flush=True)

    async def carry(worker):
        for i in ids[worker::64]:
            await store.append(Intent(id=i, attempt=1))
            await store.append(Accepted(id=i, request_id=int(i)))
            print(i, flush=True)

    async def main():
        async with trio.open_nursery() as nursery:
            for worker in range(64):
                nursery.start_soon(carry, worker)
    trio.run(main)
    """
)


def test_kill_9_mid_commit_loses_nothing_acknowledged(tmp_path: Path) -> None:
    out = tmp_path / "batch"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(out)], stdout=subprocess.PIPE, text=True)
    acknowledged = []
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        while len(acknowledged) < 300:
            acknowledged.append(proc.stdout.readline().strip())
        proc.send_signal(signal.SIGKILL)  # while 64 writers are committing
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    db = sqlite3.connect(state_path(out))
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    with SqliteStore.open(out, create=False) as store:
        for identity in acknowledged:
            assert store.job(identity).state is S.SUBMITTED and store.job(identity).request_id == int(identity)
        # the rows are exactly the fold of the committed steps: nothing torn, nothing half-done
        replayed = LedgerState()
        for record in store.steps():
            replayed.apply(record)
        replayed.finish_replay()
        assert list(store.all_jobs()) == list(replayed.jobs.values())


async def test_appends_cancelled_while_they_wait_return_once_committed(tmp_path: Path) -> None:
    store = SqliteStore.open(tmp_path, create=True)
    ids = [f"j{n}" for n in range(40)]
    store.append_sync(BATCH, *(job(i, n) for n, i in enumerate(ids)))
    returned = []

    async def carry(identity: str) -> None:
        await store.append(Intent(id=identity, attempt=1))
        returned.append(identity)  # reached only if the append itself was not cancelled

    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            for identity in ids:
                nursery.start_soon(carry, identity)
            await trio.sleep(0)  # they have appended: one group is being written, others wait
            scope.cancel()
    assert sorted(returned) == sorted(ids)
    store.close()
    with SqliteStore.open_snapshot(tmp_path, live=True) as snap:
        assert all(snap.job(i).state is S.SUBMITTING for i in ids)


def test_a_snapshot_reads_one_moment_while_the_run_writes(tmp_path: Path) -> None:
    with SqliteStore.open(tmp_path, create=True) as store:
        store.append_sync(BATCH, *(job(f"j{n}", n) for n in range(5)))
        snap = SqliteStore.open_snapshot(tmp_path, live=True)
        try:
            store.append_sync(*done("j0", 1))
            store.append_sync(job("j5", 5))
            assert snap.counts()["pending"] == 5 and snap.counts()["done"] == 0
            assert snap.job("j0").state is S.PENDING and [j.identity for j in snap.all_jobs()][-1] == "j4"
            with pytest.raises(RuntimeError, match="read-only"):
                snap.append_sync(Intent(id="j1", attempt=1))
        finally:
            snap.close()
        with SqliteStore.open_snapshot(tmp_path, live=True) as fresh:
            assert fresh.counts()["done"] == 1 and fresh.counts()["total"] == 6


def test_a_snapshot_opens_a_batch_whose_wal_is_gone(tmp_path: Path) -> None:
    with SqliteStore.open(tmp_path, create=True) as store:
        store.append_sync(BATCH, job("a"))
    assert not state_path(tmp_path).with_name("state.db-wal").exists()  # checkpointed at close
    with SqliteStore.open_snapshot(tmp_path) as snap:
        assert snap.job("a").state is S.PENDING


async def test_a_disk_that_refuses_a_write_stops_every_later_append(tmp_path: Path) -> None:
    store = SqliteStore.open(tmp_path, create=True)
    store.append_sync(BATCH, *(job(f"j{n}", n) for n in range(3)))
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]  # type: ignore[union-attr]
    store._db.execute(f"PRAGMA max_page_count = {pages}")  # type: ignore[union-attr]  # the disk is full
    with pytest.raises(LedgerWriteError, match="could not write"):
        await store.append(*(job(f"big{n}", n) for n in range(200)))
    with pytest.raises(LedgerWriteError, match="earlier"):
        await store.append(Intent(id="j0", attempt=1))
    with pytest.raises(LedgerWriteError):
        store.append_sync(Intent(id="j0", attempt=1))
    store.close()
    with SqliteStore.open(tmp_path, create=False) as again:
        assert again.counts()["total"] == 3  # what was acknowledged, nothing else


async def test_a_transaction_that_cannot_begin_fails_its_group_and_the_queued_one(tmp_path: Path) -> None:
    store = SqliteStore.open(tmp_path, create=True)
    store.append_sync(BATCH, *(job(f"j{n}", n) for n in range(4)))
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the database: BEGIN times out
    store._db.execute("PRAGMA busy_timeout = 0")  # type: ignore[union-attr]
    outcomes: dict[str, str] = {}

    async def step(identity: str) -> None:
        try:
            await store.append(Intent(id=identity, attempt=1))
        except LedgerWriteError as exc:
            outcomes[identity] = exc.message

    async with trio.open_nursery() as nursery:
        for n in range(4):
            nursery.start_soon(step, f"j{n}")
    other.execute("ROLLBACK")
    other.close()
    assert sorted(outcomes) == ["j0", "j1", "j2", "j3"]  # every appender told, none acknowledged
    assert all("locked" in message for message in outcomes.values())
    store.close()
    with SqliteStore.open_snapshot(tmp_path) as snap:
        assert snap.counts()["pending"] == 4


def test_append_sync_turns_a_refused_write_into_a_ledger_write_error(tmp_path: Path) -> None:
    with SqliteStore.open(tmp_path, create=True) as store:
        store.append_sync(BATCH)
        pages = store._db.execute("PRAGMA page_count").fetchone()[0]  # type: ignore[union-attr]
        store._db.execute(f"PRAGMA max_page_count = {pages}")  # type: ignore[union-attr]
        with pytest.raises(LedgerWriteError):
            store.append_sync(*(job(f"big{n}", n) for n in range(200)))
        assert store.counts()["total"] == 0  # nothing shown that was not recorded


# -- reads while steps are pending, streaming, aggregates ---------------------------------------


async def test_reads_show_steps_at_once_while_their_commit_is_under_way(tmp_path: Path) -> None:
    store = SqliteStore.open(tmp_path, create=True)
    store.append_sync(BATCH, *(job(f"j{n}", n) for n in range(6)))
    gate = threading.Event()
    real_commit = store._commit

    def slow_commit(*args: Any) -> None:
        gate.wait(10)
        real_commit(*args)

    store._commit = slow_commit  # type: ignore[method-assign]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(store.append, Intent(id="j2", attempt=1))
        nursery.start_soon(store.append, job("new", 6), Retire(id="j0"))
        nursery.start_soon(store.append, *done("j1", 1))
        await trio.sleep(0.05)  # all queued; the commit waits for the gate
        assert [j.identity for j in store.holders("portraits/j1.png")] == ["j1"]
        with pytest.raises(RuntimeError, match="pending"):
            store.append_sync(Intent(id="j3", attempt=1))
        assert store.job("j2").state is S.SUBMITTING and store.job("j0").retired
        assert store.counts() == {**dict.fromkeys((s.value for s in S), 0), "pending": 4, "submitting": 1, "done": 1, "retired": 1, "total": 6}
        assert [j.identity for j in store.iter_jobs(chunk=2)] == ["j0", "j1", "j2", "j3", "j4", "j5", "new"]
        assert [j.identity for j in store.jobs_in(S.SUBMITTING, S.DONE)] == ["j1", "j2"]
        assert [j.identity for j in store.iter_jobs([S.PENDING], retired=False, chunk=2)] == ["j3", "j4", "j5", "new"]
        assert set(store.jobs_by_identity(["j2", "new", "nope"])) == {"j2", "new"}
        assert store.spent() == 2 and store.counts_by("job")["portraits"]["submitting"] == 1
        # the reads added for status, plan and the summary see the pending steps too
        assert store.spend().by_model == {"flux-sketch-smudge": 2}
        assert store.counts_retired()["pending"] == 1  # j0
        assert store.latest_holders(["portraits/j1.png", "portraits/j3.png"]) == {"portraits/j1.png": "j1"}
        gate.set()
    assert store.commit_count == 2  # setup + one group for both appends
    store.close()
    with SqliteStore.open(tmp_path, create=False) as again:
        assert [j.identity for j in again.iter_jobs(chunk=2)][-1] == "new"
        assert again.job("j2").state is S.AMBIGUOUS  # reopened: the run that sent it is gone


def test_streaming_reads_in_pages_keep_planning_order(tmp_path: Path) -> None:
    with SqliteStore.open(tmp_path, create=True) as store:
        ids = [f"{n:03d}" for n in range(250)]
        store.append_sync(BATCH, *(job(i, n) for n, i in enumerate(reversed(ids))))
        store.append_sync(*(r for i in ids[::3] for r in done(i, int(i))))
        store.append_sync(job(ids[-1], 0))  # re-planned: keeps its place
        assert [j.identity for j in store.iter_jobs(chunk=7)] == list(reversed(ids))
        done_ids = [j.identity for j in store.iter_jobs([S.DONE], chunk=7)]
        assert done_ids == [i for i in reversed(ids) if i in set(ids[::3])]
        found = store.jobs_by_identity(ids[:1200:2] + ["missing"])
        assert set(found) == set(ids[::2]) and found["000"].state is S.DONE


def test_aggregates_agree_with_the_fold(tmp_path: Path) -> None:
    with SqliteStore.open(tmp_path, create=True) as store:
        every_kind_of_job(store)
        store.append_sync(job("i", 8), Intent(id="i", attempt=1),
                          Failed(id="i", reason="422 bad guidance", code="validation_error", billed=False))
    with SqliteStore.open(tmp_path, create=False) as store:
        jobs = list(store.all_jobs())
        assert store.spent() == spent_generations(jobs) == 6  # a b d f(2) h
        assert store.spend() == spend_of(jobs)  # per model, and how many are ambiguous
        assert StateSnapshot(replay(store.steps())).spend() == spend_of(jobs)
        assert store.failures() == [
            Cause("validation_error", "422 bad guidance", 2, ("c", "i")),
            Cause("failed", "failed on the provider", 1, ("b",)),
        ]
        assert store.failures(examples=1)[0].identities == ("c",)
        assert [c.reason for c in store.failures(S.AMBIGUOUS)] == ["read timeout", store.job("h").reason]
        none = {state.value: 0 for state in S}
        assert store.counts_by("job") == {
            "portraits": {**none, "pending": 1, "done": 1, "failed": 2},
            "landscapes": {**none, "submitted": 1, "failed": 1, "ambiguous": 2},
        }
        assert list(store.counts_by("model")) == ["flux-sketch-smudge"]
        assert [r["t"] for r in store.steps("b")] == ["job", "intent", "accepted", "failed"]


# -- the counts table (schema 2) -------------------------------------------------------------

_SCANNED = (
    "SELECT job, model, state, retired, COUNT(*), SUM(state = 'failed' AND billed IS 1), SUM(paid_before) "
    "FROM jobs GROUP BY 1, 2, 3, 4"
)
_COUNTED = "SELECT job, model, state, retired, n, billed_failed, paid_before FROM job_counts WHERE n <> 0"


def _counts_agree(path: Path) -> None:
    db = sqlite3.connect(path)
    try:
        assert sorted(db.execute(_COUNTED)) == sorted(db.execute(_SCANNED))
    finally:
        db.close()


def test_the_counts_table_follows_every_change_of_a_job(tmp_path: Path) -> None:
    with SqliteStore.open(tmp_path, create=True) as store:
        every_kind_of_job(store)  # failures billed and not, a reset (paid_before), a retired job
        store.append_sync(job("x", 9, model="flux-other"), Intent(id="x", attempt=1))
        store.append_sync(Ambiguous(id="x", reason="reset"), Reset(id="x", why="resubmit-ambiguous"), Retire(id="x"))
        _counts_agree(store.path)
        store._db.execute("DELETE FROM jobs WHERE identity = 'b'")  # type: ignore[union-attr]
        _counts_agree(store.path)
    with SqliteStore.open(tmp_path, create=False) as store:  # h settled as ambiguous on open
        _counts_agree(store.path)
        assert store.counts()["ambiguous"] == 2 and store.spent() == spent_generations(store.all_jobs())


def _as_version(path: Path, version: int) -> None:
    """The database as schema ``version`` wrote it, its later migrations undone."""
    db = sqlite3.connect(path)
    if version < 4:  # counted by triggers, indexed by (job|model, state, retired)
        db.execute(sqlite_schema._COUNTS_MIGRATION[1])
        db.execute(sqlite_schema._COUNTS_MIGRATION[3])
        db.execute("DROP INDEX jobs_by_job")
        db.execute("CREATE INDEX jobs_by_job ON jobs (job, state, retired)")
        db.execute("CREATE INDEX jobs_by_model ON jobs (model, state, retired)")
    if version < 3:
        db.execute("DROP INDEX steps_relinked")
    if version < 2:  # no counts table, no triggers
        for trigger in ("jobs_counted_in", "jobs_counted_out", "jobs_counted_again"):
            db.execute(f"DROP TRIGGER {trigger}")
        db.execute("DROP TABLE job_counts")
    db.execute(f"PRAGMA user_version = {version}")
    db.commit()
    db.close()


def test_a_version_1_database_is_read_as_it_is_and_migrated_by_the_next_run(tmp_path: Path) -> None:
    with SqliteStore.open(tmp_path, create=True) as store:
        every_kind_of_job(store)
    with SqliteStore.open_snapshot(tmp_path) as snap:
        expected = (snap.counts(), snap.counts_by("job"), snap.counts_by("model"), snap.spend(), snap.counts_retired())
    _as_version(state_path(tmp_path), 1)
    with SqliteStore.open_snapshot(tmp_path) as snap:  # read-only: nothing migrated
        assert (snap.counts(), snap.counts_by("job"), snap.counts_by("model"), snap.spend(), snap.counts_retired()) == expected
    db = sqlite3.connect(state_path(tmp_path))
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    db.close()
    with SqliteStore.open(tmp_path, create=False) as store:  # locked: migrated, counts backfilled
        assert (store.counts(), store.counts_by("job"), store.counts_by("model"), store.spend(), store.counts_retired()) == expected
        store.append_sync(*done("e", 5))
        _counts_agree(store.path)
    db = sqlite3.connect(state_path(tmp_path))
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()


def test_a_version_2_database_counts_its_relinked_jobs_by_their_records_until_migrated(tmp_path: Path) -> None:
    with SqliteStore.open(tmp_path, create=True) as store:
        every_kind_of_job(store)
        store.append_sync(Relinked(id="d", request_id=40))  # d's lost run, named by its webhook
        assert store.count_relinked([JobState.SUBMITTED]) == 1
    db = sqlite3.connect(state_path(tmp_path))
    plan = " ".join(str(r) for r in db.execute("EXPLAIN QUERY PLAN " + select_relinked(1, exclude=False), ["submitted"]))
    assert "steps_relinked" in plan  # not a read of every record
    db.close()
    _as_version(state_path(tmp_path), 2)
    with SqliteStore.open_snapshot(tmp_path) as snap:  # read as it is
        assert snap.count_relinked([JobState.SUBMITTED]) == 1
    with SqliteStore.open(tmp_path, create=False) as store:  # migrated
        assert store.count_relinked([JobState.SUBMITTED, JobState.DONE]) == 1
    db = sqlite3.connect(state_path(tmp_path))
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    assert db.execute("SELECT 1 FROM sqlite_master WHERE name = 'steps_relinked'").fetchone() == (1,)
    db.close()


def _schema_objects(path: Path) -> set[tuple[str, str]]:
    db = sqlite3.connect(path)
    try:
        return {(kind, name) for kind, name in db.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")}
    finally:
        db.close()


def test_a_version_3_database_moves_its_counting_from_triggers_to_the_writer(tmp_path: Path) -> None:
    with SqliteStore.open(tmp_path, create=True) as store:
        every_kind_of_job(store)
    fresh = _schema_objects(state_path(tmp_path))
    _as_version(state_path(tmp_path), 3)
    assert ("trigger", "jobs_counted_again") in _schema_objects(state_path(tmp_path))
    with SqliteStore.open(tmp_path, create=False) as store:  # migrated, the counts kept
        _counts_agree(store.path)
        store.append_sync(*done("e", 5), Retire(id="e"))
        _counts_agree(store.path)
    assert _schema_objects(state_path(tmp_path)) == fresh  # as a new database's
    assert ("trigger", "jobs_counted_out") in fresh and ("index", "jobs_by_model") not in fresh


async def test_the_counts_follow_concurrent_appends_committed_in_groups(tmp_path: Path) -> None:
    n = 40
    with SqliteStore.open(tmp_path, create=True) as store:
        store.append_sync(BATCH, *(job(f"j{i}", i, model=f"m{i % 3}") for i in range(n)))

        async def life(i: int) -> None:
            identity = f"j{i}"
            await store.append(Intent(id=identity, attempt=1))
            if i % 4 == 1:  # its answer lost, reset (paid before), sent again unless i % 8 == 1
                await store.append(Ambiguous(id=identity, reason="reset"))
                await store.append(Reset(id=identity, why="resubmit-ambiguous"))
                if i % 8 == 1:
                    return
                await store.append(Intent(id=identity, attempt=2))
            await store.append(Accepted(id=identity, request_id=i))
            if i % 4 == 0:
                await store.append(Failed(id=identity, reason="nsfw", code="2011", billed=i % 8 == 0))
            else:
                await store.append(Completed(id=identity, request_id=i, url="https://x/o.webp", output_type="image"))
            if i % 5 == 0:
                await store.append(Retire(id=identity))

        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(life, i)
        assert store.commit_count < 4 * n  # groups were shared
        _counts_agree(store.path)
        counts = store.counts()
    with SqliteStore.open_snapshot(tmp_path) as snap:
        assert snap.counts() == counts


async def test_a_group_writes_its_rows_as_the_single_row_statements_would(tmp_path: Path) -> None:
    """Group commits write each table with many-row statements: the values come back with the
    types and texts that binding them one by one gives."""
    with SqliteStore.open(tmp_path, create=True) as store:
        store.append_sync(BATCH, job("a", 0, seed=2**62), job("b", 1), job("c", 2))
        async with trio.open_nursery() as nursery:
            for identity, request_id in (("a", 1), ("b", 2), ("c", 3)):
                nursery.start_soon(store.append, Intent(id=identity, attempt=1))
        await store.append(Accepted(id="a", request_id=1), Accepted(id="b", request_id=2))
        await store.append(Failed(id="b", reason="naïve «prompt»", code="failed", billed=True), Retire(id="c"))
        await store.append(*done("a", 1)[2:])
        db = sqlite3.connect(store.path)
        try:
            for row in db.execute("SELECT * FROM jobs ORDER BY seq"):
                job_now = sql_rows.job_from_record(row[-1])
                assert row == tuple(int(v) if isinstance(v, bool) else v for v in sql_rows.job_row(row[0], job_now))
            types = db.execute("SELECT DISTINCT typeof(retired), typeof(attempts), typeof(record) FROM jobs").fetchall()
            assert types == [("integer", "integer", "text")]
            assert db.execute("SELECT typeof(billed) FROM jobs WHERE identity = 'b'").fetchone() == ("integer",)
            for at, t, identity, record in db.execute("SELECT at, t, identity, record FROM steps WHERE seq > 4"):
                wire = json.loads(record)
                assert (t, identity) == (wire["t"], wire["id"]) and at == pytest.approx(wire["at"], abs=1e-6)
                assert record == sql_rows.dumps(wire)  # the text as appended
            assert db.execute("SELECT record FROM jobs WHERE identity = 'b'").fetchone()[0].count("naïve «prompt»") == 1
        finally:
            db.close()


def test_a_stepped_row_that_is_not_there_is_written_whole(tmp_path: Path) -> None:
    """Steps update existing rows by seq; a row the update misses (a bug: it cannot happen)
    is upserted, so no job's state is lost either way."""
    with SqliteStore.open(tmp_path, create=True) as store:
        every_kind_of_job(store)
        a = store.job("a")
        ghost = sql_rows.job_row(99, JobRecord(**{**{f: getattr(a, f) for f in a.__slots__}, "identity": "ghost"}))
        db = store._db
        assert db is not None
        db.execute("BEGIN")
        store_module._update_jobs(db, [sql_rows.job_row(1, a), ghost])
        db.execute("COMMIT")
        assert store.job("ghost").state is JobState.DONE and store.job("a").file == a.file


async def test_lone_steps_of_every_kind_in_one_group_leave_each_row_as_its_record_says(tmp_path: Path) -> None:
    """A group's update sets only the columns its lone steps changed: each kind changes
    others (retired, paid_before, object, billed, request_id...), and every row still holds
    its record's values, as the fold has them."""
    with SqliteStore.open(tmp_path, create=True) as store:
        every_kind_of_job(store)
        steps = [
            Missing(id="a", reason="gone from the store"), Reset(id="b", why="resubmit-failed"),
            Reset(id="c", why="resubmit-failed"), Relinked(id="d", request_id=4), Retire(id="e"),
            Completed(id="f", request_id=6, url="http://x/f.png", output_type="image"),
            Failed(id="h", reason="refused", code="validation_error", billed=False),
        ]
        before = store.commit_count
        async with trio.open_nursery() as nursery:
            for step in steps:
                nursery.start_soon(store.append, step)
        assert store.commit_count == before + 1  # one group
        folded = {i: sql_rows.job_row(0, store.job(i))[1:] for i in "abcdefgh"}
        db = sqlite3.connect(store.path)
        try:
            for row in db.execute("SELECT * FROM jobs ORDER BY seq"):
                job_now = sql_rows.job_from_record(row[-1])
                assert row == tuple(int(v) if isinstance(v, bool) else v for v in sql_rows.job_row(row[0], job_now))
                assert sql_rows.job_row(0, job_now)[1:] == folded[job_now.identity]
        finally:
            db.close()
        _counts_agree(store.path)
        b, e = store.job("b"), store.job("e")
        assert (b.state, b.paid_before, e.retired) == (JobState.PENDING, 1, True)
