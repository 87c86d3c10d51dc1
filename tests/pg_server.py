"""A throwaway PostgreSQL cluster for the tests (a pytest plugin, loaded by conftest.py) and
the benchmarks: ``initdb`` into a temp folder, ``pg_ctl start`` on a free loopback port, trust
auth on 127.0.0.1 only, a fresh database per test, stopped at the end of the session.

Skipped where PostgreSQL is not installed, unless ``LUMOZBATCH_REQUIRE_POSTGRES=1`` (CI), which
makes that a failure. As root (initdb refuses it), the cluster runs as the ``postgres`` user.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_START_TIMEOUT_S = 60


def find_bin(name: str) -> str | None:
    """``name`` on PATH, else in the newest /usr/lib/postgresql/*/bin (Debian's place)."""
    found = shutil.which(name)
    if found:
        return found
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        candidate = Path(folder) / name
        if candidate.is_file():
            return str(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """A PostgreSQL server in a temp folder, for as long as this object is started."""

    def __init__(self, *, fsync: bool = True) -> None:
        self.initdb, self.pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        if self.initdb is None or self.pg_ctl is None:
            raise FileNotFoundError("PostgreSQL (initdb, pg_ctl) is not installed")
        self.fsync = fsync
        self.root = Path(tempfile.mkdtemp(prefix="lumozbatch-pg-"))
        self.data, self.sockets = self.root / "data", self.root / "sockets"
        self.port = _free_port()
        self.user = "postgres"
        self._names = itertools.count(1)
        self._as: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root: the cluster belongs to postgres
            self._as = ["runuser", "-u", "postgres", "--"]
            entry = pwd.getpwnam("postgres")
            self.sockets.mkdir()
            for path in (self.root, self.sockets):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        else:
            self.sockets.mkdir()
            self.user = pwd.getpwuid(os.geteuid()).pw_name

    def url(self, database: str = "postgres", *, password: str | None = None) -> str:
        auth = f"{self.user}:{password}@" if password else f"{self.user}@"
        return f"postgresql://{auth}127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=_START_TIMEOUT_S)

    def start(self) -> Cluster:
        self._run(self.initdb, "-D", str(self.data), "-U", self.user, "--auth=trust", "--no-sync", "-E", "UTF8")
        options = f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync={'on' if self.fsync else 'off'}"
        self._run(self.pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")
        return self

    def stop(self) -> None:
        try:
            self._run(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def admin(self):  # noqa: ANN201 - psycopg is imported only where the server runs
        import psycopg

        return psycopg.connect(self.url(), autocommit=True)

    def new_database(self) -> str:
        name = f"t{os.getpid()}_{next(self._names)}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    try:
        import psycopg  # noqa: F401 - only to know that the tests can connect

        cluster = Cluster(fsync=False)  # tests: the server's own fsync is not what they check
    except (ImportError, FileNotFoundError) as exc:
        if os.environ.get("LUMOZBATCH_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required (LUMOZBATCH_REQUIRE_POSTGRES=1): {exc}")
        pytest.skip(f"PostgreSQL is not available: {exc}")
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> Iterator[str]:
    """The URL of a fresh, empty database, dropped after the test."""
    name = pg_cluster.new_database()
    try:
        yield pg_cluster.url(name)
    finally:
        pg_cluster.drop_database(name)
