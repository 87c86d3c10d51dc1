"""``lumozbatch apply``/``resume`` as a user runs them: subprocesses, real sockets, signals."""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from lumozbatch.shell.lockfile import run_in_progress

from demo_repo import demo_repo
from e2e_support import (
    KEY,
    _env,
    assert_nothing_lost_nothing_paid_twice,
    env_for,
    ledger,
    results,
    run_cli,
    start_cli,
    write_manifest,
)

pytestmark = pytest.mark.e2e


def _events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_readme_demo_runs_in_process_and_a_second_apply_sends_nothing(tmp_path: Path) -> None:
    manifest = demo_repo(tmp_path)  # a clone of this repository: outputs/ at its top
    first = run_cli(["apply", str(manifest), "--sandbox", "--yes", "--json"], env=env_for_nothing(), cwd=tmp_path, timeout=90)
    assert first.returncode == 0, first.stderr
    out = tmp_path / "outputs" / "sketch-portraits"
    rows = results(out)
    assert len(rows) == 10
    assert all((out / r["file"]).is_file() and r["file"].endswith(".webp") for r in rows)
    assert (out / "index.html").is_file()
    assert "10 of 10 done" in first.stderr
    second = run_cli(["apply", str(manifest), "--sandbox", "--json"], env=env_for_nothing(), cwd=tmp_path, timeout=60)
    assert second.returncode == 0, second.stderr
    kinds = [e["event"] for e in _events(second.stdout)]
    assert "submit" not in kinds and "accepted" not in kinds
    assert len(results(out)) == 10


def env_for_nothing() -> dict[str, str]:
    return _env()


def test_kill_9_at_random_instants_then_resume(tmp_path: Path, start_sandbox) -> None:
    sandbox = start_sandbox("--latency", "0.3-1.2", "--sync-threshold", "0")
    manifest = write_manifest(tmp_path, "killed", subjects=5, seeds=6)  # 30 jobs
    env = env_for(sandbox)
    rng = random.Random(7)
    out = tmp_path / "outputs" / "killed"
    for _ in range(5):
        proc = start_cli(["apply", str(manifest), "--quiet", "--concurrency", "6"], env=env, cwd=tmp_path)
        # The instants count from when the run holds the batch (a slow start-up on a busy
        # machine must not make a kill land before there is a ledger to check).
        deadline = time.monotonic() + 20
        while run_in_progress(out) != proc.pid and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.2, 1.4))
        proc.kill()  # SIGKILL: no cleanup at all
        proc.wait(timeout=10)
        assert_nothing_lost_nothing_paid_twice(sandbox, out, final=False)
    final = run_cli(["resume", str(out), "--quiet"], env=env, cwd=tmp_path, timeout=90)
    assert final.returncode in (0, 1), final.stderr
    state = assert_nothing_lost_nothing_paid_twice(sandbox, out)
    counts = state.counts()
    assert counts["done"] + counts["ambiguous"] == 30, counts
    assert final.returncode == (0 if counts["ambiguous"] == 0 else 1)
    # nothing the sandbox created is forgotten: every creation is a done or ambiguous job
    assert sandbox.stats()["jobs_created"] >= counts["done"]
    assert sandbox.stats()["jobs_created"] <= counts["done"] + counts["ambiguous"]


def test_sigint_stops_gracefully_and_resume_pays_nothing_twice(tmp_path: Path, start_sandbox) -> None:
    sandbox = start_sandbox("--latency", "1-2", "--sync-threshold", "0")
    manifest = write_manifest(tmp_path, "interrupted", subjects=4, seeds=6)  # 24 jobs
    env = env_for(sandbox)
    proc = start_cli(["apply", str(manifest), "--json", "--concurrency", "8"], env=env, cwd=tmp_path)
    assert proc.stdout is not None
    submits = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and submits < 10:
        line = proc.stdout.readline()
        if '"event": "submit"' in line:
            submits += 1
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr.lower()
    assert "resume" in stderr
    out = tmp_path / "outputs" / "interrupted"
    state = ledger(out)
    assert state.counts()["ambiguous"] == 0  # every run sent had its answer recorded
    final = run_cli(["resume", str(manifest), "--quiet"], env=env, cwd=tmp_path, timeout=90)
    assert final.returncode == 0, final.stderr
    assert_nothing_lost_nothing_paid_twice(sandbox, out, allow_ambiguous=False)
    assert sandbox.stats()["jobs_created"] == 24


def test_two_runs_of_one_batch_the_second_exits_4(tmp_path: Path, start_sandbox) -> None:
    sandbox = start_sandbox("--latency", "1-2")
    manifest = write_manifest(tmp_path, "locked", subjects=2, seeds=4)
    env = env_for(sandbox)
    first = start_cli(["apply", str(manifest), "--quiet"], env=env, cwd=tmp_path)
    out_dir = tmp_path / "outputs" / "locked"
    deadline = time.monotonic() + 20
    while run_in_progress(out_dir) != first.pid and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert run_in_progress(out_dir) == first.pid, "the first run never took the lock"
    # Frozen, the first run keeps its lock however long the others take to start: no race.
    first.send_signal(signal.SIGSTOP)
    try:
        second = run_cli(["apply", str(manifest), "--quiet"], env=env, cwd=tmp_path)
        resumed = run_cli(["resume", str(out_dir)], env=env, cwd=tmp_path)
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.returncode == 4, second.stderr
    assert "Error:" in second.stderr and "Traceback" not in second.stderr
    assert resumed.returncode == 4
    first.communicate(timeout=60)
    assert first.returncode == 0


def test_bad_key_exits_3_after_one_request(tmp_path: Path, start_sandbox) -> None:
    sandbox = start_sandbox()
    manifest = write_manifest(tmp_path, "badkey", subjects=2, seeds=3)
    done = run_cli(["apply", str(manifest)], env=env_for(sandbox, key="not-the-key"), cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    assert "Error:" in done.stderr and "401" in done.stderr
    assert "Traceback" not in done.stderr
    assert sandbox.stats()["calls"].get("run", 0) == 1
    assert sandbox.stats()["jobs_created"] == 0


def test_rate_limit_storm_from_competing_clients(tmp_path: Path, start_sandbox) -> None:
    # Two batches and a careless third client share one key's 40-per-2-s window. The careless
    # one first spends a whole window and more (a storm of 429s), then keeps a steady pace:
    # each batch learns of the others' spend only through the headers and the 429s it gets.
    # Both must finish and pay once per generation.
    sandbox = start_sandbox("--rate-limit", "40/2", "--latency", "0.2-0.6", "--sync-threshold", "0")
    env = env_for(sandbox)
    headers = {"Authorization": f"Bearer {KEY}", "Accept": "application/json"}
    stop = threading.Event()

    def check(client: httpx.Client) -> int:
        return client.post(sandbox.base_url + "/api/v4/check", data={"request_id": "1"}, headers=headers).status_code

    with httpx.Client(timeout=5) as client:
        burst: list[int] = []
        while burst.count(429) < 5 and len(burst) < 200:  # bounded
            burst.append(check(client))
    assert burst.count(429) == 5  # the window is spent: the batches start in a storm

    def careless() -> None:
        with httpx.Client(timeout=5) as client:
            for _ in range(1200):  # bounded: at most ~2 minutes
                if stop.is_set():
                    return
                check(client)
                time.sleep(0.12)

    other = threading.Thread(target=careless, daemon=True)
    other.start()
    try:
        a = write_manifest(tmp_path, "storm-a", subjects=3, seeds=5)
        b = write_manifest(tmp_path, "storm-b", subjects=3, seeds=5)
        pa = start_cli(["apply", str(a), "--quiet"], env=env, cwd=tmp_path)
        pb = start_cli(["apply", str(b), "--quiet"], env=env, cwd=tmp_path)
        for proc in (pa, pb):
            _, err = proc.communicate(timeout=90)
            assert proc.returncode == 0, err
    finally:
        stop.set()
        other.join(timeout=10)
    for name in ("storm-a", "storm-b"):
        state = assert_nothing_lost_nothing_paid_twice(sandbox, tmp_path / "outputs" / name, allow_ambiguous=False)
        assert state.counts()["done"] == 15
    stats = sandbox.stats()
    assert stats["jobs_created"] == 30
    assert stats["duplicate_submissions"] == {}


def test_flaky_network_then_resubmit_ambiguous(tmp_path: Path, start_sandbox) -> None:
    sandbox = start_sandbox(
        "--latency", "0.2-0.8", "--sync-threshold", "0", "--error-rate", "0.15",
        "--drop-rate", "0.1", "--truncate-rate", "0.2", "--seed", "11",
    )
    env = env_for(sandbox)
    manifest = write_manifest(tmp_path, "flaky", subjects=5, seeds=5)  # 25 jobs
    out = tmp_path / "outputs" / "flaky"
    first = run_cli(["apply", str(manifest), "--quiet"], env=env, cwd=tmp_path, timeout=90)
    state = assert_nothing_lost_nothing_paid_twice(sandbox, out)
    stats = sandbox.stats()
    assert stats["server_errors"] > 0 and stats["truncated"] > 0
    ambiguous = {j.identity for j in state.jobs.values() if j.state.value == "ambiguous"}
    assert first.returncode == (1 if ambiguous else 0), first.stderr
    if ambiguous:
        assert "ambiguous" in first.stdout + first.stderr
    # A plain re-run leaves the ambiguous ones alone...
    created = sandbox.stats()["jobs_created"]
    again = run_cli(["apply", str(manifest), "--quiet"], env=env, cwd=tmp_path, timeout=90)
    assert sandbox.stats()["jobs_created"] == created
    assert again.returncode == first.returncode
    # ...and --resubmit-ambiguous sends them again, knowingly (at most once more each).
    run_cli(["apply", str(manifest), "--quiet", "--resubmit-ambiguous"], env=env, cwd=tmp_path, timeout=90)
    assert_nothing_lost_nothing_paid_twice(sandbox, out, resubmitted=ambiguous)


def test_failures_unknown_model_and_validation(tmp_path: Path, start_sandbox) -> None:
    sandbox = start_sandbox("--latency", "0.2-0.5", "--sync-threshold", "0")
    extra = """  - id: ghost
    model: no-such-model
    params: {prompt: "x {n}"}
    matrix: {n: [1, 2, 3, 4]}
"""
    manifest = write_manifest(tmp_path, "mixed", subjects=2, seeds=2, extra_jobs=extra)
    env = env_for(sandbox)
    done = run_cli(["apply", str(manifest), "--quiet"], env=env, cwd=tmp_path, timeout=60)
    assert done.returncode == 1, done.stderr
    out = tmp_path / "outputs" / "mixed"
    state = ledger(out)
    assert sandbox.stats()["duplicate_submissions"] == {}
    by_job: dict[str, list[str]] = {}
    for job in state.jobs.values():
        by_job.setdefault(job.job, []).append(job.state.value)
    assert by_job["grid"] == ["done"] * 4
    assert by_job["ghost"] == ["failed"] * 4
    assert {j.code for j in state.jobs.values() if j.job == "ghost"} == {"model_not_found"}
    assert sandbox.stats()["calls"]["run"] == 4 + 1  # the unknown model cost one request
    assert "model_not_found" in done.stdout + done.stderr


def test_failed_generations_are_reported_and_retried_on_request(tmp_path: Path, start_sandbox) -> None:
    sandbox = start_sandbox("--latency", "0.2-0.5", "--sync-threshold", "0", "--fail-rate", "1")
    env = env_for(sandbox)
    manifest = write_manifest(tmp_path, "failing", subjects=1, seeds=3)
    out = tmp_path / "outputs" / "failing"
    done = run_cli(["apply", str(manifest), "--quiet"], env=env, cwd=tmp_path)
    assert done.returncode == 1
    state = ledger(out)
    assert state.counts()["failed"] == 3
    assert all(j.billed for j in state.jobs.values())
    again = run_cli(["apply", str(manifest), "--quiet", "--retry-failed"], env=env, cwd=tmp_path)
    assert again.returncode == 1
    assert "3 of the retried failed jobs had been billed" in again.stdout + again.stderr
    assert "paid again" in again.stdout + again.stderr
    assert sandbox.stats()["jobs_created"] == 6


def test_second_sigint_exits_at_once_and_stays_resumable(tmp_path: Path, start_sandbox) -> None:
    sandbox = start_sandbox("--latency", "1-2", "--sync-threshold", "0")
    manifest = write_manifest(tmp_path, "twice", subjects=4, seeds=5)  # 20 jobs
    env = env_for(sandbox)
    proc = start_cli(["apply", str(manifest), "--json", "--concurrency", "8"], env=env, cwd=tmp_path)
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if '"event": "submit"' in proc.stdout.readline():
            break
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert time.monotonic() - sent < 10
    assert "Traceback" not in stderr
    out = tmp_path / "outputs" / "twice"
    assert_nothing_lost_nothing_paid_twice(sandbox, out, final=False)
    final = run_cli(["resume", str(out), "--quiet"], env=env, cwd=tmp_path, timeout=90)
    state = assert_nothing_lost_nothing_paid_twice(sandbox, out)
    counts = state.counts()
    assert counts["done"] + counts["ambiguous"] == 20
    assert final.returncode == (0 if counts["ambiguous"] == 0 else 1), final.stderr


def test_edited_manifest_reruns_only_what_changed(tmp_path: Path, start_sandbox) -> None:
    sandbox = start_sandbox("--latency", "0.1-0.3", "--sync-threshold", "0")
    env = env_for(sandbox)
    manifest = write_manifest(tmp_path, "edited", subjects=2, seeds=3)  # seeds 1-3
    out = tmp_path / "outputs" / "edited"
    assert run_cli(["apply", str(manifest), "--quiet"], env=env, cwd=tmp_path).returncode == 0
    manifest.write_text(manifest.read_text().replace("seed: [1, 2, 3]", "seed: [2, 3, 4]"))
    # resume finishes the batch as recorded: nothing new is planned from the edited manifest
    resumed = run_cli(["resume", str(out), "--quiet"], env=env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert sandbox.stats()["jobs_created"] == 6
    edited = run_cli(["apply", str(manifest), "--quiet"], env=env, cwd=tmp_path)
    assert edited.returncode == 0, edited.stderr
    assert sandbox.stats()["jobs_created"] == 8  # only the two seed-4 jobs
    assert "2 no longer in the manifest" in edited.stdout + edited.stderr
    state = ledger(out)
    assert sum(1 for j in state.jobs.values() if j.retired) == 2
    # back to the first version: the retired jobs return, already done; nothing is sent
    manifest.write_text(manifest.read_text().replace("seed: [2, 3, 4]", "seed: [1, 2, 3]"))
    back = run_cli(["apply", str(manifest), "--quiet"], env=env, cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    assert sandbox.stats()["jobs_created"] == 8
    assert_nothing_lost_nothing_paid_twice(sandbox, out, allow_ambiguous=False)
