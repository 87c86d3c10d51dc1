"""Webhooks end to end (SPEC 8): ``lumozbatch apply --webhook-url`` as a user runs it, the
sandbox in its own process posting to the receiver inside ``apply`` on a real loopback socket."""

from __future__ import annotations

import json
import secrets
import socket
import time
from pathlib import Path

import httpx
import pytest

from lumozbatch.errors import LedgerNotFound
from lumozbatch.shell.lockfile import run_in_progress

from e2e_support import (
    assert_nothing_lost_nothing_paid_twice,
    env_for,
    ledger,
    run_cli,
    start_cli,
    write_manifest,
)

pytestmark = pytest.mark.e2e


def _first_planned(out: Path) -> str:
    """The first job of the batch a live run holds, once its plan is in state.db."""
    deadline = time.monotonic() + 20
    while True:
        try:
            jobs = ledger(out).jobs
        except LedgerNotFound:  # the run holds the lock; its batch record is not written yet
            jobs = {}
        if jobs or time.monotonic() > deadline:
            return next(iter(jobs))
        time.sleep(0.05)


def _events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_is_free(port: int) -> bool:
    """Another receiver can listen there (with SO_REUSEADDR, as trio's listeners do: the
    closed connections' TIME_WAIT does not hold a port)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
        except OSError:
            return False
        return True


def _apply(tmp_path: Path, sandbox, name: str, port: int, jobs: int = 12, *extra: str):
    manifest = write_manifest(tmp_path, name, subjects=jobs // 3, seeds=3)
    args = ["apply", str(manifest), "--json", "--yes", "--concurrency", "12",
            "--webhook-url", f"http://127.0.0.1:{port}/lb", *extra]
    done = run_cli(args, env=env_for(sandbox), cwd=tmp_path, timeout=120)
    return done, _events(done.stdout), tmp_path / "outputs" / name


def test_pushed_results_need_no_poll_and_the_port_is_free_after(tmp_path: Path, start_sandbox) -> None:
    sandbox = start_sandbox("--latency", "0.5-1.5", "--sync-threshold", "0")
    port = _free_port()
    done, events, out = _apply(tmp_path, sandbox, "pushed", port)
    assert done.returncode == 0, done.stderr
    hooks = [e for e in events if e["event"] == "webhook"]
    assert [e["result"] for e in hooks] == ["complete"] * 12
    assert {e["http_status"] for e in hooks} == {200}
    stats = sandbox.stats()
    assert stats["calls"].get("check", 0) == 0 and stats["calls"]["run"] == 12
    assert stats["webhook_statuses"] == {"200": 12}
    assert "/hook/" not in done.stdout + done.stderr  # never the path (nor its tag)
    assert_nothing_lost_nothing_paid_twice(sandbox, out, allow_ambiguous=False)
    assert _port_is_free(port)
    # the secret is the batch's, kept private
    secret = out / ".lumozbatch" / "webhook-secret"
    assert secret.stat().st_mode & 0o077 == 0 and secret.read_bytes().hex() not in done.stdout


def test_lost_and_doubled_webhooks_delay_results_never_lose_them(tmp_path: Path, start_sandbox) -> None:
    sandbox = start_sandbox("--latency", "0.5-1.5", "--sync-threshold", "0", "--webhook-drop", "0.3",
                            "--webhook-dup", "0.3", "--seed", "2")
    done, events, out = _apply(tmp_path, sandbox, "lossy", _free_port())
    assert done.returncode == 0, done.stderr
    stats = sandbox.stats()
    assert stats["webhooks_dropped"] > 0 and stats["webhooks_duplicated"] > 0
    assert stats["calls"].get("check", 0) >= stats["webhooks_dropped"]  # the lost ones were polled
    results = [e["result"] for e in events if e["event"] == "webhook"]
    assert results.count("duplicate") == stats["webhooks_duplicated"]
    assert_nothing_lost_nothing_paid_twice(sandbox, out, allow_ambiguous=False)


def test_runs_reset_after_creation_are_relinked_not_resent(tmp_path: Path, start_sandbox) -> None:
    sandbox = start_sandbox("--latency", "0.5-1.5", "--sync-threshold", "0", "--reset-after-create", "0.3",
                            "--seed", "3")
    done, events, out = _apply(tmp_path, sandbox, "resets", _free_port())
    assert done.returncode == 0, done.stderr
    ambiguous = [e for e in events if e["event"] == "ambiguous"]
    relinked = [e for e in events if e["event"] == "webhook" and e["result"] == "relink"]
    assert ambiguous and {e["identity"] for e in relinked} == {e["identity"] for e in ambiguous}
    assert sandbox.stats()["jobs_created"] == 12 and sandbox.stats()["calls"]["run"] == 12
    state = assert_nothing_lost_nothing_paid_twice(sandbox, out, allow_ambiguous=False)
    assert sum(j.relinked for j in state.jobs.values()) == len(ambiguous)
    assert "relinked by their webhooks" in done.stderr  # the summary says so


def test_a_strangers_deliveries_are_refused_and_change_nothing(tmp_path: Path, start_sandbox) -> None:
    sandbox = start_sandbox("--latency", "3-4", "--sync-threshold", "0")
    port = _free_port()
    manifest = write_manifest(tmp_path, "strangers", subjects=2, seeds=2)
    out = tmp_path / "outputs" / "strangers"
    proc = start_cli(["apply", str(manifest), "--json", "--yes", "--webhook-url", f"http://127.0.0.1:{port}/lb"],
                     env=env_for(sandbox), cwd=tmp_path)
    deadline = time.monotonic() + 20
    while run_in_progress(out) != proc.pid and time.monotonic() < deadline:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    identity = _first_planned(out)
    forged = {"request_id": 1, "status": "completed", "output": "https://evil.test/x.png"}
    statuses = []
    with httpx.Client(timeout=5) as client:
        for _ in range(50):  # the receiver may not be listening the very first instant
            try:
                client.get(base + "/")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        tag = secrets.token_urlsafe(32)[:43]
        statuses.append(client.post(f"{base}/lb/hook/{identity}/1/{tag}", json=forged).status_code)
        statuses.append(client.post(f"{base}/lb/hook/{identity}/1", json=forged).status_code)
        statuses.append(client.post(f"{base}/lb/", json=forged).status_code)
        statuses.append(client.get(f"{base}/lb/hook/{identity}/1/{tag}").status_code)
        statuses.append(client.post(f"{base}/lb/hook/x/1/{tag}", content=b"{" * 70_000,
                                    headers={"content-type": "application/json"}).status_code)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert all(400 <= s < 500 for s in statuses), statuses
    hooks = [e for e in _events(stdout) if e["event"] == "webhook"]
    assert [e["result"] for e in hooks] == ["complete"] * 4  # only the provider's reached the ledger
    final = assert_nothing_lost_nothing_paid_twice(sandbox, out, allow_ambiguous=False)
    assert all(j.request_id != 1 and "evil" not in (j.url or "") for j in final.jobs.values())


def test_kill_9_while_deliveries_arrive_then_resume_with_webhooks(tmp_path: Path, start_sandbox) -> None:
    sandbox = start_sandbox("--latency", "0.3-1.5", "--sync-threshold", "0", "--webhook-delay", "0-0.5")
    port = _free_port()
    hook = ["--webhook-url", f"http://127.0.0.1:{port}/lb"]
    manifest = write_manifest(tmp_path, "killed", subjects=6, seeds=3)  # 18 jobs
    out = tmp_path / "outputs" / "killed"
    env = env_for(sandbox)
    for pause in (1.2, 0.8):
        proc = start_cli(["apply", str(manifest), "--quiet", "--concurrency", "6", *hook], env=env, cwd=tmp_path)
        deadline = time.monotonic() + 20
        while run_in_progress(out) != proc.pid and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(pause)
        proc.kill()  # SIGKILL, deliveries in flight
        proc.wait(timeout=10)
        assert_nothing_lost_nothing_paid_twice(sandbox, out, final=False)
    final = run_cli(["resume", str(out), "--quiet", *hook], env=env, cwd=tmp_path, timeout=120)
    assert final.returncode in (0, 1), final.stderr
    state = assert_nothing_lost_nothing_paid_twice(sandbox, out)
    counts = state.counts()
    assert counts["done"] + counts["ambiguous"] == 18, counts
    assert sandbox.stats()["jobs_created"] <= counts["done"] + counts["ambiguous"]
    assert _port_is_free(port)
