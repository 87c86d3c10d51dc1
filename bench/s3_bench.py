"""S3 outputs: which client, and what the object store costs a run.

    python bench/s3_bench.py clients [--objects 2000] [--threads 16]
    python bench/s3_bench.py scale [--jobs 2000] [--concurrency 64]

``clients``: import time of each client (a fresh interpreter each), then the upload
throughput of ``--objects`` PNG-sized (~20 KB) objects to a local moto server from trio
worker threads (``trio.to_thread.run_sync``, ``--threads`` at once), each upload confirmed
by a HEAD, as ``S3Outputs.keep`` does. ``scale``: the scale workload (instant sandbox,
``--jobs`` jobs) into a local folder and into ``s3://bench/run`` on moto, one after the
other, with the time each took and their ratio.

Needs ``pip install -e '.[test]'`` (moto[server], boto3); ``clients`` also measures obstore
and s3fs when they are installed.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from s3_server import aws_env, start_moto, stop_moto  # noqa: E402  (the tests' moto launcher)

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


def scale(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from scale_bench import run_scale  # the existing scale workload, pointed at an Outputs

    with tempfile.TemporaryDirectory() as tmp:
        proc, endpoint = start_moto(Path(tmp))
        os.environ.update(aws_env(endpoint))
        try:
            bucket = _bucket(endpoint)
            local = run_scale(Path(tmp, "local"), jobs=args.jobs, concurrency=args.concurrency)
            remote = run_scale(Path(tmp, "s3"), jobs=args.jobs, concurrency=args.concurrency, out=f"s3://{bucket}/run")
        finally:
            stop_moto(proc)
    print(f"local folder: {local:6.2f} s = {args.jobs / local:6.0f} jobs/s")
    print(f"s3 (moto):    {remote:6.2f} s = {args.jobs / remote:6.0f} jobs/s  ({remote / local:.2f}x the local time)")


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
