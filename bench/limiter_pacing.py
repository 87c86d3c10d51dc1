"""How a fixed window is spent: paced over the window, or burst and then idle.

    python bench/limiter_pacing.py                  # 600 calls / 60 s: 500 jobs, then 2 x 250 on one key
    python bench/limiter_pacing.py --processes 2    # only the shared-key scenario

A sandbox (its own process, ``--rate-limit 600/60``) serves ``lumozbatch apply`` run as the
CLI. Scenario 1: one process. Scenario 2: two processes sharing the key at once (each sees
the other only through ``X-RateLimit-Remaining``). From each run's ``--json`` events (a
``submit`` is a ``run`` call; ``progress``/``completed``/``failed`` follow a ``check``), it
prints the makespan, the calls in the busiest 10 s, the longest stretch with no call while
work was left, and the 429s the sandbox answered.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runner_bench import KEY, SandboxProcess, cli, write_manifest  # noqa: E402

_CALL_EVENTS = {"submit", "progress", "completed", "failed"}


def start_apply(sandbox: SandboxProcess, folder: Path, name: str, jobs: int) -> subprocess.Popen[str]:
    manifest = write_manifest(folder, name, jobs, name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUMOZ")}
    env.update(LUMOZ_API_KEY=KEY, LUMOZ_BASE_URL=sandbox.base_url)
    args = cli() + ["apply", str(manifest), "--json", "--yes", "--concurrency", "32"]
    return subprocess.Popen(args, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def timeline(proc: subprocess.Popen[str]) -> tuple[list[float], float, int]:
    out, _ = proc.communicate()
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    calls = sorted(e["time"] for e in events if e["event"] in _CALL_EVENTS)
    finished = [e for e in events if e["event"] == "finished"]
    if not finished:
        raise SystemExit(f"lumozbatch apply exited {proc.returncode} without finishing")
    return calls, finished[-1]["time"], proc.returncode


def busiest(calls: list[float], span: float = 10.0) -> int:
    best, j = 0, 0
    for i, t in enumerate(calls):
        while calls[j] < t - span:
            j += 1
        best = max(best, i - j + 1)
    return best


def longest_gap(calls: list[float]) -> float:
    return max((b - a for a, b in zip(calls, calls[1:])), default=0.0)


def scenario(label: str, processes: int, jobs: int) -> None:
    sandbox = SandboxProcess("--rate-limit", "600/60", "--latency", "1-2", "--sync-threshold", "0", "--image-scale", "0.0625")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # start on a fresh window, as both figures depend on where in it a run starts
            time.sleep(60 - time.time() % 60 + 0.2)
            procs = [start_apply(sandbox, Path(tmp), f"p{i}", jobs // processes) for i in range(processes)]
            for i, proc in enumerate(procs):
                calls, makespan, code = timeline(proc)
                print(
                    f"{label} process {i + 1}/{processes}: {jobs // processes} jobs, ~{len(calls)} calls, "
                    f"makespan {makespan:5.1f} s, busiest 10 s {busiest(calls):3d} calls, "
                    f"longest idle {longest_gap(calls):4.1f} s, exit {code}"
                )
            print(f"{label} 429s answered by the sandbox: {sandbox.stats()['rate_limited']}")
    finally:
        sandbox.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--processes", type=int, choices=[1, 2], action="append", help="run only this scenario")
    args = parser.parse_args()
    for processes in args.processes or [1, 2]:
        scenario(f"one key, {processes} process{'es' if processes > 1 else ''}:", processes, args.jobs)


if __name__ == "__main__":
    main()
