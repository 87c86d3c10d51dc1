"""The durable ledger (lock, fsync, group commit, torn-tail repair) and results.jsonl."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import trio

from lumozbatch.core.jobstate import IllegalTransition, JobState
from lumozbatch.core.ledger_codec import LedgerCorrupt, encode
from lumozbatch.errors import LedgerNotFound, LockHeld, UsageError
from lumozbatch.shell import ledger as ledger_module
from lumozbatch.shell.ledger import (
    Ledger,
    LedgerWriteError,
    ledger_path,
    read_state,
)
from lumozbatch.shell.lockfile import run_in_progress
from lumozbatch.shell.results import append_result, read_results, results_path

BATCH = {"t": "batch", "v": 1, "name": "b", "manifest": "m.yaml"}


def job(identity: str) -> dict[str, Any]:
    return {
        "t": "job",
        "id": identity,
        "job": "portraits",
        "index": 0,
        "repeat": 0,
        "model": "flux-sketch-smudge",
        "params": {"prompt": "a cat", "seed": 1},
        "variables": {},
        "filename": f"portraits/{identity}",
        "known_model": True,
    }


def lines(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in ledger_path(out).read_bytes().splitlines()]


# -- open, create, lock ----------------------------------------------------------------------


def test_open_without_a_ledger_refuses_and_creates_nothing(tmp_path: Path) -> None:
    out = tmp_path / "outputs" / "b"
    with pytest.raises(LedgerNotFound) as info:
        Ledger.open(out, create=False)
    assert info.value.exit_code == 2 and "no ledger in" in info.value.message
    assert not out.exists()
    with pytest.raises(LedgerNotFound):
        read_state(out)


def test_create_append_sync_and_reopen(tmp_path: Path) -> None:
    out = tmp_path / "outputs" / "b"
    with Ledger.open(out, create=True) as ledger:
        assert ledger.state.batch is None and ledger.state.jobs == {}
        ledger.append_sync(BATCH, job("a"), job("b"))
        ledger.append_sync({"t": "intent", "id": "a", "attempt": 1})
        assert ledger.state.jobs["a"].state is JobState.SUBMITTING
        assert ledger.fsync_count == 2
    assert ledger.closed
    assert run_in_progress(out) is None  # a clean close leaves no pid behind
    written = lines(out)
    assert [r["t"] for r in written] == ["batch", "job", "job", "intent"]
    assert all(isinstance(r["at"], float) for r in written)  # stamped when missing
    with Ledger.open(out, create=False) as again:
        assert again.state.batch is not None and again.state.batch["name"] == "b"
        # the intent never got an answer recorded: after a restart it is ambiguous
        assert again.state.jobs["a"].state is JobState.AMBIGUOUS
        assert again.state.jobs["b"].state is JobState.PENDING


def test_an_output_folder_that_is_a_file_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("not a folder")
    with pytest.raises(UsageError, match="cannot use .*taken as the output folder"):
        Ledger.open(tmp_path / "taken", create=True)


def test_an_illegal_append_raises_and_writes_nothing(tmp_path: Path) -> None:
    with Ledger.open(tmp_path, create=True) as ledger:
        ledger.append_sync(BATCH, job("a"))
        before = ledger_path(tmp_path).read_bytes()
        with pytest.raises(IllegalTransition):
            ledger.append_sync({"t": "intent", "id": "a", "attempt": 1}, {"t": "downloaded", "id": "a", "file": "x"})
        assert ledger_path(tmp_path).read_bytes() == before
        assert ledger.state.jobs["a"].state is JobState.PENDING


def test_a_second_open_in_the_same_process_is_refused_until_closed(tmp_path: Path) -> None:
    first = Ledger.open(tmp_path, create=True)
    with pytest.raises(LockHeld) as info:
        Ledger.open(tmp_path, create=True)
    assert info.value.exit_code == 4
    assert f"pid {os.getpid()}" in info.value.message
    first.close()
    Ledger.open(tmp_path, create=False).close()


HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from lumozbatch.shell.ledger import Ledger
    ledger = Ledger.open(Path(sys.argv[1]), create=True)
    ledger.append_sync({"t": "batch", "v": 1, "name": "b", "manifest": "m.yaml"})
    ledger.append_sync({"t": "job", "id": "x", "job": "j", "index": 0, "repeat": 0,
                        "model": "m", "params": {}, "variables": {}, "filename": "x"})
    ledger.append_sync({"t": "intent", "id": "x", "attempt": 1})
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
            Ledger.open(out, create=False)
        assert f"pid {proc.pid}" in info.value.message
        # status-like readers need no lock; the run is live, so its run is merely on the wire
        assert run_in_progress(out) == proc.pid
        assert read_state(out).jobs["x"].state is JobState.SUBMITTING
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert run_in_progress(out) is None
        assert read_state(out).jobs["x"].state is JobState.AMBIGUOUS
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    with Ledger.open(out, create=False) as ledger:  # the kernel released the lock
        # killed between sending and recording: the job is ambiguous, never silently re-sent
        assert ledger.state.jobs["x"].state is JobState.AMBIGUOUS
        assert ledger.state.jobs["x"].attempts == 1


# -- torn tail ---------------------------------------------------------------------------------


def test_torn_last_record_is_cut_off_at_open(tmp_path: Path) -> None:
    with Ledger.open(tmp_path, create=True) as ledger:
        ledger.append_sync(BATCH, job("a"), {"t": "intent", "id": "a", "attempt": 1})
        ledger.append_sync({"t": "accepted", "id": "a", "request_id": 99})
    path = ledger_path(tmp_path)
    good = path.read_bytes()
    half = encode({"t": "completed", "id": "a", "request_id": 99, "url": "http://x/o.png"})
    path.write_bytes(good + half[: len(half) // 2])
    assert read_state(tmp_path).jobs["a"].state is JobState.SUBMITTED  # readers ignore it
    assert path.read_bytes() != good  # ... without repairing
    with Ledger.open(tmp_path, create=False) as ledger:
        assert ledger.repaired_bytes == len(half) // 2
        assert ledger.state.jobs["a"].state is JobState.SUBMITTED
        assert ledger.state.jobs["a"].request_id == 99
        assert path.read_bytes() == good
        ledger.append_sync({"t": "completed", "id": "a", "request_id": 99, "url": "http://x/o.png"})
    assert read_state(tmp_path).jobs["a"].state is JobState.COMPLETED


def test_damage_before_the_last_line_is_refused_and_unlocks(tmp_path: Path) -> None:
    with Ledger.open(tmp_path, create=True) as ledger:
        ledger.append_sync(BATCH, job("a"))
    path = ledger_path(tmp_path)
    good = path.read_bytes()
    path.write_bytes(good.replace(b'"job"', b'"jo\x00', 1) + encode({"t": "intent", "id": "a", "attempt": 1}))
    with pytest.raises(LedgerCorrupt) as info:
        Ledger.open(tmp_path, create=False)
    assert info.value.line_no == 2 and str(path) in info.value.message
    path.write_bytes(good)
    Ledger.open(tmp_path, create=False).close()  # the failed open released the lock


# -- group commit --------------------------------------------------------------------------------


async def test_concurrent_appends_share_fsyncs_and_keep_call_order(tmp_path: Path) -> None:
    n = 200
    ledger = Ledger.open(tmp_path, create=True)
    ledger.append_sync(BATCH, *(job(f"j{i}") for i in range(n)))
    base = ledger.fsync_count
    calls: list[str] = []

    async def life(identity: str) -> None:
        for record in (
            {"t": "intent", "id": identity, "attempt": 1},
            {"t": "accepted", "id": identity, "request_id": 1},
            {"t": "completed", "id": identity, "url": "http://x/o.png"},
        ):
            calls.append(f"{identity}:{record['t']}")
            await ledger.append(record)
            # once append returns, the record is on disk
            assert f'"id":"{identity}"'.encode() in ledger_path(tmp_path).read_bytes()

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(life, f"j{i}")
    fsyncs = ledger.fsync_count - base
    assert fsyncs <= 12, fsyncs  # 600 appends, a handful of shared writes
    written = [f"{r['id']}:{r['t']}" for r in lines(tmp_path) if r["t"] != "job" and r["t"] != "batch"]
    assert written == calls  # exactly the order append() was called in
    assert ledger.state.counts()["completed"] == n
    ledger.close()
    assert read_state(tmp_path).counts()["completed"] == n


async def test_append_is_not_torn_by_cancellation(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path, create=True)
    ledger.append_sync(BATCH, job("a"), job("b"))
    with trio.CancelScope() as scope:
        scope.cancel()
        await ledger.append({"t": "intent", "id": "a", "attempt": 1})  # completes, shielded
    assert read_state(tmp_path).jobs["a"].state is JobState.SUBMITTING  # on disk, run live
    assert read_state(tmp_path, live=False).jobs["a"].state is JobState.AMBIGUOUS
    ledger.close()


async def test_run_writer_flushes_when_the_nursery_is_cancelled(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path, create=True)
    ledger.append_sync(BATCH, job("a"))
    async with trio.open_nursery() as nursery:
        await nursery.start(ledger.run_writer)
        nursery.start_soon(ledger.append, {"t": "intent", "id": "a", "attempt": 1})
        await trio.sleep(0)
        nursery.cancel_scope.cancel()
    await ledger.flush()
    assert [r["t"] for r in lines(tmp_path)][-1] == "intent"
    ledger.close()


async def test_a_failed_write_stops_every_later_append(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = Ledger.open(tmp_path, create=True)
    ledger.append_sync(BATCH, job("a"))
    good = ledger_path(tmp_path).read_bytes()

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ledger_module.os, "fsync", full_disk)
    with pytest.raises(LedgerWriteError) as info:
        await ledger.append({"t": "intent", "id": "a", "attempt": 1})
    assert "No space left" in info.value.message
    monkeypatch.undo()
    assert ledger_path(tmp_path).read_bytes() == good  # the partial write was cut off
    with pytest.raises(LedgerWriteError):
        await ledger.append({"t": "retire", "id": "a"})
    with pytest.raises(LedgerWriteError):
        ledger.append_sync({"t": "retire", "id": "a"})
    ledger.close()


def test_append_sync_turns_a_disk_error_into_a_ledger_write_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = Ledger.open(tmp_path, create=True)
    monkeypatch.setattr(ledger_module.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(5, "I/O error")))
    with pytest.raises(LedgerWriteError, match="I/O error"):
        ledger.append_sync(BATCH)
    monkeypatch.undo()
    assert ledger.state.batch is None
    ledger.close()


# -- results.jsonl ---------------------------------------------------------------------------------


def row(identity: str, **extra: Any) -> dict[str, Any]:
    base = {
        "job": "portraits",
        "identity": identity,
        "variables": {"subject": "cat"},
        "model": "flux-sketch-smudge",
        "params": {"prompt": "a cat", "seed": 3},
        "request_id": 5,
        "file": f"portraits/{identity}.png",
        "sha256": "00" * 32,
        "bytes": 10,
    }
    base.update(extra)
    return base


def test_results_round_trip_and_torn_line(tmp_path: Path) -> None:
    assert read_results(tmp_path) == []
    append_result(tmp_path, row("a"))
    append_result(tmp_path, row("b"))
    path = results_path(tmp_path)
    path.write_bytes(path.read_bytes() + b'{"job":"portr')  # a crash mid-append
    assert [r["identity"] for r in read_results(tmp_path)] == ["a", "b"]
    append_result(tmp_path, row("c"))  # cuts the torn line off first
    assert [r["identity"] for r in read_results(tmp_path)] == ["a", "b", "c"]
    assert path.read_bytes().count(b"\n") == 3


def test_results_keep_the_latest_row_per_output(tmp_path: Path) -> None:
    append_result(tmp_path, row("a", bytes=1))
    append_result(tmp_path, row("b"))
    append_result(tmp_path, row("a", bytes=2))  # downloaded again after a crash
    got = read_results(tmp_path)
    assert [(r["identity"], r["bytes"]) for r in got] == [("a", 2), ("b", 10)]


def test_results_rows_need_the_spec_keys(tmp_path: Path) -> None:
    incomplete = row("a")
    del incomplete["sha256"]
    with pytest.raises(ValueError, match="sha256"):
        append_result(tmp_path, incomplete)
    assert not results_path(tmp_path).exists()


def test_results_from_many_threads_never_cut_each_other(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: append_result(tmp_path, row(f"id{i}", note="x" * (i * 37 % 3000))), range(200)))
    assert sorted(r["identity"] for r in read_results(tmp_path)) == sorted(f"id{i}" for i in range(200))


def test_resubmitting_a_job_left_submitting_by_a_crash_keeps_the_ledger_readable(tmp_path: Path) -> None:
    """kill -9 between a run's intent and its answer leaves SUBMITTING on disk (ambiguous at
    replay); ``--resubmit-ambiguous`` then writes ``reset``. The next open must accept it,
    not call the ledger damaged (which would lock the user out of every paid result)."""
    from lumozbatch.shell.planning import plan_resume

    out = tmp_path / "b"
    ident = "a" * 64
    with Ledger.open(out, create=True) as ledger:
        ledger.append_sync(BATCH, job(ident), {"t": "intent", "id": ident, "attempt": 1})
    # the crashed run never recorded an answer
    with Ledger.open(out, create=False) as ledger:
        assert ledger.state.jobs[ident].state is JobState.AMBIGUOUS
        plan = plan_resume(ledger.state, resubmit_ambiguous=True)
        assert [r.TYPE for r in plan.records] == ["reset"]
        ledger.append_sync(*plan.records)
        ledger.append_sync({"t": "intent", "id": ident, "attempt": 2})
        ledger.append_sync({"t": "accepted", "id": ident, "request_id": 7})
    with Ledger.open(out, create=False) as ledger:
        rec = ledger.state.jobs[ident]
        assert rec.state is JobState.SUBMITTED and rec.request_id == 7 and rec.attempts == 2
    assert read_state(out, live=False).jobs[ident].state is JobState.SUBMITTED
