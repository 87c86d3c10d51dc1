"""A sandbox batch run into ``s3://bucket/prefix`` on a real S3-compatible server (moto's):
every output in the bucket, recorded done only once the store holds it, the API key never
sent there, and the folder's money rules in the bucket."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
import pytest
import trio

from lumozbatch.core.events import Event
from lumozbatch.core.jobstate import JobState
from lumozbatch.core.records import Batch, Job, Retire
from lumozbatch.sandbox.app import create_app
from lumozbatch.sandbox.config import SandboxConfig
from lumozbatch.sandbox.server import sandbox_transport
from lumozbatch.shell.api import LumozClient
from lumozbatch.shell.outputs import open_outputs
from lumozbatch.shell.ratelimit import SharedLimiter
from lumozbatch.shell.reconcile import reconcile_outputs
from lumozbatch.shell.runner import BatchRunner, RunOptions, RunOutcome, run_batch
from lumozbatch.shell.s3_outputs import S3Outputs
from lumozbatch.shell.sqlite_store import SqliteStore
from lumozbatch.ui.gallery import write_gallery

if TYPE_CHECKING:
    from tests.s3_server import Moto


PREFIX = "team/batch"


def job(i: int, *, filename: str | None = None, seed: int | None = None) -> Job:
    params = {"prompt": f"Sketch Smudge, subject {i}", "aspect_ratio": "1:1", "seed": i if seed is None else seed}
    identity = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
    return Job(id=identity, job="j", index=i, repeat=0, model="flux-sketch-smudge", params=params,
               variables={"n": i}, filename=filename or f"j/{i:03d}")


class World:
    """A batch whose outputs go to the bucket: its state in a local home, one sandbox."""

    def __init__(self, tmp_path: Path, bucket: str, moto: Moto) -> None:
        self.home = tmp_path / "home"
        self.bucket = bucket
        self.moto = moto
        self.url = f"s3://{bucket}/{PREFIX}"
        config = SandboxConfig(port=0, latency=(0.0, 0.0), sync_threshold=0.5, image_scale=0.05, rate_limit=0)
        self.sandbox = create_app(config, clock=time.monotonic)
        self.key = config.api_keys[0]
        self.store = SqliteStore.open(self.home, create=True)
        self.store.append_sync(Batch(name="b", manifest="m.yaml"))
        self.events: list[Event] = []
        self.on_event: Any = None

    def apply(self, *records: Any, gallery: bool = True) -> RunOutcome:
        """What ``BatchRun.execute`` does: record, reconcile, run, write the gallery."""
        if records:
            self.store.append_sync(*records)
        outputs = open_outputs(self.url, state_home=self.home)
        try:
            reconcile_outputs(self.store, outputs)
            outcome = trio.run(self._run, outputs)
            if gallery:
                write_gallery(self.home, outputs)
        finally:
            outputs.close()
        return outcome

    async def _run(self, outputs: S3Outputs) -> RunOutcome:
        def sink(event: Event) -> None:
            self.events.append(event)
            if self.on_event is not None:
                self.on_event(event)

        async with httpx.AsyncClient(transport=sandbox_transport(self.sandbox)) as http:
            client = LumozClient(http, self.sandbox.base_url, self.key, SharedLimiter())
            runner = BatchRunner(self.store, client, http, self.home, options=RunOptions(concurrency=4),
                                 sink=sink, outputs=outputs)
            return await run_batch(runner)

    def body(self, rel: str) -> bytes:
        return self.moto.body(self.bucket, f"{PREFIX}/{rel}")

    def keys(self) -> set[str]:
        listed = self.moto.client().list_objects_v2(Bucket=self.bucket, Prefix=PREFIX + "/")
        return {o["Key"].removeprefix(PREFIX + "/") for o in listed.get("Contents", [])}

    def rows(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.body("results.jsonl").decode().splitlines()]


@pytest.fixture
def world(tmp_path: Path, s3_env: str, moto_server: Moto, monkeypatch: pytest.MonkeyPatch) -> World:
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    w = World(tmp_path, s3_env, moto_server)
    yield w
    w.store.close()


def test_a_batch_lands_in_the_bucket_with_its_results_and_gallery(world: World, tmp_path: Path) -> None:
    jobs = [job(i) for i in range(6)]
    outcome = world.apply(*jobs)
    assert outcome.exit_code == 0, outcome.counts
    rows = world.rows()
    assert sorted(r["identity"] for r in rows) == sorted(j.id for j in jobs)
    keys = world.keys()
    for row in rows:
        for rel in (row["file"], row["object"]):
            assert rel in keys
            data = world.body(rel)
            assert hashlib.sha256(data).hexdigest() == row["sha256"] and len(data) == row["bytes"]
    head = world.moto.client().head_object(Bucket=world.bucket, Key=f"{PREFIX}/index.html")
    assert head["ContentType"].startswith("text/html")
    html = world.body("index.html").decode()
    for row in rows:
        assert f'"src": "{quote(row["file"], safe="/")}"' in html  # relative: works served from the bucket
    assert "s3://" not in html
    assert list((tmp_path / "work").iterdir()) == []  # nothing in the working folder
    assert not [p for p in world.home.iterdir() if p.name.startswith(".staging-")]  # staging removed


def test_rows_a_killed_run_never_wrote_to_the_bucket_come_back_from_the_ledger(world: World) -> None:
    jobs = [job(i) for i in range(3)]
    world.apply(*jobs)
    world.moto.client().delete_object(Bucket=world.bucket, Key=f"{PREFIX}/results.jsonl")  # as if killed before a flush
    runs = world.sandbox.stats.calls["run"]
    assert world.apply().exit_code == 0
    assert sorted(r["identity"] for r in world.rows()) == sorted(j.id for j in jobs)
    assert world.sandbox.stats.calls["run"] == runs


def test_the_api_key_never_reaches_the_object_store(world: World) -> None:
    world.apply(*[job(i) for i in range(3)])
    requests = world.moto.requests(world.bucket)
    assert len(requests) >= 3 * 2  # uploads and copies at least
    for request in requests:
        headers = {k.lower(): v for k, v in request["headers"].items()}
        assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=testing/")
        assert world.key not in json.dumps(request)
    assert not world.sandbox.stats.storage_saw_authorization


def test_an_upload_that_fails_leaves_the_job_paid_and_the_next_run_keeps_it_for_free(world: World) -> None:
    jobs = [job(i) for i in range(4)]
    client = world.moto.client()

    def delete_the_bucket(event: Event) -> None:
        if event.kind == "accepted" and world.on_event is not None:
            world.on_event = None
            client.delete_bucket(Bucket=world.bucket)  # empty still: nothing was uploaded

    world.on_event = delete_the_bucket
    outcome = world.apply(*jobs, gallery=False)
    assert outcome.exit_code == 1
    states = {world.store.job(j.id).state for j in jobs}
    assert JobState.DONE not in states and JobState.COMPLETED in states  # paid, not recorded done
    warnings = [e.reason for e in world.events if e.kind == "warning"]
    assert any("cannot upload" in (w or "") for w in warnings)

    client.create_bucket(Bucket=world.bucket)
    assert world.apply().exit_code == 0
    assert all(world.store.job(j.id).state is JobState.DONE for j in jobs)
    # each job was sent once: the paid ones were only downloaded and uploaded again
    assert world.sandbox.stats.duplicates() == {}
    assert world.sandbox.stats.calls["run"] == len(jobs)
    assert {r["identity"] for r in world.rows()} == {j.id for j in jobs}


def test_an_edit_keeps_the_older_object_and_a_revert_or_a_deletion_costs_nothing(world: World) -> None:
    first, second = job(0, filename="j/x"), job(1, filename="j/x", seed=99)
    world.apply(first)
    (row,) = world.rows()
    name, first_object = row["file"], row["object"]
    first_bytes = world.body(name)
    world.apply(Retire(id=first.id), second)  # the edit: the name goes to another generation
    assert world.body(name) != first_bytes
    assert world.body(first_object) == first_bytes  # the older output is kept in the bucket
    runs = world.sandbox.stats.calls["run"]

    world.apply(Retire(id=second.id), first)  # the revert: back for free
    assert world.body(name) == first_bytes
    world.moto.client().delete_object(Bucket=world.bucket, Key=f"{PREFIX}/{name}")
    world.apply()  # deleted by hand: restored from the kept object
    assert world.body(name) == first_bytes
    assert world.sandbox.stats.calls["run"] == runs == 2
