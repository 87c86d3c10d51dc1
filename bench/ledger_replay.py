"""Benchmark: open (read + repair check + replay) a realistic 100,000-job ledger.

Writes a ledger with, per job, the records a finished batch holds: job (pinned seed, params,
variables, filename) + intent + accepted + completed + downloaded, then times ``Ledger.open``
and ``replay`` in a fresh process (so its peak memory is the replay's own).

    python bench/ledger_replay.py [--jobs 100000] [--repeat 3]

Target: ``Ledger.open`` under 2 s for 100k jobs. Also reports group-commit throughput:
``--appenders`` concurrent trio tasks appending against one appender alone (one fsync each).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_ledger(out: Path, jobs: int) -> int:
    from lumozbatch.core.ledger_codec import encode

    subjects = ["an old fisherman", "a young dancer", "a lighthouse keeper", "a tired astronaut"]
    moods = ["melancholic", "joyful", "stoic", "curious"]
    meta = out / ".lumozbatch"
    meta.mkdir(parents=True, exist_ok=True)
    at = 1_760_000_000.0
    chunks = [encode({"t": "batch", "v": 1, "name": "bench", "manifest": "manifests/bench.yaml", "at": at})]
    ids = []
    for i in range(jobs):
        identity = hashlib.sha256(f"job-{i}".encode()).hexdigest()
        ids.append(identity)
        subject, mood = subjects[i % 4], moods[(i // 4) % 4]
        chunks.append(
            encode(
                {
                    "t": "job",
                    "id": identity,
                    "job": "portraits",
                    "index": i,
                    "repeat": 0,
                    "model": "flux-sketch-smudge",
                    "params": {
                        "prompt": f"Sketch Smudge, a portrait of {subject}, {mood} mood",
                        "aspect_ratio": "1:1",
                        "num_inference_steps": 28,
                        "guidance": 3,
                        "seed": (i * 2654435761) % 2**32,
                        "output_format": "webp",
                        "output_quality": 80,
                    },
                    "variables": {"subject": subject, "mood": mood, "seed": i},
                    "filename": f"portraits/{subject.replace(' ', '-')}-{mood}-s{i}",
                    "known_model": True,
                    "at": at,
                }
            )
        )
    # then the run: interleaved like a real one (a window of jobs in flight at a time)
    for start in range(0, jobs, 64):
        window = ids[start : start + 64]
        for kind in ("intent", "accepted", "completed", "downloaded"):
            for n, identity in enumerate(window, start):
                rid = 212_121_212_121_212 + n
                record: dict = {"t": kind, "id": identity, "at": at + n * 0.01}
                if kind == "intent":
                    record["attempt"] = 1
                elif kind == "accepted":
                    record["request_id"] = rid
                elif kind == "completed":
                    record.update(request_id=rid, url=f"https://lumozai.com/storage/outputs/image_{rid}.webp", output_type="image")
                else:
                    record.update(file=f"portraits/out-{n}.webp", sha256=hashlib.sha256(identity.encode()).hexdigest(), bytes=48_000 + n % 5000)
                chunks.append(encode(record))
    data = b"".join(chunks)
    (meta / "ledger.jsonl").write_bytes(data)
    return len(data)


def _peak_rss_kib() -> int:
    """VmHWM: this process's peak resident set (ru_maxrss would include the parent's, since
    Linux keeps it across fork + exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure(out: Path, repeat: int) -> None:
    from lumozbatch.core.ledger_codec import decode_lines, replay
    from lumozbatch.shell.ledger import Ledger

    base_rss = _peak_rss_kib()
    opens = []
    for _ in range(repeat):
        t = time.perf_counter()
        ledger = Ledger.open(out, create=False)
        opens.append(time.perf_counter() - t)
        counts = ledger.state.counts()
        ledger.close()
        del ledger
    peak_rss = _peak_rss_kib()
    data = (out / ".lumozbatch" / "ledger.jsonl").read_bytes()
    gc.disable()  # as Ledger.open does
    t = time.perf_counter()
    records, _ = decode_lines(data)
    decode_s = time.perf_counter() - t
    t = time.perf_counter()
    replay(records)
    replay_s = time.perf_counter() - t
    gc.enable()
    print(f"records             {len(records):,}")
    print(f"Ledger.open         best {min(opens):.2f} s, worst {max(opens):.2f} s ({repeat} runs)")
    print(f"  decode_lines      {decode_s:.2f} s")
    print(f"  replay            {replay_s:.2f} s")
    print(f"peak RSS (open)     {peak_rss / 1024:.0f} MiB (before: {base_rss / 1024:.0f} MiB)")
    print(f"state               {counts}")


def group_commit(out: Path, appenders: int, per_task: int) -> None:
    import trio

    from lumozbatch.shell.ledger import Ledger

    async def run(tasks: int, each: int) -> tuple[float, int, int]:
        ledger = Ledger.open(out / f"gc-{tasks}", create=True)
        ids = [f"{t}-{i}" for t in range(tasks) for i in range(each)]
        ledger.append_sync(
            {"t": "batch", "v": 1, "name": "gc", "manifest": "m.yaml"},
            *({"t": "job", "id": i, "job": "j", "index": 0, "repeat": 0, "model": "m", "params": {},
               "variables": {}, "filename": i} for i in ids),
        )
        base = ledger.fsync_count

        async def worker(t: int) -> None:
            for i in range(each):
                await ledger.append({"t": "intent", "id": f"{t}-{i}", "attempt": 1})

        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for t in range(tasks):
                nursery.start_soon(worker, t)
        elapsed = time.perf_counter() - start
        fsyncs = ledger.fsync_count - base
        ledger.close()
        return elapsed, tasks * each, fsyncs

    alone = trio.run(run, 1, min(per_task, 500))
    shared = trio.run(run, appenders, per_task)
    for label, (elapsed, n, fsyncs) in (("1 appender", alone), (f"{appenders} appenders", shared)):
        print(f"group commit        {label:>14}: {n / elapsed:8,.0f} appends/s, {n:,} appends in {fsyncs:,} fsyncs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--appenders", type=int, default=64)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure, args.repeat)
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench"
        t = time.perf_counter()
        size = write_ledger(out, args.jobs)
        print(f"jobs                {args.jobs:,}")
        print(f"ledger size         {size / 1e6:.1f} MB (written in {time.perf_counter() - t:.1f} s)")
        sys.stdout.flush()
        subprocess.run(
            [sys.executable, __file__, "--measure", str(out), "--repeat", str(args.repeat)],
            check=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        )
        group_commit(Path(tmp), args.appenders, 50)


if __name__ == "__main__":
    main()
