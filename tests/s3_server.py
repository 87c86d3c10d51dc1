"""A real S3-compatible server for tests: moto's, as a subprocess on a free loopback port.

``moto_server`` (session-wide) yields its endpoint; ``s3_env`` sets the standard AWS
variables for it and yields a fresh bucket's name for each test. Use as a plugin
(``pytest_plugins = ["s3_server"]``) or import ``start_moto``/``stop_moto``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

RECORDING = "recording"
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


#: ``moto.server``, its recorder taking one request at a time: it appends each request's line
#: in pieces (8 KB at a time), so requests served at once interleaved their lines (seen in CI:
#: "Extra data" reading the recording)
_RECORDING_SERVER = """
import sys, threading
import moto.server
from moto.moto_api._internal.recorder.models import Recorder
lock, record = threading.Lock(), Recorder._record_request
def one_at_a_time(self, *args, **kwargs):
    with lock:
        return record(self, *args, **kwargs)
Recorder._record_request = one_at_a_time
moto.server.main(sys.argv[1:])
"""


def start_moto(workdir: Path, *, record: bool = False, timeout: float = 30.0) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``python -m moto.server`` in ``workdir`` and wait (bounded) until it answers.
    With ``record``, moto writes every request it gets (headers too) to ``workdir/recording``,
    one whole line each."""
    port = _free_port()
    env = dict(os.environ, MOTO_RECORDER_FILEPATH=str(workdir / RECORDING))
    server = ["-m", "moto.server"]
    if record:
        env["MOTO_ENABLE_RECORDING"] = "true"
        server = ["-c", _RECORDING_SERVER]
    proc = subprocess.Popen(
        [sys.executable, *server, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=workdir,
        env=env,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto.server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
            return proc, endpoint
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    stop_moto(proc)
    raise RuntimeError(f"moto.server did not answer within {timeout:.0f}s")


def stop_moto(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait(timeout=10)


@dataclass(frozen=True)
class Moto:
    endpoint: str
    recording: Path  # one JSON line per request moto received (headers included)

    def client(self):  # type: ignore[no-untyped-def]
        return s3_client(self.endpoint)

    def body(self, bucket: str, key: str) -> bytes:
        return self.client().get_object(Bucket=bucket, Key=key)["Body"].read()

    def requests(self, bucket: str) -> list[dict[str, object]]:
        """Every recorded request to ``bucket`` (path-style URLs: ``/bucket/...``)."""
        import json

        if not self.recording.exists():
            return []
        rows = [json.loads(line) for line in self.recording.read_text().splitlines() if line]
        return [r for r in rows if f"/{bucket}" in str(r.get("url", ""))]


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    workdir = tmp_path_factory.mktemp("moto")
    proc, endpoint = start_moto(workdir, record=True)
    try:
        yield Moto(endpoint, workdir / RECORDING)
    finally:
        stop_moto(proc)


def s3_client(endpoint: str):  # type: ignore[no-untyped-def]
    import boto3

    return boto3.client(
        "s3", endpoint_url=endpoint, region_name=AWS["AWS_REGION"],
        aws_access_key_id=AWS["AWS_ACCESS_KEY_ID"], aws_secret_access_key=AWS["AWS_SECRET_ACCESS_KEY"],
    )


def aws_env(endpoint: str) -> dict[str, str]:
    return {**AWS, "AWS_ENDPOINT_URL": endpoint}


@pytest.fixture
def s3_env(moto_server: Moto, monkeypatch: pytest.MonkeyPatch) -> str:
    """The AWS variables pointing at moto, and a fresh bucket: its name."""
    for key, value in aws_env(moto_server.endpoint).items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)  # the user's ~/.aws never leaks into a test
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    bucket = f"t-{uuid.uuid4().hex[:12]}"
    s3_client(moto_server.endpoint).create_bucket(Bucket=bucket)
    return bucket
