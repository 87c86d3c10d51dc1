"""Benchmark: plan a 100,000-job manifest (matrix 100 x 100 x 10) in a subprocess.

Run by hand: ``python bench/plan_100k.py``. Prints wall seconds and the child's peak RSS.
Targets: under 5 s and under 300 MB.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MANIFEST = """\
version: 1
name: plan-100k
jobs:
  - id: grid
    model: flux-sketch-smudge
    params:
      prompt: "Sketch Smudge, {subject} in {place}, {mood} mood"
      aspect_ratio: "1:1"
    matrix:
      subject: SUBJECTS
      place: PLACES
      mood: MOODS
pricing:
  flux-sketch-smudge: 0.025
"""


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "plan-100k.yaml"
        path.write_text(
            MANIFEST.replace("SUBJECTS", json.dumps([f"subject number {i}" for i in range(100)]))
            .replace("PLACES", json.dumps([f"place number {i}" for i in range(100)]))
            .replace("MOODS", json.dumps([f"mood {i}" for i in range(10)])),
            encoding="utf-8",
        )
        cmd = [sys.executable, "-m", "lumozbatch", "plan", "--json", str(path)]
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp, timeout=600)
        seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_mb = usage.ru_maxrss / 1024  # KiB on Linux
    cpu = usage.ru_utime + usage.ru_stime  # unlike wall time, barely moved by other load
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        return 1
    total = json.loads(done.stdout)["total"]
    load = os.getloadavg()[0]
    print(f"plan --json of {total} jobs: {seconds:.2f} s wall, {cpu:.2f} s CPU, peak RSS {peak_mb:.0f} MB (load average {load:.1f})")
    print(f"targets: < 5 s ({'ok' if seconds < 5 else 'MISSED'}), < 300 MB ({'ok' if peak_mb < 300 else 'MISSED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
