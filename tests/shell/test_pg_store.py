"""What only the PostgreSQL store does: its lock across machines, batches sharing a database,
snapshots beside a live writer, its schema's migration, and URLs whose password no message
shows. Each test gets a fresh database on a throwaway server (``tests/pg_server.py``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import trio

from lumozbatch.core.jobstate import IllegalTransition, JobState
from lumozbatch.core.records import Accepted, Ambiguous, Batch, Downloaded, Failed, Intent, Job, Reset, Retire
from lumozbatch.errors import LedgerNotFound, LockHeld, UsageError
from lumozbatch.shell import pg_schema
from lumozbatch.shell.ledger import LedgerWriteError
from lumozbatch.shell.pg_store import PgStore, holder, list_batches

S = JobState
REPO = Path(__file__).resolve().parents[2]


def job(identity: str, index: int = 0) -> Job:
    return Job(
        id=identity, job="portraits", index=index, repeat=0, model="flux-sketch-smudge",
        params={"prompt": identity, "seed": 1}, variables={}, filename=f"portraits/{identity}",
    )


@pytest.fixture
def store(pg_url: str) -> Iterator[PgStore]:
    s = PgStore.open(pg_url, name="b", api="sandbox", create=True)
    s.append_sync(Batch(name="b", manifest="m.yaml", api="sandbox"), job("a", 0), job("b", 1))
    yield s
    s.close()


def _with_password(url: str, password: str) -> str:
    return url.replace("postgres@", f"postgres:{password}@", 1)


def test_a_second_opener_is_refused_with_the_holder_named(store: PgStore, pg_url: str) -> None:
    with pytest.raises(LockHeld) as caught:
        PgStore.open(pg_url, name="b", api="sandbox", create=False)
    message = caught.value.message
    assert f"host {socket.gethostname()}" in message and f"pid {os.getpid()}" in message
    assert "since " in message and time.strftime("%Y-%m-%d") in message
    who = holder(pg_url, name="b", api="sandbox")
    assert who is not None and (who["host"], who["pid"]) == (socket.gethostname(), os.getpid())
    store.close()
    assert holder(pg_url, name="b", api="sandbox") is None  # closing released the lock
    PgStore.open(pg_url, name="b", api="sandbox", create=False).close()


def test_a_holder_whose_session_dies_frees_the_batch_and_its_run_reads_ambiguous(store: PgStore, pg_url: str) -> None:
    store.append_sync(Intent(id="a", attempt=1))
    backend = store._db.info.backend_pid  # type: ignore[union-attr]
    with psycopg.connect(pg_url, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (backend,)).fetchone()[0]
    with pytest.raises(LedgerWriteError):  # the run stops cleanly: nothing sent unrecorded
        store.append_sync(Accepted(id="a", request_id=1))
    with pytest.raises(LedgerWriteError):  # and refuses every later append
        store.append_sync(Intent(id="b", attempt=1))
    again = _open_when_free(pg_url)
    try:
        assert again.job("a").state is S.AMBIGUOUS
        assert again.job("b").state is S.PENDING
    finally:
        again.close()


def test_a_server_lost_to_the_reads_stops_the_run_with_one_line(store: PgStore, pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname = current_database()")
    for read in (store.counts, lambda: store.job("never"), lambda: list(store.iter_jobs())):
        with pytest.raises(LedgerWriteError) as caught:
            read()
        assert "could not read the batch state" in caught.value.message and "\n" not in caught.value.message


def _open_when_free(url: str) -> PgStore:
    """The server ends a dead client's session as soon as it sees the socket closed; a few
    tries at most, bounded."""
    for _ in range(100):
        try:
            return PgStore.open(url, name="b", api="sandbox", create=False)
        except LockHeld:
            time.sleep(0.05)
    return PgStore.open(url, name="b", api="sandbox", create=False)


def test_batches_with_one_name_and_two_apis_are_separate(store: PgStore, pg_url: str) -> None:
    other = PgStore.open(pg_url, name="b", api="live", create=True)  # not locked by `store`
    try:
        assert other.batch is None and list(other.all_jobs()) == []
        other.append_sync(Batch(name="b", manifest="m.yaml", api="live"), job("a", 0))
        other.append_sync(Intent(id="a", attempt=1), Accepted(id="a", request_id=5))
        assert other.job("a").state is S.SUBMITTED
        assert store.job("a").state is S.PENDING and store.counts()["total"] == 2
        assert sorted(list_batches(pg_url)) == [("b", "live"), ("b", "sandbox")]
    finally:
        other.close()
    with pytest.raises(LedgerNotFound):
        PgStore.open(pg_url, name="b", api="staging", create=False)
    with pytest.raises(LedgerNotFound):
        PgStore.open_snapshot(pg_url, name="c", api="sandbox")


async def test_a_snapshot_reads_one_moment_and_never_blocks_the_writer(store: PgStore, pg_url: str) -> None:
    store.append_sync(Intent(id="a", attempt=1))
    snap = PgStore.open_snapshot(pg_url, name="b", api="sandbox")
    try:
        assert snap.job("a").state is S.SUBMITTING  # a live run holds the lock: on the wire
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run_writer)
            await store.append(Accepted(id="a", request_id=3))
            await store.append(Intent(id="b", attempt=1))
            nursery.cancel_scope.cancel()
        assert snap.counts()["submitting"] == 1 and snap.counts()["pending"] == 1  # its moment
        with pytest.raises(RuntimeError):
            snap.append_sync(Intent(id="b", attempt=2))
    finally:
        snap.close()
    with PgStore.open_snapshot(pg_url, name="b", api="sandbox") as later:
        assert later.job("a").state is S.SUBMITTED and later.job("b").state is S.SUBMITTING
    store.close()
    with PgStore.open_snapshot(pg_url, name="b", api="sandbox") as dead:
        assert dead.job("b").state is S.AMBIGUOUS  # nobody holds it: the run died or stopped


def test_the_schema_is_created_once_and_migrating_again_changes_nothing(pg_url: str) -> None:
    PgStore.open(pg_url, name="one", api="sandbox", create=True).close()
    PgStore.open(pg_url, name="two", api="sandbox", create=True).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        versions = conn.execute("SELECT version FROM lumozbatch.schema_version").fetchall()
        assert versions == [(pg_schema.SCHEMA_VERSION,)]
        conn.execute("UPDATE lumozbatch.schema_version SET version = %s", (pg_schema.SCHEMA_VERSION + 1,))
    with pytest.raises(UsageError, match="newer lumozbatch"):
        PgStore.open(pg_url, name="one", api="sandbox", create=False)


def test_a_refused_record_writes_no_row(store: PgStore, pg_url: str) -> None:
    def steps() -> int:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM lumozbatch.steps").fetchone()[0])

    before = steps()
    with pytest.raises(IllegalTransition):
        store.append_sync(Intent(id="a", attempt=1), Downloaded(id="a", file="x", sha256="0", bytes=1))
    assert steps() == before and store.job("a").state is S.PENDING


def test_no_message_shows_the_password(pg_cluster, pg_url: str) -> None:  # noqa: ANN001
    secret = "s3cr3t-Pa55"
    url = _with_password(pg_url, secret)
    with PgStore.open(url, name="b", api="sandbox", create=True) as opened:
        assert secret not in opened.where and "127.0.0.1" in opened.where
    closed = f"postgresql://postgres:{secret}@127.0.0.1:{_closed_port()}/nowhere"
    for bad in (closed, _with_password(pg_cluster.url("no_such_db"), secret)):
        with pytest.raises(UsageError) as caught:
            PgStore.open(bad, name="b", api="sandbox", create=True)
        text = f"{caught.value.message} {caught.value.details} {caught.value!r}"
        assert secret not in text and "127.0.0.1" in text and "\n" not in caught.value.message
        assert caught.value.__cause__ is None and caught.value.__suppress_context__
    first = PgStore.open(url, name="b", api="sandbox", create=True)
    try:
        with pytest.raises(LockHeld) as held:
            PgStore.open(url, name="b", api="sandbox", create=False)
        assert secret not in held.value.message
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (first._db.info.backend_pid,))  # type: ignore[union-attr]
        with pytest.raises(LedgerWriteError) as lost:
            first.append_sync(Batch(name="b", manifest="m.yaml"))
        assert secret not in f"{lost.value.message} {lost.value.details}"
    finally:
        first.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when this returns: nothing listens


CHILD = """
import sys
from lumozbatch.core.records import Batch, Intent, Job
from lumozbatch.shell.pg_store import PgStore
store = PgStore.open(sys.argv[1], name="b", api="sandbox", create=True)
store.append_sync(Batch(name="b", manifest="m.yaml", api="sandbox"), Job(
    id="a", job="portraits", index=0, repeat=0, model="flux-sketch-smudge", params={}, variables={},
    filename="portraits/a"))
import trio
trio.run(store.append, Intent(id="a", attempt=1))
print("sent", flush=True)
sys.stdin.read()  # holds the store, its lock and its connection until killed
"""


def test_a_runner_killed_with_its_connection_open_leaves_the_job_ambiguous_and_the_lock_free(pg_url: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, pg_url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"sent\n"
        with pytest.raises(LockHeld):
            PgStore.open(pg_url, name="b", api="sandbox", create=False)
        assert holder(pg_url, name="b", api="sandbox")["pid"] == child.pid  # type: ignore[index]
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    again = _open_when_free(pg_url)
    try:
        assert again.job("a").state is S.AMBIGUOUS and again.job("a").attempts == 1
    finally:
        again.close()


_SCANNED = (
    "SELECT batch_id, job, model, state, retired, COUNT(*), COUNT(*) FILTER (WHERE state = 'failed' AND billed),"
    " SUM(paid_before) FROM lumozbatch.jobs GROUP BY 1, 2, 3, 4, 5"
)
_COUNTED = "SELECT batch_id, job, model, state, retired, n, billed_failed, paid_before FROM lumozbatch.job_counts WHERE n <> 0"


def _counts_agree(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert sorted(conn.execute(_COUNTED).fetchall()) == sorted(conn.execute(_SCANNED).fetchall())


def test_the_counts_table_follows_every_change_and_a_version_1_schema_is_read_then_migrated(pg_url: str) -> None:
    with PgStore.open(pg_url, name="c", api="sandbox", create=True) as store:
        store.append_sync(Batch(name="c", manifest="m.yaml", api="sandbox"), *(job(i, n) for n, i in enumerate("abcd")))
        store.append_sync(Intent(id="a", attempt=1), Accepted(id="a", request_id=1),
                          Failed(id="a", reason="failed on the provider", code="failed", billed=True))
        store.append_sync(Intent(id="b", attempt=1), Ambiguous(id="b", reason="reset"),
                          Reset(id="b", why="resubmit-ambiguous"), Retire(id="c"))
        _counts_agree(pg_url)
        expected = (store.counts(), store.counts_by("job"), store.spend(), store.counts_retired())
        assert store.spend().generations == 2  # a (billed), b (paid before its reset)
    with psycopg.connect(pg_url, autocommit=True) as conn:  # the schema as version 1 left it
        conn.execute("DROP TABLE lumozbatch.job_counts")
        conn.execute("DROP FUNCTION lumozbatch.count_job CASCADE")
        conn.execute("UPDATE lumozbatch.schema_version SET version = 1")
    with PgStore.open_snapshot(pg_url, name="c", api="sandbox") as snap:  # read as it is
        assert (snap.counts(), snap.counts_by("job"), snap.spend(), snap.counts_retired()) == expected
    with PgStore.open(pg_url, name="c", api="sandbox", create=False) as store:  # migrated, backfilled
        assert (store.counts(), store.counts_by("job"), store.spend(), store.counts_retired()) == expected
        store.append_sync(Intent(id="d", attempt=1))
        _counts_agree(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT version FROM lumozbatch.schema_version").fetchall() == [(pg_schema.SCHEMA_VERSION,)]
