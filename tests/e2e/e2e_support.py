"""End-to-end helpers (imported by ``conftest.py`` and the tests): the ``lumozbatch`` CLI in subprocesses against a sandbox subprocess.

Everything here is real: sockets on 127.0.0.1, processes killed with signals, the ledger on
disk. The sandbox's own counters (``GET /_sandbox/stats``) are the ground truth for "nothing
was paid twice".
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from lumozbatch.core.ledger_codec import LedgerState
from lumozbatch.sandbox.params import submission_key
from lumozbatch.shell.outputs import OBJECTS_DIR
from lumozbatch.shell.state import open_reads
from lumozbatch.shell.state_choice import StateChoice

KEY = "e2e-key"
REPO = Path(__file__).resolve().parents[2]
MANIFESTS_DIR = REPO / "manifests"


def cli_command() -> list[str]:
    exe = shutil.which("lumozbatch")
    return [exe] if exe else [sys.executable, "-m", "lumozbatch"]


@dataclass
class Sandbox:
    """A ``lumozbatch sandbox`` process on a free loopback port."""

    proc: subprocess.Popen[str]
    base_url: str
    storage_url: str

    def stats(self) -> dict[str, Any]:
        return httpx.get(self.base_url + "/_sandbox/stats", timeout=10).json()

    def submissions(self, model: str, params: dict[str, Any]) -> int:
        return int(self.stats()["submissions"].get(submission_key(model, params), 0))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _parse_banner(line: str) -> tuple[str, str]:
    # "LumozAI sandbox on http://127.0.0.1:PORT [storage http://127.0.0.1:PORT2] key K ..."
    words = line.split()
    base = words[words.index("on") + 1]
    storage = words[words.index("storage") + 1] if "storage" in words else base
    return base, storage


class SandboxFactory:
    """Starts sandboxes; ``close()`` stops every one of them."""

    def __init__(self) -> None:
        self.started: list[Sandbox] = []

    def __call__(self, *flags: str) -> Sandbox:
        args = cli_command() + [
            "sandbox", "--port", "0", "--storage-port", "0", "--api-key", KEY,
            "--image-scale", "0.05", *flags,
        ]
        proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env=_env(), start_new_session=True,
        )
        assert proc.stdout is not None
        deadline = time.monotonic() + 20
        line = ""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("LumozAI sandbox on") or not line:
                break
        if not line.startswith("LumozAI sandbox on"):
            proc.kill()
            raise RuntimeError(f"the sandbox did not start: {line!r}")
        base, storage = _parse_banner(line)
        sandbox = Sandbox(proc, base, storage)
        self.started.append(sandbox)
        return sandbox

    def close(self) -> None:
        for sandbox in self.started:
            sandbox.stop()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUMOZ")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def env_for(sandbox: Sandbox, key: str = KEY) -> dict[str, str]:
    return _env(LUMOZ_API_KEY=key, LUMOZ_BASE_URL=sandbox.base_url)


def run_cli(args: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli_command() + args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def start_cli(args: list[str], *, env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cli_command() + args, env=env, cwd=cwd, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )


def write_manifest(
    folder: Path,
    name: str,
    *,
    subjects: int = 4,
    seeds: int = 5,
    model: str = "flux-sketch-smudge",
    extra_jobs: str = "",
    limits: str = "",
) -> Path:
    """A manifest of ``subjects * seeds`` generations (plus ``extra_jobs``, YAML text)."""
    subject_list = ", ".join(f'"subject {i}"' for i in range(subjects))
    seed_list = ", ".join(str(i) for i in range(1, seeds + 1))
    text = f"""version: 1
name: {name}
defaults:
  aspect_ratio: "1:1"
  output_format: png
jobs:
  - id: grid
    model: {model}
    params:
      prompt: "Sketch Smudge, {{subject}}, for {name}"
      num_inference_steps: 28
    matrix:
      subject: [{subject_list}]
      seed: [{seed_list}]
    filename: "{{job}}/{{subject}}-s{{seed}}"
{extra_jobs}{limits}"""
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def ledger(out_dir: Path, state: str | None = None) -> LedgerState:
    """The batch's state as ``status`` reads it (``state.db``, or the PostgreSQL database
    ``state`` where the batch is the one named as its folder, without the lock), whole: the
    e2e batches are small."""
    reads_now = open_reads(out_dir) if state is None else StateChoice(state).open_reads(out_dir, name=out_dir.name)
    with reads_now as reads:
        state = LedgerState(batch=reads.batch)
        state.jobs = {job.identity: job for job in reads.iter_jobs()}
        state.named = dict(reads.iter_names())
        return state


def results(out_dir: Path) -> list[dict[str, Any]]:
    path = out_dir / "results.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def assert_nothing_lost_nothing_paid_twice(
    sandbox: Sandbox,
    out_dir: Path,
    *,
    allow_ambiguous: bool = True,
    resubmitted: set[str] = frozenset(),
    final: bool = True,
    state_url: str | None = None,
) -> LedgerState:
    """Every job is done (file on disk, hash right), failed, or ambiguous (``final``: else it
    may also be mid-way); and the sandbox created each parameter set at most once
    (``resubmitted`` identities at most twice)."""
    import hashlib

    state = ledger(out_dir, state_url)
    stats = sandbox.stats()
    rows = {r["identity"]: r for r in results(out_dir)}
    for job in state.jobs.values():
        if job.retired:
            continue
        created = int(stats["submissions"].get(submission_key(job.model, job.params), 0))
        limit = 2 if job.identity in resubmitted else 1
        assert created <= limit, f"{job.identity[:12]} created {created} times"
        name = job.state.value
        if name == "done":
            assert job.file is not None
            named = out_dir / job.file
            if not final and not named.exists() and job.object is not None:
                # killed between the "downloaded" record and linking its name: the output is
                # kept, and the next run shows it under its name
                named = out_dir / job.object
            data = named.read_bytes()
            assert hashlib.sha256(data).hexdigest() == job.sha256
            assert created >= 1
            row = rows.get(job.identity)
            if row is not None:
                assert (row["file"], row["sha256"]) == (job.file, job.sha256)
            else:
                # killed between the ledger's "downloaded" and the results row: the next run
                # writes the row from the ledger
                assert not final, f"{job.identity[:12]} is done but has no results row"
        elif name == "ambiguous":
            assert allow_ambiguous, f"{job.identity[:12]} is ambiguous"
        elif final:
            assert name == "failed", f"{job.identity[:12]} left {name}"
    assert not stats["storage_saw_authorization"]
    parts = list(out_dir.rglob("*.part"))
    if not final:
        # killed mid-download: the temporary file stays in the store until the next run sweeps it
        parts = [p for p in parts if OBJECTS_DIR not in p.relative_to(out_dir).as_posix()]
    assert not parts, parts
    return state
