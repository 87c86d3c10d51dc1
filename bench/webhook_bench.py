"""Webhook benchmark: the same workload polled and with webhooks, side by side; then lost and
duplicated webhooks, and runs reset after the job was created.

    python bench/webhook_bench.py             # 120 jobs, 30 calls / 3 s, latency 2-6 s
    python bench/webhook_bench.py --jobs 40   # a quicker look

Each sandbox runs in its own process (``lumozbatch sandbox``), and lumozbatch as the CLI
(``lumozbatch apply --json``), as a user would; with webhooks the sandbox posts to the
receiver inside ``apply`` on loopback (``--webhook-url http://127.0.0.1:PORT/lb``). Reported
per workload: makespan (the run's own clock), API calls per job (``run`` + ``check``, from
the sandbox), 429s, duplicate submissions, webhooks received and jobs relinked.
Targets: with webhooks, makespan <= 0.75x the polled one, <= 1.1 calls per job, no 429 and no
duplicate; lossy webhooks: every job done; resets: every reset job relinked, exit 0.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runner_bench import KEY, SandboxProcess, cli, write_manifest  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def apply(sandbox: SandboxProcess, folder: Path, name: str, jobs: int, concurrency: int,
          webhooks: bool) -> dict[str, Any]:
    manifest = write_manifest(folder, name, jobs, name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUMOZ")}
    env.update(LUMOZ_API_KEY=KEY, LUMOZ_BASE_URL=sandbox.base_url)
    args = cli() + ["apply", str(manifest), "--json", "--yes", "--concurrency", str(concurrency)]
    if webhooks:
        args += ["--webhook-url", f"http://127.0.0.1:{free_port()}/lb"]
    done = subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    finished = [e for e in events if e["event"] == "finished"]
    if not finished:
        print(done.stderr[-2000:], file=sys.stderr)
        raise SystemExit(f"lumozbatch apply exited {done.returncode} without finishing")
    hooks = [e for e in events if e["event"] == "webhook"]
    return {
        "exit": done.returncode,
        "makespan": finished[-1]["time"],
        "counts": finished[-1]["counts"],
        "received": len(hooks),
        "relinked": sum(1 for e in hooks if e["result"] == "relink"),
        "ambiguous_events": sum(1 for e in events if e["event"] == "ambiguous"),
    }


def workload(label: str, flags: list[str], args: argparse.Namespace, folder: Path, webhooks: bool) -> dict[str, Any]:
    sandbox = SandboxProcess(*flags)
    try:
        got = apply(sandbox, folder, label, args.jobs, args.concurrency, webhooks)
        stats = sandbox.stats()
    finally:
        sandbox.stop()
    calls = stats["calls"]
    got.update(
        runs=calls.get("run", 0), checks=calls.get("check", 0),
        calls_per_job=(calls.get("run", 0) + calls.get("check", 0)) / args.jobs,
        rate_limited=stats["rate_limited"], duplicates=len(stats["duplicate_submissions"]),
        created=stats["jobs_created"], dropped=stats["webhooks_dropped"],
        doubled=stats["webhooks_duplicated"],
    )
    done = got["counts"].get("done", 0)
    print(
        f"{label:10s} makespan {got['makespan']:6.1f} s  calls/job {got['calls_per_job']:4.2f}"
        f" (runs {got['runs']}, checks {got['checks']})  429s {got['rate_limited']}"
        f"  duplicates {got['duplicates']}  done {done}/{args.jobs}  exit {got['exit']}"
        f"  webhooks {got['received']} (lost {got['dropped']}, doubled {got['doubled']})"
        f"  ambiguous {got['ambiguous_events']} relinked {got['relinked']}",
        flush=True,
    )
    return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=120)
    parser.add_argument("--limit", type=int, default=30)
    parser.add_argument("--window", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    base = ["--rate-limit", f"{args.limit}/{args.window:g}", "--latency", "2-6", "--sync-threshold", "0",
            "--image-scale", "0.05"]
    print(f"{args.jobs} jobs, {args.limit} calls per {args.window:g} s, latency 2-6 s, concurrency {args.concurrency}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        polled = workload("polled", base, args, folder, webhooks=False)
        pushed = workload("webhooks", base, args, folder, webhooks=True)
        lossy = workload("lossy", base + ["--webhook-drop", "0.2", "--webhook-dup", "0.2"], args, folder, webhooks=True)
        resets = workload("resets", base + ["--reset-after-create", "0.15"], args, folder, webhooks=True)
    ratio = pushed["makespan"] / polled["makespan"]
    print(f"webhooks / polled makespan: {ratio:.2f} (target <= 0.75)")
    verdicts = {
        "makespan <= 0.75x polled": ratio <= 0.75,
        "<= 1.1 calls per job": pushed["calls_per_job"] <= 1.1,
        "no 429": pushed["rate_limited"] == 0,
        "no duplicate": all(w["duplicates"] == 0 for w in (pushed, lossy, resets)),
        "lossy: every job done": lossy["counts"].get("done") == args.jobs,
        "resets: every reset relinked, exit 0": resets["exit"] == 0 and resets["relinked"] == resets["ambiguous_events"],
    }
    for what, ok in verdicts.items():
        print(f"  {'ok  ' if ok else 'MISS'} {what}")


if __name__ == "__main__":
    main()
