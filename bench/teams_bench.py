"""Teams setup (SPEC 9, issue #13 "Measure"): PostgreSQL state and S3 outputs, measured.

    python bench/teams_bench.py throughput [--jobs 2000] [--concurrency 64] [--repeats 2] [--no-profile]
    python bench/teams_bench.py three-machines
    python bench/teams_bench.py pg-latency [--jobs 1000] [--delay-ms 0 1 5]

``throughput``: the scale workload (``--jobs`` generations, a sandbox process answering at
once with tiny images, ``--concurrency`` 64) run by the real CLI (``lumozbatch apply ...
--yes --quiet``, a subprocess, as a user runs it) four ways in one run: SQLite state + local
folder, PostgreSQL state (``--state``) + local folder, SQLite + ``--out s3://`` (moto),
PostgreSQL + S3; each ``--repeats`` times, interleaved. Per run: wall seconds, jobs/s, CPU ms
per job of the lumozbatch process (RUSAGE_CHILDREN), and the CPU the servers spent meanwhile
(sandbox, PostgreSQL, moto: the same two cores). Then one py-spy profile of each non-local
setup: seconds per category (store commits, uploads, API + downloads, ...), thread by thread.

``three-machines``: the issue's scenario with figures: three git clones, one PostgreSQL, one
moto; 30 generations with sandbox latency; runner 1 works, runner 2 exits 4, runner 1 is
killed -9, runner 2 finishes, runner 3 sees all done and sends nothing.

``pg-latency``: postgres+local with the database behind a TCP proxy that delays each way by
``--delay-ms`` (a LAN, a cloud region): what a round trip on the run's path costs per job.

Needs ``pip install -e '.[test]'`` and PostgreSQL's ``initdb``/``pg_ctl``; py-spy for the
profiles (``pip install py-spy``; without it they are skipped). No assertion is timed: the
figures are printed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import queue
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent / "tests" / "e2e"))

from pg_server import Cluster  # noqa: E402  (the tests' throwaway PostgreSQL)
from runner_bench import KEY, SandboxProcess, cli, write_manifest  # noqa: E402
from s3_server import aws_env, s3_client, start_moto, stop_moto  # noqa: E402

SETUPS = ("sqlite+local", "postgres+local", "sqlite+s3", "postgres+s3")
_TICK = os.sysconf("SC_CLK_TCK")


# -- the servers, and what they cost --------------------------------------------------------


def proc_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and its reaped children (a postmaster's backends end there)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / _TICK  # utime stime cutime cstime


@dataclass
class Servers:
    sandbox: SandboxProcess
    cluster: Cluster
    moto: subprocess.Popen[bytes]
    endpoint: str
    bucket: str
    root: Path
    state_url: Callable[[str], str] | None = None  # a database's URL another way (pg-latency's proxy)

    def pids(self) -> dict[str, int]:
        postmaster = int((self.cluster.data / "postmaster.pid").read_text().split()[0])
        return {"sandbox": self.sandbox.proc.pid, "postgres": postmaster, "moto": self.moto.pid}

    def cpu(self) -> dict[str, float]:
        return {name: proc_cpu(pid) for name, pid in self.pids().items()}

    def env(self, state_home: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LUMOZ", "AWS_"))}
        env.update(LUMOZ_API_KEY=KEY, LUMOZ_BASE_URL=self.sandbox.base_url, XDG_STATE_HOME=str(state_home))
        env.update(aws_env(self.endpoint), AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
        return env

    def stop(self) -> None:
        self.sandbox.stop()
        stop_moto(self.moto)
        self.cluster.stop()


def start_servers(root: Path, *sandbox_flags: str) -> Servers:
    cluster = Cluster().start()  # fsync on, as a team's server runs
    moto_dir = root / "moto"
    moto_dir.mkdir()
    moto, endpoint = start_moto(moto_dir)
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    s3_client(endpoint).create_bucket(Bucket=bucket)
    return Servers(SandboxProcess(*sandbox_flags), cluster, moto, endpoint, bucket, root)


# -- throughput ---------------------------------------------------------------------------


@dataclass
class Run:
    setup: str
    wall: float
    cpu: float  # lumozbatch process, user + system
    servers: dict[str, float]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def apply_command(servers: Servers, setup: str, manifest: Path, concurrency: int) -> list[str]:
    args = ["apply", str(manifest), "--yes", "--quiet", "--concurrency", str(concurrency)]
    if setup.startswith("postgres"):
        database = servers.cluster.new_database()
        args += ["--state", servers.state_url(database) if servers.state_url else servers.cluster.url(database)]
    if setup.endswith("s3"):
        args += ["--out", f"s3://{servers.bucket}/{manifest.stem}"]
    return args


def one_run(servers: Servers, setup: str, tag: str, jobs: int, concurrency: int, prefix: list[str] | None = None) -> Run:
    folder = servers.root / tag
    folder.mkdir()
    manifest = write_manifest(folder, tag, jobs, tag)  # a distinct prompt: new jobs every run
    command = (prefix or []) + cli() + apply_command(servers, setup, manifest, concurrency)
    before_cpu, before_servers = _children_cpu(), servers.cpu()
    started = time.perf_counter()
    done = subprocess.run(command, cwd=folder, env=servers.env(servers.root / f"{tag}-xdg"),
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"{setup}: lumozbatch apply exited {done.returncode}: {' '.join(command)}")
    after = servers.cpu()
    spent = {name: after[name] - before_servers[name] for name in after}
    return Run(setup, wall, _children_cpu() - before_cpu, spent)


def _print_runs(runs: list[Run], jobs: int) -> None:
    base = [r.wall for r in runs if r.setup == SETUPS[0]]
    base_wall = sum(base) / len(base)
    print(f"{'setup':16} {'rep':>3} {'wall s':>7} {'jobs/s':>7} {'cpu ms/job':>10} {'x sqlite+local':>14}"
          f"   server cpu s: {'sandbox':>7} {'postgres':>8} {'moto':>6}")
    for i, r in enumerate(runs):
        rep = i // len(SETUPS) + 1
        print(f"{r.setup:16} {rep:3} {r.wall:7.2f} {jobs / r.wall:7.0f} {r.cpu * 1000 / jobs:10.2f} {r.wall / base_wall:14.2f}"
              f"   {'':14}{r.servers['sandbox']:7.2f} {r.servers['postgres']:8.2f} {r.servers['moto']:6.2f}")
    print("mean per setup:")
    for setup in SETUPS:
        mine = [r for r in runs if r.setup == setup]
        wall = sum(r.wall for r in mine) / len(mine)
        cpu = sum(r.cpu for r in mine) / len(mine)
        print(f"  {setup:16} {wall:7.2f} s  {jobs / wall:6.0f} jobs/s  {cpu * 1000 / jobs:6.2f} cpu ms/job  ratio {wall / base_wall:5.2f}")


# -- where the time goes: py-spy's raw stacks, by category ---------------------------------

# The innermost frame that matches names what a thread was doing (tested from the leaf up).
_CATEGORIES = (
    ("PostgreSQL (psycopg round trips)", ("psycopg/", "pg_store.py")),
    ("SQLite (sqlite3 calls)", ("sqlite_store.py", "sqlite_reads.py", "sqlite_schema.py")),
    ("S3 requests (obstore)", ("obstore", "s3_outputs.py")),
    ("results.jsonl appends", ("results.py",)),
    ("local files: write, fsync, rename", ("durable.py", "_fsync", "_finish (lumozbatch/shell/download", "flush_and_close",
                                           "outputs.py")),
    ("store code (shared SQL layer, group commit)", ("sql_store.py", "sql_reads.py", "sql_rows.py", "group_commit.py")),
    ("embed metadata (PIL)", ("provenance", "PIL/")),
    ("API + downloads (httpx, sockets)", ("httpx/", "httpcore/", "h11/", "download.py", "api.py", "transport.py",
                                          "trio/_socket.py", "trio/_highlevel_socket")),
    ("planning, manifest, schema", ("planning.py", "manifest", "jsonschema", "yaml", "lumozbatch/core/")),
    ("imports/start-up", ("<frozen importlib", "_find_and_load")),
    ("trio scheduler, runner bookkeeping", ("trio/", "runner.py", "outcome/")),
)


def _category(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, needles in _CATEGORIES:
            if any(n in frame for n in needles):
                return name
    return "other"


def where_time_goes(raw: Path, rate: int) -> dict[str, Counter[str]]:
    """py-spy's raw stacks (``--idle``: waits included) as seconds per category, main thread
    apart from the worker threads; an idle pool thread and the idle event loop named so."""
    per_thread: dict[str, Counter[str]] = {}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        thread, *frames = stack.split(";")
        if not frames:
            continue
        kind = "main thread (trio)" if "MainThread" in thread else "worker threads"
        if "WorkerThread._work" in frames[-1]:
            key = "(idle in the thread pool)"
        elif "get_events (trio" in frames[-1]:
            key = "(event loop waiting on I/O)"
        else:
            key = _category(frames)
        per_thread.setdefault(kind, Counter())[key] += int(count)
    return per_thread


def profile(servers: Servers, setup: str, jobs: int, concurrency: int, rate: int = 200) -> None:
    spy = shutil.which("py-spy")
    if spy is None:
        print(f"  {setup}: py-spy not installed, no profile")
        return
    raw = servers.root / f"{setup}.spy"
    prefix = [spy, "record", "--idle", "--threads", "--format", "raw", "--rate", str(rate), "-o", str(raw), "--"]
    got = one_run(servers, setup, f"prof-{setup.replace('+', '-')}", jobs, concurrency, prefix)
    print(f"  {setup}: {got.wall:.2f} s wall under py-spy ({rate} samples/s; thread-seconds, waits included)")
    for kind, counts in sorted(where_time_goes(raw, rate).items()):
        busy = sum(n for name, n in counts.items() if not name.startswith("(idle"))
        print(f"    {kind}: {busy / rate:7.2f} thread-s not idle in the pool")
        for name, n in counts.most_common(9):
            print(f"      {name:46} {n / rate:7.2f} s")
    keep = os.environ.get("TEAMS_BENCH_KEEP")
    if keep:  # the raw stacks, for a closer look (py-spy's collapsed format)
        shutil.copy(raw, Path(keep) / raw.name)


def throughput(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="teams-bench-") as tmp:
        servers = start_servers(Path(tmp), "--rate-limit", "0", "--latency", "0-0", "--sync-threshold", "1",
                                "--image-scale", "0.01")
        try:
            print(f"scale workload: {args.jobs} jobs, instant sandbox (own process), concurrency {args.concurrency},"
                  f" real CLI; PostgreSQL fsync on, moto S3; {os.cpu_count()} cores")
            runs = [one_run(servers, setup, f"r{rep}-{setup.replace('+', '-')}", args.jobs, args.concurrency)
                    for rep in range(args.repeats) for setup in SETUPS]
            if runs:
                _print_runs(runs, args.jobs)
            if args.profile:
                print("where the time goes (py-spy, one run of each setup):")
                for setup in args.profile_setups:
                    profile(servers, setup, args.jobs, args.concurrency)
        finally:
            servers.stop()


# -- PostgreSQL over a network: a delaying TCP proxy -----------------------------------------


class DelayProxy:
    """Forwards 127.0.0.1:port to ``target`` holding every chunk ``delay`` seconds each way
    (order kept): PostgreSQL at a LAN's or a cloud region's round trip, this process only."""

    def __init__(self, target: tuple[str, int], delay: float) -> None:
        self.target, self.delay = target, delay
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(self.target)
            for src, dst in ((client, upstream), (upstream, client)):
                chunks: queue.Queue[tuple[float, bytes]] = queue.Queue()
                threading.Thread(target=self._read, args=(src, chunks), daemon=True).start()
                threading.Thread(target=self._write, args=(dst, chunks), daemon=True).start()

    def _read(self, src: socket.socket, chunks: queue.Queue[tuple[float, bytes]]) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            chunks.put((time.monotonic() + self.delay, data))
            if not data:
                return

    @staticmethod
    def _write(dst: socket.socket, chunks: queue.Queue[tuple[float, bytes]]) -> None:
        while True:
            due, data = chunks.get()
            time.sleep(max(0.0, due - time.monotonic()))
            try:
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                dst.sendall(data)
            except OSError:
                return

    def url(self, cluster: Cluster, database: str) -> str:
        return cluster.url(database).replace(f":{cluster.port}/", f":{self.port}/")

    def close(self) -> None:
        self.server.close()


def pg_latency(args: argparse.Namespace) -> None:
    """postgres+local direct, then through the proxy at each ``--delay-ms`` (one way)."""
    with tempfile.TemporaryDirectory(prefix="teams-lat-") as tmp:
        servers = start_servers(Path(tmp), "--rate-limit", "0", "--latency", "0-0", "--sync-threshold", "1",
                                "--image-scale", "0.01")
        try:
            print(f"postgres+local, {args.jobs} jobs, concurrency {args.concurrency}: the database behind a delaying proxy")
            base = one_run(servers, "postgres+local", "lat-direct", args.jobs, args.concurrency)
            print(f"  direct (loopback)     {base.wall:7.2f} s  {args.jobs / base.wall:6.0f} jobs/s")
            for delay in args.delay_ms:
                proxy = DelayProxy(("127.0.0.1", servers.cluster.port), delay / 1000)
                servers.state_url = lambda db, proxy=proxy: proxy.url(servers.cluster, db)
                try:
                    got = one_run(servers, "postgres+local", f"lat-{delay:g}ms", args.jobs, args.concurrency)
                finally:
                    servers.state_url = None
                    proxy.close()
                print(f"  +{2 * delay:g} ms round trip  {got.wall:7.2f} s  {args.jobs / got.wall:6.0f} jobs/s"
                      f"  ({(got.wall - base.wall) * 1000 / args.jobs:5.2f} ms more per job)")
        finally:
            servers.stop()


# -- three machines -----------------------------------------------------------------------

from demo_repo import git_init  # noqa: E402
from e2e_support import write_manifest as e2e_manifest  # noqa: E402

JOBS = 30


def _origin(root: Path) -> Path:
    origin = git_init(root / "origin")
    (origin / "manifests").mkdir()
    e2e_manifest(origin / "manifests", "team-shots", subjects=5, seeds=6)
    git = ["git", "-C", str(origin)]
    subprocess.run([*git, "add", "."], check=True, timeout=30)
    subprocess.run([*git, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "m"], check=True, timeout=30)
    return origin


def _left_files(folder: Path) -> list[str]:
    done = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--ignored", "--untracked-files=all"],
                          check=True, capture_output=True, text=True, timeout=30)
    return done.stdout.splitlines()


class Machines:
    def __init__(self, servers: Servers) -> None:
        self.servers = servers
        origin = _origin(servers.root)
        self.folders = []
        for i in (1, 2, 3):
            folder = servers.root / f"machine{i}"
            subprocess.run(["git", "clone", "-q", str(origin), str(folder)], check=True, timeout=60)
            self.folders.append(folder)
        self.state = servers.cluster.url(servers.cluster.new_database())
        self.out = f"s3://{servers.bucket}/outputs/team-shots"
        self.apply = ["apply", "manifests/team-shots.yaml", "--out", self.out, "--yes", "--quiet", "--concurrency", "4"]

    def env(self, i: int) -> dict[str, str]:
        root = self.servers.root
        env = self.servers.env(root / f"state{i}")
        env.update(LUMOZBATCH_STATE=self.state, HOME=str(root / f"home{i}"), PYTHONUNBUFFERED="1")
        return env

    def run(self, i: int, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(cli() + args, env=self.env(i), cwd=self.folders[i - 1], capture_output=True,
                              text=True, timeout=timeout, check=False)

    def start(self, i: int, args: list[str]) -> subprocess.Popen[str]:
        return subprocess.Popen(cli() + args, env=self.env(i), cwd=self.folders[i - 1],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def counts(self, i: int) -> dict[str, int]:
        got = self.run(i, ["status", "manifests/team-shots.yaml", "--json"], timeout=60)
        if got.returncode != 0:
            return {}
        return json.loads(got.stdout)["counts"]


def _step(steps: list[tuple[str, float]], name: str, started: float) -> float:
    now = time.perf_counter()
    steps.append((name, now - started))
    return now


def _calls(servers: Servers) -> int:
    return sum(servers.sandbox.stats()["calls"].values())


def _run_scenario(m: Machines) -> dict[str, Any]:
    servers, steps, figures = m.servers, [], {}
    t = time.perf_counter()
    first = m.start(1, m.apply)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and first.poll() is None and m.counts(1).get("done", 0) < 3:
        time.sleep(0.2)
    if first.poll() is not None:
        raise SystemExit(f"runner 1 ended (exit {first.returncode}) before runner 2 could meet it")
    t = _step(steps, "runner 1 starts, works until 3 done", t)
    second = m.run(2, m.apply, timeout=60)
    figures["runner 2 exit"], figures["runner 2 message"] = second.returncode, second.stderr.strip()
    t = _step(steps, "runner 2 apply (refused)", t)
    first.kill()
    first.wait(timeout=10)
    at_kill = m.counts(2)
    figures["counts at kill"] = at_kill
    figures["in flight at kill"] = at_kill.get("in_flight", 0) + at_kill.get("ambiguous", 0)
    t = _step(steps, "kill -9 runner 1 + status", t)
    finish = m.run(2, m.apply)
    figures["runner 2 finish exit"] = finish.returncode
    figures["ambiguous after finish"] = m.counts(2).get("ambiguous", 0)
    t = _step(steps, "runner 2 finishes", t)
    if finish.returncode == 1:
        again = m.run(2, [*m.apply, "--resubmit-ambiguous"])
        figures["resubmit exit"] = again.returncode
        t = _step(steps, "runner 2 --resubmit-ambiguous", t)
    calls_before, submissions_before = _calls(servers), servers.sandbox.stats()["total_submissions"]
    third = m.run(3, m.apply[:2] + ["--json"], timeout=60)
    figures["runner 3 exit"] = third.returncode
    figures["runner 3 submit events"] = sum('"event": "submit"' in line for line in third.stdout.splitlines())
    figures["runner 3 calls"] = _calls(servers) - calls_before
    figures["runner 3 submissions"] = servers.sandbox.stats()["total_submissions"] - submissions_before
    _step(steps, "runner 3 apply (nothing to do)", t)
    figures["done (runner 3 status)"] = m.counts(3).get("done", 0)
    figures["steps"] = steps
    return figures


def _check_bucket(m: Machines) -> dict[str, int]:
    s3 = s3_client(m.servers.endpoint)
    prefix = "outputs/team-shots/"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=m.servers.bucket, Prefix=prefix).get("Contents", [])]
    body = s3.get_object(Bucket=m.servers.bucket, Key=prefix + "results.jsonl")["Body"].read().decode()
    rows = [json.loads(line) for line in body.splitlines() if line.strip()]
    latest = {row["identity"]: row for row in rows}
    matching = 0
    for row in latest.values():
        data = s3.get_object(Bucket=m.servers.bucket, Key=prefix + row["file"])["Body"].read()
        matching += hashlib.sha256(data).hexdigest() == row["sha256"]
    stored = [k for k in keys if k.startswith(prefix + ".lumozbatch/objects/")]  # the content-addressed copies
    named = [k for k in keys if k not in stored and not k.endswith(("results.jsonl", "index.html"))]
    return {"objects in the bucket": len(keys), "named outputs": len(named), ".lumozbatch/objects entries": len(stored),
            "results rows": len(rows),
            "distinct identities in results": len(latest), "rows whose sha256 matches the object": matching,
            "index.html present": int(prefix + "index.html" in keys)}


def three_machines(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="teams-3m-") as tmp:
        started = time.perf_counter()
        servers = start_servers(Path(tmp), "--latency", "0.4-1.2", "--sync-threshold", "0", "--image-scale", "0.05")
        try:
            m = Machines(servers)
            print(f"setup (PostgreSQL, moto, sandbox, 3 clones): {time.perf_counter() - started:.2f} s")
            figures = _run_scenario(m)
            stats = servers.sandbox.stats()
            bucket = _check_bucket(m)
            left = {f.name: _left_files(f) for f in m.folders}
        finally:
            servers.stop()
    for name, seconds in figures.pop("steps"):
        print(f"  {name:40} {seconds:6.2f} s")
    for name, value in figures.items():
        print(f"{name}: {value}")
    duplicates = sum(n - 1 for n in stats["submissions"].values() if n > 1)
    print(f"sandbox: {stats['total_submissions']} submissions for {stats['distinct_submissions']} parameter sets;"
          f" duplicates {duplicates} (bound: in flight at kill {figures['in flight at kill']});"
          f" storage saw the API key: {stats['storage_saw_authorization']}")
    for name, value in bucket.items():
        print(f"{name}: {value}")
    print(f"files written in the three folders: {sum(len(v) for v in left.values())} {left if any(left.values()) else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--jobs", type=int, default=2000)
    t.add_argument("--concurrency", type=int, default=64)
    t.add_argument("--repeats", type=int, default=2)
    t.add_argument("--no-profile", dest="profile", action="store_false")
    t.add_argument("--profile-setups", nargs="+", choices=SETUPS, default=list(SETUPS))
    sub.add_parser("three-machines")
    p = sub.add_parser("pg-latency")
    p.add_argument("--jobs", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--delay-ms", type=float, nargs="+", default=[0.0, 1.0, 5.0])
    args = parser.parse_args()
    {"throughput": throughput, "three-machines": three_machines, "pg-latency": pg_latency}[args.what](args)


if __name__ == "__main__":
    main()
