"""SPEC 9 as a team meets it: three clones of one repository standing for three machines, one
PostgreSQL and one S3 server. A runner on the first works the batch; a runner on the second
exits 4 naming it; the first is killed -9; the second finishes the batch; the third sees every
job done and its ``apply`` sends nothing. Real servers (a throwaway cluster, moto), real
processes, real signals."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path

import pytest

from demo_repo import git_init
from e2e_support import KEY, assert_nothing_lost_nothing_paid_twice, env_for, run_cli, start_cli, write_manifest

pytestmark = pytest.mark.e2e

JOBS = 30


def _clone(origin: Path, folder: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(origin), str(folder)], check=True, timeout=60)
    return folder


def _origin(tmp_path: Path) -> Path:
    origin = git_init(tmp_path / "origin")
    (origin / "manifests").mkdir()
    write_manifest(origin / "manifests", "team-shots", subjects=5, seeds=6)  # 30 generations
    subprocess.run(["git", "-C", str(origin), "add", "."], check=True, timeout=30)
    subprocess.run(
        ["git", "-C", str(origin), "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "m"],
        check=True, timeout=30,
    )
    return origin


def _untracked(folder: Path) -> list[str]:
    """Whatever the run left in the working folder, ignored files included."""
    done = subprocess.run(
        ["git", "-C", str(folder), "status", "--porcelain", "--ignored", "--untracked-files=all"],
        check=True, capture_output=True, text=True, timeout=30,
    )
    return done.stdout.splitlines()


def _status(env: dict[str, str], cwd: Path) -> dict:
    got = run_cli(["status", "manifests/team-shots.yaml", "--json"], env=env, cwd=cwd, timeout=60)
    assert got.returncode == 0, got.stderr
    return json.loads(got.stdout)


def test_three_machines_one_postgresql_one_bucket_nothing_paid_twice(
    tmp_path: Path, start_sandbox, pg_url: str, moto_server, s3_env: str
) -> None:
    bucket = s3_env  # the AWS variables point at moto: env_for passes them on
    sandbox = start_sandbox("--latency", "0.4-1.2", "--sync-threshold", "0")
    origin = _origin(tmp_path)
    machines = [_clone(origin, tmp_path / f"machine{i}") for i in (1, 2, 3)]
    out = f"s3://{bucket}/outputs/team-shots"

    def env(i: int) -> dict[str, str]:
        # each machine its own state folder and home: nothing local is shared
        return {
            **env_for(sandbox), "LUMOZBATCH_STATE": pg_url,
            "XDG_STATE_HOME": str(tmp_path / f"state{i}"), "HOME": str(tmp_path / f"home{i}"),
        }

    apply = ["apply", "manifests/team-shots.yaml", "--out", out, "--yes", "--quiet", "--concurrency", "4"]
    first = start_cli(apply, env=env(1), cwd=machines[0])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and first.poll() is None:
        seen = run_cli(["status", "manifests/team-shots.yaml", "--json"], env=env(1), cwd=machines[0], timeout=60)
        if seen.returncode == 0 and json.loads(seen.stdout)["counts"].get("done", 0) >= 3:
            break
        time.sleep(0.2)
    assert first.poll() is None, "the first runner ended before the test could collide with it"

    second = run_cli(apply, env=env(2), cwd=machines[1], timeout=60)
    assert second.returncode == 4, second.stderr
    assert f"pid {first.pid}" in second.stderr and "since" in second.stderr, second.stderr

    first.kill()  # SIGKILL: its connection dies, and the server drops its advisory lock
    first.wait(timeout=10)
    at_kill = _status(env(2), machines[1])["counts"]
    in_flight = at_kill["in_flight"] + at_kill["ambiguous"]  # the runs the kill left sent

    finish = run_cli(apply, env=env(2), cwd=machines[1], timeout=120)
    assert finish.returncode in (0, 1), finish.stderr  # 1: jobs left ambiguous by the kill, held
    if finish.returncode == 1:
        again = run_cli([*apply, "--resubmit-ambiguous"], env=env(2), cwd=machines[1], timeout=120)
        assert again.returncode == 0, again.stderr

    sent_before = sum(sandbox.stats()["submissions"].values())
    third = run_cli([*apply[:2], "--json"], env=env(3), cwd=machines[2], timeout=60)  # no --out: the batch knows its bucket
    assert third.returncode == 0, third.stderr
    kinds = {json.loads(line)["event"] for line in third.stdout.splitlines() if line.startswith("{")}
    assert "submit" not in kinds
    assert sum(sandbox.stats()["submissions"].values()) == sent_before
    status = _status(env(3), machines[2])
    assert status["counts"]["done"] == JOBS, status["counts"]

    duplicates = sum(n - 1 for n in sandbox.stats()["submissions"].values() if n > 1)
    assert duplicates <= in_flight, (duplicates, at_kill)

    s3 = moto_server.client()
    rows = [json.loads(line) for line in moto_server.body(bucket, "outputs/team-shots/results.jsonl").splitlines() if line.strip()]
    by_identity = {row["identity"]: row for row in rows}
    assert len(by_identity) == JOBS
    for row in by_identity.values():
        body = moto_server.body(bucket, f"outputs/team-shots/{row['file']}")
        assert hashlib.sha256(body).hexdigest() == row["sha256"]
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="outputs/team-shots/")["Contents"]}
    assert "outputs/team-shots/index.html" in keys
    for folder in machines:
        assert _untracked(folder) == [], f"{folder.name} has files the runs wrote"
    assert KEY not in _database_text(pg_url)  # the API key never reaches the database
    assert all(KEY not in str(r) for r in moto_server.requests(bucket))  # nor the bucket


def _database_text(url: str) -> str:
    """Every row of every table lumozbatch keeps in the database, as text."""
    import psycopg

    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema = 'lumozbatch'"
        ).fetchall()
        assert tables
        return "\n".join(
            str(row) for schema, table in tables for row in conn.execute(f'SELECT * FROM "{schema}"."{table}"')
        )


def test_kill_9_at_random_instants_then_resume_with_the_state_in_postgresql(
    tmp_path: Path, start_sandbox, pg_url: str
) -> None:
    import random

    from lumozbatch.shell.state_choice import StateChoice

    sandbox = start_sandbox("--latency", "0.3-1.2", "--sync-threshold", "0")
    manifest = write_manifest(tmp_path, "killed", subjects=4, seeds=6)  # 24 jobs
    env = {**env_for(sandbox), "LUMOZBATCH_STATE": pg_url}
    out = tmp_path / "outputs" / "killed"
    shared = StateChoice(pg_url)
    rng = random.Random(11)
    for _ in range(4):
        proc = start_cli(["apply", str(manifest), "--quiet", "--concurrency", "6"], env=env, cwd=tmp_path)
        deadline = time.monotonic() + 30
        # the instants count from when the run holds the batch's advisory lock
        while proc.poll() is None and time.monotonic() < deadline:
            if shared.has_batch(out, name="killed") and f"pid {proc.pid}" in str(shared.running(out, name="killed")):
                break
            time.sleep(0.05)
        time.sleep(rng.uniform(0.2, 1.4))
        proc.kill()  # SIGKILL: the server drops the lock with the connection
        proc.wait(timeout=10)
        assert_nothing_lost_nothing_paid_twice(sandbox, out, final=False, state_url=pg_url)
    final = run_cli(["resume", str(out), "--quiet"], env=env, cwd=tmp_path, timeout=120)
    assert final.returncode in (0, 1), final.stderr
    state = assert_nothing_lost_nothing_paid_twice(sandbox, out, state_url=pg_url)
    counts = state.counts()
    assert counts["done"] + counts["ambiguous"] == 24, counts
    assert final.returncode == (0 if counts["ambiguous"] == 0 else 1)
    assert not (out / ".lumozbatch" / "state.db").exists()  # the state is in the database only


def test_a_batch_run_locally_is_not_started_over_in_the_database(tmp_path: Path, start_sandbox, pg_url: str) -> None:
    sandbox = start_sandbox("--latency", "0-0")
    manifest = write_manifest(tmp_path, "local-first", subjects=2, seeds=2)
    env = env_for(sandbox)
    first = run_cli(["apply", str(manifest), "--quiet"], env=env, cwd=tmp_path, timeout=60)
    assert first.returncode == 0, first.stderr
    sent = sum(sandbox.stats()["submissions"].values())
    shared = run_cli(["apply", str(manifest), "--quiet", "--state", pg_url], env=env, cwd=tmp_path, timeout=60)
    assert shared.returncode == 2, shared.stderr
    assert "holds this batch's state from runs without --state" in shared.stderr
    assert "Traceback" not in shared.stderr
    assert sum(sandbox.stats()["submissions"].values()) == sent  # nothing paid again
