"""Runner benchmark: lumozbatch against a naive client under a tight rate limit, and raw throughput.

    python bench/runner_bench.py            # 500 jobs, 60 calls / 5 s, latency 2-6 s (minutes)
    python bench/runner_bench.py --jobs 120 # a quicker look

Each sandbox runs in its own process (``lumozbatch sandbox``); lumozbatch runs as the CLI
(``lumozbatch apply``), as a user would. Reported for both clients: makespan / ideal, where
ideal = ceil(2 * jobs / limit) windows (one ``run`` and one ``check`` per job), the 429s the
sandbox answered, and ``/check`` calls per job. Then lumozbatch's throughput with no limit at
concurrency 64 (synchronous answers: one ``run`` and one download per job).
Targets: makespan/ideal <= 1.25, zero 429s, throughput >= 200 jobs/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from naive_client import job_params, run_naive  # noqa: E402

KEY = "bench-key"


def cli() -> list[str]:
    exe = shutil.which("lumozbatch")
    return [exe] if exe else [sys.executable, "-m", "lumozbatch"]


class SandboxProcess:
    def __init__(self, *flags: str) -> None:
        args = cli() + ["sandbox", "--port", "0", "--storage-port", "0", "--api-key", KEY, *flags]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("LumozAI sandbox on"):
            self.proc.kill()
            raise SystemExit(f"sandbox did not start: {line!r}")
        self.base_url = line.split()[3]

    def stats(self) -> dict[str, Any]:
        return httpx.get(self.base_url + "/_sandbox/stats", timeout=10).json()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def write_manifest(folder: Path, name: str, jobs: int, tag: str) -> Path:
    # one job per seed: a single matrix axis keeps the manifest tiny whatever the count
    seeds = ", ".join(str(i) for i in range(jobs))
    text = f"""version: 1
name: {name}
defaults:
  aspect_ratio: "1:1"
  output_format: png
jobs:
  - id: bench
    model: flux-sketch-smudge
    params:
      prompt: "Sketch Smudge, benchmark {tag}"
    matrix:
      seed: [{seeds}]
    filename: "{{job}}/{{seed}}"
"""
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def run_lumozbatch(sandbox: SandboxProcess, folder: Path, name: str, jobs: int, concurrency: int) -> dict[str, Any]:
    manifest = write_manifest(folder, name, jobs, name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUMOZ")}
    env.update(LUMOZ_API_KEY=KEY, LUMOZ_BASE_URL=sandbox.base_url)
    start = time.monotonic()
    done = subprocess.run(
        cli() + ["apply", str(manifest), "--json", "--yes", "--concurrency", str(concurrency)],
        cwd=folder, env=env, capture_output=True, text=True,
    )
    wall = time.monotonic() - start
    finished = [json.loads(line) for line in done.stdout.splitlines() if '"event": "finished"' in line]
    if done.returncode != 0 or not finished:
        print(done.stderr[-2000:], file=sys.stderr)
        raise SystemExit(f"lumozbatch apply exited {done.returncode}")
    return {"wall": wall, "run": finished[-1]["time"], "counts": finished[-1]["counts"]}


def report(label: str, makespan: float, ideal: float, stats: dict[str, Any], jobs: int) -> None:
    checks = stats["calls"].get("check", 0) / jobs
    print(
        f"{label:12s} makespan {makespan:7.1f} s  ideal {ideal:5.0f} s  ratio {makespan / ideal:5.2f}"
        f"  429s {stats['rate_limited']:4d}  checks/job {checks:4.2f}"
        f"  runs {stats['calls'].get('run', 0)}  duplicates {len(stats['duplicate_submissions'])}"
    )


def client_ceiling(jobs: int, concurrency: int = 64) -> float:
    """Jobs/s of the runner itself: canned instant answers in-process (no server CPU), the
    real durable ledger, real downloads to disk with provenance, results.jsonl."""
    import hashlib
    import io

    import trio
    from PIL import Image

    from lumozbatch.core.jobspec import JobSpec
    from lumozbatch.core.ledger_codec import pin_job_record
    from lumozbatch.provenance import embed_metadata
    from lumozbatch.shell.api import LumozClient
    from lumozbatch.shell.ledger import Ledger
    from lumozbatch.shell.ratelimit import SharedLimiter
    from lumozbatch.shell.runner import BatchRunner, RunOptions, run_batch

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (90, 60, 30)).save(buf, format="PNG")
    png = buf.getvalue()
    counter = iter(range(1, 10**9))

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v4/run":
            rid = next(counter)
            data = {"request_id": rid, "output": f"http://storage.test/o/{rid}.png", "output_type": "image"}
            return httpx.Response(200, json={"success": True, "data": data})
        return httpx.Response(200, content=png)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        ledger = Ledger.open(out, create=True)
        records: list[dict[str, Any]] = [{"t": "batch", "v": 1, "name": "ceiling", "manifest": "-", "at": time.time()}]
        for i in range(jobs):
            params = {"prompt": f"ceiling {i}", "aspect_ratio": "1:1", "seed": i}
            identity = hashlib.sha256(f"ceiling {i}".encode()).hexdigest()
            spec = JobSpec("bench", i, 0, "flux-sketch-smudge", params, {"seed": i}, identity, f"bench/{i}")
            records.append(pin_job_record(spec, 0))
        ledger.append_sync(*records)

        async def go() -> float:
            async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
                client = LumozClient(http, "http://api.test", KEY, SharedLimiter())
                runner = BatchRunner(ledger, client, http, out, options=RunOptions(concurrency=concurrency), embed=embed_metadata)
                start = trio.current_time()
                outcome = await run_batch(runner)
                assert outcome.exit_code == 0
                return trio.current_time() - start

        try:
            elapsed = trio.run(go)
        finally:
            ledger.close()
    return jobs / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--limit", type=int, default=60)
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--throughput-jobs", type=int, default=2000)
    parser.add_argument("--skip-naive", action="store_true")
    args = parser.parse_args()

    limited = ["--rate-limit", f"{args.limit}/{args.window:g}", "--latency", "2-6", "--sync-threshold", "0", "--image-scale", "0.05"]
    ideal = math.ceil(2 * args.jobs / args.limit) * args.window
    print(f"{args.jobs} jobs, {args.limit} calls per {args.window:g} s, latency 2-6 s, concurrency {args.concurrency}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sandbox = SandboxProcess(*limited)
        try:
            got = run_lumozbatch(sandbox, folder, "limited", args.jobs, args.concurrency)
            stats = sandbox.stats()
        finally:
            sandbox.stop()
        assert got["counts"]["done"] == args.jobs, got["counts"]
        report("lumozbatch", got["run"], ideal, stats, args.jobs)
        print(f"{'':12s} (process wall time incl. start-up and planning: {got['wall']:.1f} s)")

        if not args.skip_naive:
            sandbox = SandboxProcess(*limited)
            try:
                naive = asyncio.run(run_naive(sandbox.base_url, KEY, [job_params(i) for i in range(args.jobs)], args.concurrency))
                stats = sandbox.stats()
            finally:
                sandbox.stop()
            report("naive", naive.makespan, ideal, stats, args.jobs)
            print(f"{'':12s} (done {naive.done}, failed {naive.failed}; storage saw the API key: {stats['storage_saw_authorization']})")

        sandbox = SandboxProcess("--rate-limit", "0", "--latency", "0-0", "--sync-threshold", "1", "--image-scale", "0.01")
        try:
            got = run_lumozbatch(sandbox, folder, "throughput", args.throughput_jobs, 64)
            stats = sandbox.stats()
        finally:
            sandbox.stop()
        assert got["counts"]["done"] == args.throughput_jobs, got["counts"]
        print(
            f"throughput   {args.throughput_jobs / got['run']:7.1f} jobs/s  ({args.throughput_jobs} jobs in {got['run']:.1f} s of run,"
            f" {got['wall']:.1f} s wall incl. planning; runs {stats['calls'].get('run', 0)}, checks {stats['calls'].get('check', 0)})"
        )
    print(f"ceiling      {client_ceiling(args.throughput_jobs):7.1f} jobs/s  (the runner alone: canned answers in-process, real ledger and files)")


if __name__ == "__main__":
    main()
