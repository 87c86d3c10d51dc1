"""Benchmark the batch state stores (``lumozbatch.shell.sqlite_store``, ``pg_store``). Run by hand:

    python bench/store_bench.py [--writers 64] [--jobs 5000] [--big 1000000] [--import-jobs 100000]
                                [--store sqlite|pg|both] [--pg-url postgresql://...]

1. steps/s: ``--writers`` concurrent trio tasks carry ``--jobs`` jobs through intent,
   accepted, completed, downloaded (one ``await append`` each, fsync'd commits shared by
   group commit), on each ``--store`` (both: side by side). Target: at least 10,000 steps/s
   with 64 writers. Printed with the CPU time a step (``time.process_time()``: trio's thread
   and the committing one), the load average and, on Linux, the CPU the hypervisor stole
   while it ran (``/proc/stat``'s steal, in % of the machine's CPU time): on a shared
   virtual machine steps/s follow the steal (half the rate at 10%), so compare before/after
   run alternately, and runs with next to no steal. PostgreSQL: the server at ``--pg-url``,
   else a throwaway cluster with fsync on (``tests/pg_server.py``; needs initdb).
2. a ``--big``-job store written straight into SQL (the rows a finished batch holds, in mixed
   states), then, in a fresh process, ``SqliteStore.open_snapshot`` + ``counts()`` + ``spent()``
   + ``failures()``, and ``SqliteStore.open`` + ``counts()``. Targets: status under 1 s, peak
   RSS under 300 MB.
3. import of an ``--import-jobs``-job ``ledger.jsonl`` (finished batch, written like
   ``bench/ledger_replay.py`` writes it) on first open.

``--only steps|big|import`` runs one part; ``--dir`` keeps the files (default: a temp folder).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

BIG_CHILD = """
import sys, time
from pathlib import Path
sys.path.insert(0, {bench!r})
from ledger_replay import _peak_rss_kib
from lumozbatch.core.jobstate import JobState
from lumozbatch.shell.sqlite_store import SqliteStore
out = Path(sys.argv[1])
t = time.perf_counter()
with SqliteStore.open_snapshot(out, live=False) as snap:
    counts = snap.counts()
    t_counts = time.perf_counter() - t
    spent = snap.spent()
    causes = snap.failures()
t_status = time.perf_counter() - t
t = time.perf_counter()
with SqliteStore.open(out, create=False) as store:
    store.counts()
t_open = time.perf_counter() - t
t = time.perf_counter()
with SqliteStore.open_snapshot(out, live=False) as snap:
    pending = sum(1 for _ in snap.iter_jobs([JobState.PENDING], retired=False))
t_stream = time.perf_counter() - t
print(f"snapshot open + counts   {{t_counts:.3f}} s   {{counts}}")
print(f"  + spent + failures     {{t_status:.3f}} s   spent={{spent}}, {{len(causes)}} causes")
print(f"writer open + counts     {{t_open:.3f}} s")
print(f"stream pending jobs      {{t_stream:.3f}} s   ({{pending}} jobs)")
print(f"peak RSS                 {{_peak_rss_kib() / 1024:.0f}} MiB")
"""


def bench_steps(root: Path, writers: int, jobs: int, stores: list[str], pg_url: str | None) -> None:
    for kind in stores:
        if kind == "sqlite":
            from lumozbatch.shell.sqlite_store import SqliteStore

            steps_on(SqliteStore.open(root / "steps", create=True), "sqlite", writers, jobs)
        elif pg_url is not None:
            from lumozbatch.shell.pg_store import PgStore

            steps_on(PgStore.open(pg_url, name=f"bench-{time.time()}", api="bench", create=True), "pg", writers, jobs)
        else:
            sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
            from pg_server import Cluster

            cluster = Cluster(fsync=True).start()
            try:
                bench_steps(root, writers, jobs, ["pg"], cluster.url(cluster.new_database()))
            finally:
                cluster.stop()


def steps_on(store, kind: str, writers: int, jobs: int) -> None:  # noqa: ANN001
    import trio

    from lumozbatch.core.records import Accepted, Batch, Completed, Downloaded, Intent, Job

    ids = [hashlib.sha256(f"job-{i}".encode()).hexdigest() for i in range(jobs)]
    store.append_sync(Batch(name="bench", manifest="m.yaml"), *(
        Job(id=i, job="portraits", index=n, repeat=0, model="flux-sketch-smudge",
            params={"prompt": f"p {n}", "seed": n}, variables={"n": n}, filename=f"p/{n}")
        for n, i in enumerate(ids)
    ))
    before = store.commit_count

    async def carry(worker: int) -> None:
        for n in range(worker, jobs, writers):
            i = ids[n]
            await store.append(Intent(id=i, attempt=1))
            await store.append(Accepted(id=i, request_id=n))
            await store.append(Completed(id=i, request_id=n, url=f"https://x/{n}.webp", output_type="image"))
            await store.append(Downloaded(id=i, file=f"p/{n}.webp", sha256="0" * 64, bytes=48_000))

    async def main() -> float:
        t = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for w in range(writers):
                nursery.start_soon(carry, w)
        return time.perf_counter() - t

    cpu = time.process_time()  # every thread of the process: trio's and the committing one
    ticks = _cpu_ticks()
    elapsed = trio.run(main)
    cpu = time.process_time() - cpu
    steal = _steal_share(ticks, _cpu_ticks())
    commits = store.commit_count - before
    assert store.counts()["done"] == jobs
    store.close()
    steps = 4 * jobs
    load = os.getloadavg()[0]
    print(f"{kind:6} {writers} writers, {steps:,} steps: {steps / elapsed:,.0f} steps/s, "
          f"{cpu / steps * 1e6:.0f} us CPU a step ({elapsed:.2f} s, {commits:,} commits, "
          f"{steps / commits:.1f} steps per commit, load {load:.2f}{steal})")


def _cpu_ticks() -> list[int] | None:
    """The machine's CPU time so far, by kind (``/proc/stat``'s first line), or None."""
    try:
        with open("/proc/stat") as stat:
            return [int(n) for n in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None


def _steal_share(before: list[int] | None, after: list[int] | None) -> str:
    """The share of the machine's CPU time the hypervisor took between two ``_cpu_ticks``."""
    if before is None or after is None or len(after) < 8:
        return ""
    spent = [a - b for a, b in zip(after, before)]
    total = sum(spent[:8])  # user..steal (guest time is counted in user already)
    return f", steal {spent[7] / total:.0%}" if total else ""


def write_big(out: Path, jobs: int) -> None:
    """``jobs`` rows straight into SQL, in the states a big, mostly finished batch holds."""
    import sqlite3

    from lumozbatch.core.jobstate import JobState
    from lumozbatch.core.ledger_codec import JobRecord
    from lumozbatch.core.records import Batch
    from lumozbatch.shell import sqlite_schema as sql
    from lumozbatch.shell.sqlite_store import SqliteStore, state_path

    with SqliteStore.open(out, create=True) as store:
        store.append_sync(Batch(name="big", manifest="m.yaml"))
    db = sqlite3.connect(state_path(out), isolation_level=None)
    db.execute("PRAGMA synchronous = OFF")  # a benchmark fixture, not a ledger write
    states = [JobState.DONE] * 90 + [JobState.PENDING] * 6 + [JobState.FAILED] * 3 + [JobState.AMBIGUOUS]

    def rows(start: int, stop: int):  # noqa: ANN202
        for n in range(start, stop):
            state = states[n % 100]
            job = JobRecord(
                identity=hashlib.sha256(f"job-{n}".encode()).hexdigest(), job=f"j{n % 7}", index=n,
                repeat=0, model="flux-sketch-smudge",
                params={"prompt": f"Sketch Smudge, a portrait {n}", "aspect_ratio": "1:1", "seed": n},
                variables={"n": n}, filename=f"portraits/{n}", state=state,
                request_id=n if state is not JobState.PENDING else None,
                file=f"portraits/{n}.webp" if state is JobState.DONE else None,
                reason=f"cause {n % 4}" if state in (JobState.FAILED, JobState.AMBIGUOUS) else None,
                attempts=0 if state is JobState.PENDING else 1, billed=True if state is JobState.FAILED else None,
            )
            yield sql.job_row(n + 1, job)

    for start in range(0, jobs, 100_000):
        db.execute("BEGIN")
        db.executemany(sql.UPSERT_JOB, rows(start, min(jobs, start + 100_000)))
        db.execute("COMMIT")
    for statement in sql.RECOUNT:  # rows written straight: counted as the store's writer would
        db.execute(statement)
    db.close()


def bench_big(root: Path, jobs: int) -> None:
    out = root / "big"
    t = time.perf_counter()
    write_big(out, jobs)
    size = (out / ".lumozbatch" / "state.db").stat().st_size
    print(f"wrote {jobs:,} job rows in {time.perf_counter() - t:.1f} s ({size / 2**20:.0f} MiB)")
    code = BIG_CHILD.format(bench=str(Path(__file__).resolve().parent))
    subprocess.run([sys.executable, "-c", code, str(out)], check=True)


def bench_import(root: Path, jobs: int) -> None:
    from ledger_replay import write_ledger  # the same fixture as the JSONL ledger's bench

    out = root / "import"
    size = write_ledger(out, jobs)
    child = (
        "import sys, time; sys.path.insert(0, sys.argv[2]); from ledger_replay import _peak_rss_kib\n"
        "from lumozbatch.shell.sqlite_store import SqliteStore\n"
        "t = time.perf_counter(); s = SqliteStore.open(sys.argv[1], create=False); s.close()\n"
        "print(f'import on first open     {time.perf_counter() - t:.2f} s, peak RSS {_peak_rss_kib() / 1024:.0f} MiB')\n"
        "t = time.perf_counter(); s = SqliteStore.open(sys.argv[1], create=False); c = s.counts(); s.close()\n"
        "print(f'next open + counts       {time.perf_counter() - t:.3f} s', c['done'])\n"
    )
    print(f"ledger.jsonl: {jobs:,} jobs, {size / 2**20:.0f} MiB")
    subprocess.run([sys.executable, "-c", child, str(out), str(Path(__file__).resolve().parent)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writers", type=int, default=64)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--import-jobs", type=int, default=100_000)
    parser.add_argument("--only", choices=("steps", "big", "import"))
    parser.add_argument("--dir", type=Path)
    parser.add_argument("--store", choices=("sqlite", "pg", "both"), default="both", help="steps/s on which store")
    parser.add_argument("--pg-url", help="a PostgreSQL database for --store pg (default: a throwaway cluster)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        if args.only in (None, "steps"):
            stores = ["sqlite", "pg"] if args.store == "both" else [args.store]
            bench_steps(root, args.writers, args.jobs, stores, args.pg_url)
        if args.only in (None, "big"):
            bench_big(root, args.big)
        if args.only in (None, "import"):
            bench_import(root, args.import_jobs)


if __name__ == "__main__":
    main()
