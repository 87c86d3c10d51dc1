"""S3 outputs: which client, and what the object store costs a run.

    python bench/s3_bench.py clients [--objects 2000] [--threads 16]
    python bench/s3_bench.py scale [--jobs 2000] [--concurrency 64]

``clients``: import time of each client (a fresh interpreter each), then the upload
throughput of ``--objects`` PNG-sized (~20 KB) objects to a local moto server from trio
worker threads (``trio.to_thread.run_sync``, ``--threads`` at once), each upload confirmed
by a HEAD. ``scale``: the scale workload (a sandbox process answering at once, tiny images,
``--jobs`` jobs at ``--concurrency`` 64) run by the runner into a local folder, then into
``s3://<bucket>/run`` on moto, in one process: the time each took, their ratio, and the
thread time spent in each ``Outputs`` method (where the time goes).

Needs ``pip install -e '.[test]'`` (moto[server] with boto3, obstore); ``clients`` also
measures s3fs when it is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from s3_server import aws_env, start_moto, stop_moto  # noqa: E402  (the tests' moto launcher)

KEY = "bench-key"  # runner_bench's sandbox key

_IMPORTS = {
    "boto3": "import boto3; boto3.client('s3', region_name='us-east-1')",
    "obstore": "import obstore; from obstore.store import S3Store",
    "s3fs": "import s3fs",
}


def import_seconds(module: str) -> float | None:
    code = f"import time; t=time.perf_counter(); {_IMPORTS[module]}; print(time.perf_counter()-t)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    return float(done.stdout) if done.returncode == 0 else None


def _boto3_put(endpoint: str, bucket: str):
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")

    def put(key: str, path: str) -> None:
        with open(path, "rb") as fh:
            client.put_object(Bucket=bucket, Key=key, Body=fh, ContentType="image/png")
        client.head_object(Bucket=bucket, Key=key)

    return put


def _obstore_put(endpoint: str, bucket: str):
    import obstore
    from obstore.store import S3Store

    store = S3Store(bucket, endpoint=endpoint, region="us-east-1", client_options={"allow_http": True})

    def put(key: str, path: str) -> None:
        obstore.put(store, key, Path(path), attributes={"Content-Type": "image/png"})
        obstore.head(store, key)

    return put


def _s3fs_put(endpoint: str, bucket: str):
    import s3fs

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint, "region_name": "us-east-1"})

    def put(key: str, path: str) -> None:
        fs.put_file(path, f"{bucket}/{key}", ContentType="image/png")
        fs.info(f"{bucket}/{key}", refresh=True)

    return put


_MAKERS = {"boto3": _boto3_put, "obstore": _obstore_put, "s3fs": _s3fs_put}


def _bucket(endpoint: str) -> str:
    import boto3

    name = f"bench-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


async def _upload_all(put, paths: list[str], threads: int) -> float:
    limiter = trio.CapacityLimiter(threads)
    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for i, path in enumerate(paths):
            nursery.start_soon(lambda i=i, p=path: trio.to_thread.run_sync(put, f"o/{i:05d}.png", p, limiter=limiter))
    return time.perf_counter() - start


def clients(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(min(args.objects, 200)):  # 200 distinct files, reused: the disk is not measured
            path = Path(tmp, f"{i}.png")
            path.write_bytes(os.urandom(20_000))
            paths.append(str(path))
        paths = [paths[i % len(paths)] for i in range(args.objects)]
        proc, endpoint = start_moto(Path(tmp))
        os.environ.update(aws_env(endpoint))
        try:
            for name, make in _MAKERS.items():
                seconds = import_seconds(name)
                if seconds is None:
                    print(f"{name:8} not installed")
                    continue
                put = make(endpoint, _bucket(endpoint))
                took = trio.run(_upload_all, put, paths, args.threads)
                print(f"{name:8} import {seconds * 1000:6.0f} ms  {args.objects} uploads+HEAD in {took:6.2f} s = {args.objects / took:6.0f}/s")
        finally:
            stop_moto(proc)


class _Timed:
    """An Outputs whose calls are timed (thread seconds per method): where the time goes."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str):
        value = getattr(self.inner, name)
        if not callable(value):
            return value

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return value(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
                self.calls[name] = self.calls.get(name, 0) + 1

        return timed


def run_scale(home: Path, base_url: str, *, jobs: int, concurrency: int, out: str | None = None) -> tuple[float, _Timed]:
    """One run of ``jobs`` new jobs into ``out`` (default: the folder ``home``); wall seconds
    of the run (reconcile + runner), and the timed outputs."""
    from lumozbatch.core.records import Batch, Job
    from lumozbatch.provenance import embed_metadata
    from lumozbatch.shell.api import LumozClient
    from lumozbatch.shell.outputs import open_outputs
    from lumozbatch.shell.ratelimit import SharedLimiter
    from lumozbatch.shell.reconcile import reconcile_outputs
    from lumozbatch.shell.runner import BatchRunner, RunOptions, run_batch
    from lumozbatch.shell.sqlite_store import SqliteStore
    from lumozbatch.shell.transport import ShardedTransport, shard_count

    store = SqliteStore.open(home, create=True)
    store.append_sync(Batch(name="scale", manifest="m.yaml", api="sandbox"))
    records = []
    for i in range(jobs):
        params = {"prompt": "Sketch Smudge, benchmark s3", "aspect_ratio": "1:1", "output_format": "png", "seed": i}
        identity = hashlib.sha256(f"s3-bench-{i}".encode()).hexdigest()
        records.append(Job(id=identity, job="bench", index=i, repeat=0, model="flux-sketch-smudge",
                           params=params, variables={"seed": i}, filename=f"bench/{i}"))
    for start in range(0, jobs, 1000):
        store.append_sync(*records[start : start + 1000])
    outputs = _Timed(open_outputs(out or home, state_home=home))

    async def main() -> None:
        shards = shard_count(concurrency)
        async with httpx.AsyncClient(transport=ShardedTransport(shards, trust_env=False)) as api, \
                httpx.AsyncClient(transport=ShardedTransport(shards, trust_env=False)) as storage:
            client = LumozClient(api, base_url, KEY, SharedLimiter())
            runner = BatchRunner(store, client, storage, home, options=RunOptions(concurrency=concurrency),
                                 embed=embed_metadata, outputs=outputs)
            outcome = await run_batch(runner)
        assert outcome.exit_code == 0, outcome.counts

    try:
        started = time.perf_counter()
        reconcile_outputs(store, outputs)
        trio.run(main)
        return time.perf_counter() - started, outputs
    finally:
        outputs.close()
        store.close()


def _where(label: str, took: float, jobs: int, timed: _Timed, concurrency: int) -> None:
    print(f"{label}: {took:6.2f} s = {jobs / took:6.0f} jobs/s")
    for name, seconds in sorted(timed.seconds.items(), key=lambda kv: -kv[1]):
        print(f"    {name:24} {timed.calls[name]:6} calls  {seconds:7.2f} thread-s  ({seconds / concurrency:5.2f} s of wall at {concurrency} at once)")


def scale(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from runner_bench import SandboxProcess

    with tempfile.TemporaryDirectory() as tmp:
        proc, endpoint = start_moto(Path(tmp))
        os.environ.update(aws_env(endpoint))
        sandbox = SandboxProcess("--rate-limit", "0", "--latency", "0-0", "--sync-threshold", "1", "--image-scale", "0.01")
        try:
            bucket = _bucket(endpoint)
            local, local_t = run_scale(Path(tmp, "local"), sandbox.base_url, jobs=args.jobs, concurrency=args.concurrency)
            remote, remote_t = run_scale(Path(tmp, "s3"), sandbox.base_url, jobs=args.jobs, concurrency=args.concurrency,
                                         out=f"s3://{bucket}/run")
        finally:
            sandbox.stop()
            stop_moto(proc)
    _where("local folder", local, args.jobs, local_t, args.concurrency)
    _where("s3 (moto)   ", remote, args.jobs, remote_t, args.concurrency)
    print(f"ratio: the s3 run took {remote / local:.2f}x the local run's time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    c = sub.add_parser("clients")
    c.add_argument("--objects", type=int, default=2000)
    c.add_argument("--threads", type=int, default=16)
    s = sub.add_parser("scale")
    s.add_argument("--jobs", type=int, default=2000)
    s.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    (clients if args.what == "clients" else scale)(args)


if __name__ == "__main__":
    socket.setdefaulttimeout(30)
    main()
