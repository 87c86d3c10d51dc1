"""Benchmark: memory and time stay flat as a batch grows (SPEC 4, "Size"). Run by hand:

    python bench/scale_bench.py apply [--sizes 10000 100000]   # minutes: real runs
    python bench/scale_bench.py apply --sizes 2000 --code /tmp/old .   # two versions, one run
    python bench/scale_bench.py big [--jobs 1000000] [--dir D [--reuse]]  # a finished batch, straight into state.db

``apply``: ``lumozbatch apply`` of each size against the instant, unlimited sandbox in its own
process (``--rate-limit 0 --latency 0-0``), the client under ``/usr/bin/time``: wall, jobs/s,
CPU ms per job, peak RSS. Target: the largest size's peak RSS at most 1.3x the smallest's.
``--code DIR ...``: each size is applied once by each source tree (``python -m lumozbatch`` with
the tree on ``PYTHONPATH``; a tree from ``git archive`` of another commit), alternately, so a
before/after comparison shares one machine load. ``--shape``: ``list`` (default) writes one
seed per job, a manifest that itself grows with the batch (100,000 values parsed, validated
and kept with their positions); ``grid`` writes 100 subjects x N/100 numbers, a manifest of
N/100 + 100 values, so that what the run path keeps per job is measured apart from the manifest.

``big``: a ``--jobs``-generation manifest (a 1000 x N matrix, ``grid_manifest``) whose every job is recorded done
in ``state.db`` by this script (rows straight into SQL, an empty output file per job, linked
under its name as apply leaves it), then, each in its own process: ``status``, ``plan`` of
the manifest against an empty folder (fresh) and against the batch, a no-op ``apply`` (it must
send nothing), ``gallery``. Targets: status < 1 s, the no-op apply < 1.5x the fresh plan, peak
RSS < 300 MB each, and a gallery page a browser can open. ``--reuse``: the batch already in
``--dir`` (written by an earlier run) is measured again, not rewritten (minutes at 1,000,000).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runner_bench import KEY, SandboxProcess, cli, write_manifest  # noqa: E402


def timed(args: list[str], *, cwd: Path, env: dict[str, str] | None = None, stdout: Path | None = None) -> dict[str, float]:
    """Run ``args`` under /usr/bin/time: wall s, CPU s, peak RSS MB (of that process alone)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        out = stdout.open("w") if stdout is not None else subprocess.DEVNULL
        try:
            start = time.perf_counter()
            done = subprocess.run(
                ["/usr/bin/time", "-f", "%M %U %S", "-o", report.name, *args],
                cwd=cwd, env=env, stdout=out, stderr=subprocess.PIPE, text=True,
            )
            wall = time.perf_counter() - start
        finally:
            if stdout is not None:
                out.close()
        rss_kib, user, system = report.read().split()[-3:]
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(args[:3])} exited {done.returncode}: {done.stderr[-2000:]}")
    return {"wall": wall, "cpu": float(user) + float(system), "rss": int(rss_kib) / 1024, "rc": done.returncode}


def bench_apply(sizes: list[int], codes: list[Path | None], shape: str = "list") -> None:
    peaks: dict[Path | None, list[float]] = {code: [] for code in codes}
    for size in sizes:
        for code in codes:
            got, runs = apply_once(size, code, shape)
            peaks[code].append(got["rss"])
            print(
                f"apply {size:>7} jobs{'' if code is None else f' ({code})'}: {got['wall']:7.1f} s wall, "
                f"{size / got['wall']:6.1f} jobs/s, {1000 * got['cpu'] / size:5.2f} CPU ms/job, "
                f"peak RSS {got['rss']:.0f} MB (runs sent {runs})"
            )
    for code, rss in peaks.items():
        ratio = rss[-1] / rss[0]
        print(f"peak RSS {sizes[-1]} / {sizes[0]}{'' if code is None else f' ({code})'}: {ratio:.2f}x "
              f"(target <= 1.3x: {'ok' if ratio <= 1.3 else 'MISSED'})")


def apply_once(size: int, code: Path | None, shape: str = "list") -> tuple[dict[str, float], int]:
    """One ``apply`` of ``size`` jobs (a manifest of ``shape``) on a fresh instant sandbox, by
    the source tree ``code`` (None: the installed lumozbatch): its timings, and the runs the
    sandbox saw."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if shape == "grid":
            manifest = grid_manifest(folder, f"apply{size}", size, 100)
        else:
            manifest = write_manifest(folder, f"apply{size}", size, f"scale {size}")
        sandbox = SandboxProcess("--rate-limit", "0", "--latency", "0-0", "--sync-threshold", "1", "--image-scale", "0.01")
        env = {k: v for k, v in os.environ.items() if not k.startswith("LUMOZ")}
        env.update(LUMOZ_API_KEY=KEY, LUMOZ_BASE_URL=sandbox.base_url)
        command = cli()
        if code is not None:
            env["PYTHONPATH"] = str(code.resolve())
            command = [sys.executable, "-m", "lumozbatch"]
        try:
            got = timed(command + ["apply", str(manifest), "--quiet", "--yes", "--concurrency", "64"], cwd=folder, env=env)
            stats = sandbox.stats()
        finally:
            sandbox.stop()
    return got, stats["calls"].get("run", 0)


def write_finished(out: Path, manifest: Path) -> int:
    """Every job of ``manifest`` done in ``out``'s state.db, with an (empty) output on disk."""
    from lumozbatch.core.grid import expand
    from lumozbatch.core.jobstate import JobState
    from lumozbatch.core.ledger_codec import JobRecord
    from lumozbatch.core.records import Batch
    from lumozbatch.manifest_io import load_manifest
    from lumozbatch.shell import sqlite_schema as sql
    from lumozbatch.shell.location import batch_home
    from lumozbatch.shell.results import encode_row
    from lumozbatch.shell.sql_rows import job_row
    from lumozbatch.shell.sqlite_store import SqliteStore, state_path

    loaded = load_manifest(manifest)
    key = batch_home(manifest, loaded.name).manifest_key
    with SqliteStore.open(out, create=True) as store:
        store.append_sync(Batch(name=loaded.name, manifest=str(manifest), api="sandbox", manifest_key=key,
                                max_generations=loaded.max_generations))
    empty = hashlib.sha256(b"").hexdigest()
    db = sqlite3.connect(state_path(out), isolation_level=None)
    db.execute("PRAGMA synchronous = OFF")  # a benchmark fixture, not a ledger write
    made: set[Path] = set()

    def rows(results):  # noqa: ANN001, ANN202
        for n, spec in enumerate(expand(loaded)):
            obj = f".lumozbatch/objects/{spec.identity[:2]}/{spec.identity}.png"
            name = spec.filename + ".png"
            for rel in (obj, name):
                folder = (out / rel).parent
                if folder not in made:
                    folder.mkdir(parents=True, exist_ok=True)
                    made.add(folder)
            (out / obj).touch()
            os.link(out / obj, out / name)
            job = JobRecord(
                identity=spec.identity, job=spec.job, index=spec.index, repeat=spec.repeat, model=spec.model,
                params=spec.params, variables=spec.variables, filename=spec.filename, state=JobState.DONE,
                request_id=n + 1, url=f"http://sandbox/{n}.png", output_type="image", file=name, sha256=empty,
                bytes=0, object=obj, attempts=1,
            )
            results.write(encode_row({  # as a run writes them
                "job": spec.job, "identity": spec.identity, "variables": spec.variables, "model": spec.model,
                "params": spec.params, "request_id": n + 1, "file": name, "object": obj, "sha256": empty, "bytes": 0,
            }))
            yield job_row(n + 1, job)

    results = (out / "results.jsonl").open("wb")
    db.execute("BEGIN")
    db.executemany(sql.UPSERT_JOB, rows(results))
    db.execute("INSERT INTO names (file, identity, shown) SELECT file, identity, seq FROM jobs")
    for statement in sql.RECOUNT:  # rows written straight: counted as the store's writer would
        db.execute(statement)
    db.execute("COMMIT")
    count = db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
    db.close()
    results.close()
    return count


def grid_manifest(folder: Path, name: str, jobs: int, rows: int) -> Path:
    """``jobs`` generations as ``rows`` subjects x ``jobs // rows`` numbers: a manifest of
    ``rows + jobs // rows`` values, however large the batch."""
    cols = max(1, jobs // rows)
    path = folder / f"{name}.yaml"
    path.write_text(f"""version: 1
name: {name}
defaults:
  aspect_ratio: "1:1"
  output_format: png
jobs:
  - id: grid
    model: flux-sketch-smudge
    params:
      prompt: "Sketch Smudge, {{subject}} number {{n}}"
    matrix:
      subject: {json.dumps([f"s{i}" for i in range(rows)])}
      n: {json.dumps(list(range(cols)))}
    filename: "grid/{{subject}}/{{n}}"
""")
    return path


def bench_big(jobs: int, keep: Path | None, *, reuse: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = keep or Path(tmp)
        out = folder / "outputs" / "big"
        if reuse:
            manifest = folder / "big.yaml"
            print(f"measuring the batch already in {out}")
        else:
            manifest = grid_manifest(folder, "big", jobs, 1000)
            start = time.perf_counter()
            count = write_finished(out, manifest)
            print(f"wrote a finished batch of {count} jobs (and their empty outputs) in {time.perf_counter() - start:.0f} s")
        startup = timed(cli() + ["--help"], cwd=folder)
        status = timed(cli() + ["status", str(out)], cwd=folder)
        fresh = timed(cli() + ["plan", str(manifest), "--out", str(folder / "empty"), "--json"], cwd=folder)
        again = timed(cli() + ["plan", str(manifest), "--json"], cwd=folder)
        events = folder / "noop.jsonl"
        noop = timed(cli() + ["apply", str(manifest), "--sandbox", "--json", "--yes"], cwd=folder, stdout=events)
        runs = sum(1 for line in events.read_text().splitlines() if '"event": "submit"' in line)
        gallery = timed(cli() + ["gallery", str(out)], cwd=folder)
        page = (out / "index.html").stat().st_size
    for label, got in (("start-up (--help)", startup), ("status", status), ("plan (fresh)", fresh), ("plan (vs store)", again),
                       ("apply (no-op)", noop), ("gallery", gallery)):
        print(f"{label:16s} {got['wall']:7.2f} s wall, {got['cpu']:7.2f} s CPU, peak RSS {got['rss']:5.0f} MB")
    print(f"no-op apply sent {runs} runs; gallery page {page / 1e6:.1f} MB")
    ratio = noop["wall"] / fresh["wall"]
    print(f"targets: status < 1 s: {'ok' if status['wall'] < 1 else 'MISSED'} "
          f"({status['wall'] - startup['wall']:.2f} s beyond start-up); no-op apply / fresh plan "
          f"{ratio:.2f}x < 1.5x: {'ok' if ratio < 1.5 else 'MISSED'}; peak RSS < 300 MB: "
          f"{'ok' if max(g['rss'] for g in (status, fresh, again, noop, gallery)) < 300 else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("part", choices=["apply", "big"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, help="keep the big batch's files here")
    parser.add_argument("--reuse", action="store_true", help="big: measure the batch already in --dir")
    parser.add_argument("--code", type=Path, nargs="+", help="apply: source trees to compare (default: the installed one)")
    parser.add_argument("--shape", choices=["list", "grid"], default="list",
                        help="apply: one seed per job (the manifest grows too), or 100 subjects x N/100 numbers")
    args = parser.parse_args()
    if args.reuse and args.dir is None:
        parser.error("--reuse needs --dir")
    if args.part == "apply":
        bench_apply(args.sizes, args.code or [None], args.shape)
    else:
        bench_big(args.jobs, args.dir, reuse=args.reuse)


if __name__ == "__main__":
    main()
