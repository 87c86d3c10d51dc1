"""The run loop against the sandbox in-process, on trio's virtual clock.

Timing-sensitive tests use ``MemoryStore`` (the real ledger's interface, no file I/O: file
I/O in threads makes the autojump clock jump); the others use the real on-disk ledger. Both
pass the same conformance suite (test_store_conformance.py).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from PIL import Image

from lumozbatch.core.events import Event
from lumozbatch.core.jobspec import JobSpec
from lumozbatch.core.ledger_codec import JobState, pin_job_record
from lumozbatch.core.records import Record
from lumozbatch.errors import AuthenticationError, Interrupted
from lumozbatch.sandbox.app import create_app
from lumozbatch.sandbox.config import SandboxConfig
from lumozbatch.sandbox.server import sandbox_transport
from lumozbatch.shell.api import LumozClient
from lumozbatch.shell.ledger import Ledger
from lumozbatch.shell.store import MemoryStore
from lumozbatch.shell.ratelimit import SharedLimiter
from lumozbatch.shell.runner import BatchRunner, RunOptions, run_batch

WALL0 = 2_000_000_000.0
FAR = 10.0**9  # seconds: a deadline the virtual clock never reaches in these tests


def spec(i: int, model: str = "flux-sketch-smudge", **params: Any) -> JobSpec:
    full = {"prompt": f"Sketch Smudge, subject {i}", "aspect_ratio": "1:1", "seed": i, **params}
    identity = hashlib.sha256(json.dumps([model, full], sort_keys=True).encode()).hexdigest()
    return JobSpec(
        job="j", index=i, repeat=0, model=model, params=full, variables={"n": i},
        identity=identity, filename=f"j/{i:03d}",
    )


def planned(specs: Iterable[JobSpec]) -> list[dict[str, Any]]:
    return [{"t": "batch", "v": 1, "name": "t", "manifest": "m.yaml", "at": WALL0}] + [
        pin_job_record(s, 12345) for s in specs
    ]


class Rig:
    """A sandbox in-process on the virtual clock, a client, and a runner factory."""

    def __init__(self, out_dir: Path, **knobs: Any) -> None:
        knobs.setdefault("latency", (2.0, 6.0))
        knobs.setdefault("image_scale", 0.05)
        knobs.setdefault("sync_threshold", 0.0)
        self.config = SandboxConfig(port=0, **knobs)
        self.sandbox = create_app(
            self.config, clock=trio.current_time, wall_clock=lambda: WALL0 + trio.current_time()
        )
        self.stats = self.sandbox.stats
        self.out_dir = out_dir
        self.events: list[Event] = []
        self.transport: httpx.AsyncBaseTransport = sandbox_transport(self.sandbox)

    def runner(self, ledger: Any, *, key: str | None = None, concurrency: int = 8,
               rand: Any = lambda: 0.5) -> BatchRunner:
        http = httpx.AsyncClient(transport=self.transport)
        limiter = SharedLimiter(sink=self.events.append, rand=rand)
        # Whole-call deadlines far out of reach: downloads write files in worker threads, and
        # while they do the autojump clock leaps to the nearest timer, which must not be a
        # deadline. (Deadlines are tested in test_api_client.py and test_download.py.)
        client = LumozClient(
            http, self.sandbox.base_url, key or self.config.api_keys[0], limiter, deadline=FAR
        )
        return BatchRunner(
            ledger, client, http, self.out_dir,
            options=RunOptions(concurrency=concurrency, download_deadline=FAR, shield_seconds=FAR),
            sink=self.events.append, rand=rand,
        )

    def kinds(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]


def states(ledger: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for job in ledger.state.jobs.values():
        out[job.state.value] = out.get(job.state.value, 0) + 1
    return out


def results(out_dir: Path) -> list[dict[str, Any]]:
    path = out_dir / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# -- the happy path ---------------------------------------------------------------------


async def test_every_job_lands_once_and_polls_stay_few(tmp_path: Path, autojump_clock: Any) -> None:
    rig = Rig(tmp_path, latency=(2.0, 6.0))
    specs = [spec(i) for i in range(40)]
    ledger = MemoryStore(planned(specs))
    outcome = await run_batch(rig.runner(ledger, concurrency=8))

    assert outcome.exit_code == 0
    assert states(ledger) == {"done": 40}
    assert rig.stats.jobs_created == 40
    assert rig.stats.duplicates() == {}
    assert rig.stats.calls["run"] == 40
    assert not rig.stats.storage_saw_authorization
    checks_per_job = rig.stats.calls["check"] / 40
    assert checks_per_job <= 2.0, checks_per_job
    rows = results(tmp_path)
    assert sorted(r["identity"] for r in rows) == sorted(s.identity for s in specs)
    for row in rows:
        data = (tmp_path / row["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"]
        assert row["bytes"] == len(data)
        assert row["file"].startswith("j/") and row["file"].endswith(".webp")
        assert set(row) >= {"job", "identity", "variables", "model", "params", "request_id", "file", "sha256", "bytes"}
    assert not list(tmp_path.rglob("*.part"))


async def test_a_finished_run_keeps_nothing_per_downloaded_job(tmp_path: Path, autojump_clock: Any) -> None:
    # what the runner remembers per job lasts while it is in flight: a 100,000-job run must
    # not end holding 100,000 acceptance times
    rig = Rig(tmp_path, latency=(2.0, 6.0))
    ledger = MemoryStore(planned(spec(i) for i in range(30)))
    runner = rig.runner(ledger, concurrency=8)
    outcome = await run_batch(runner)
    assert outcome.exit_code == 0 and states(ledger) == {"done": 30}
    assert runner._accepted_at == {} and runner._carried == set() and not runner._queue


async def test_a_tight_rate_limit_is_respected_without_429s(tmp_path: Path, autojump_clock: Any) -> None:
    # 40 jobs need 80 calls (a run and a check each) at 20 calls per 5 s. The makespan is
    # measured by bench/runner_bench.py: downloads write files in threads, which makes the
    # autojump clock jump, so exact times are not asserted here.
    rig = Rig(tmp_path, latency=(2.0, 6.0), rate_limit=20, rate_window=5.0)
    ledger = MemoryStore(planned(spec(i) for i in range(40)))
    outcome = await run_batch(rig.runner(ledger, concurrency=32))
    assert outcome.exit_code == 0
    assert rig.stats.rate_limited == 0
    assert rig.stats.calls["check"] <= 1.25 * 40
    assert rig.kinds("rate_limit")  # the waits were reported


async def test_jobs_in_flight_never_exceed_concurrency(tmp_path: Path, autojump_clock: Any) -> None:
    rig = Rig(tmp_path, latency=(1.0, 3.0))
    ledger = MemoryStore(planned(spec(i) for i in range(30)))
    await run_batch(rig.runner(ledger, concurrency=3))
    live: set[str] = set()
    peak = 0
    for event in rig.events:
        if event.kind == "submit":
            live.add(event.identity)
        elif event.kind in ("downloaded", "failed", "ambiguous"):
            live.discard(event.identity)
        peak = max(peak, len(live))
    assert peak == 3
    assert states(ledger) == {"done": 30}


async def test_a_finished_batch_makes_zero_calls(tmp_path: Path, autojump_clock: Any) -> None:
    rig = Rig(tmp_path, latency=(0.5, 1.0))
    ledger = MemoryStore(planned(spec(i) for i in range(5)))
    await run_batch(rig.runner(ledger))
    before = dict(rig.stats.calls)
    outcome = await run_batch(rig.runner(ledger))
    assert outcome.exit_code == 0
    assert dict(rig.stats.calls) == before
    assert len(results(tmp_path)) == 5


async def test_synchronous_answers_are_downloaded_without_polling(tmp_path: Path, autojump_clock: Any) -> None:
    rig = Rig(tmp_path, latency=(0.0, 0.1), sync_threshold=0.5)
    ledger = MemoryStore(planned(spec(i) for i in range(4)))
    outcome = await run_batch(rig.runner(ledger))
    assert outcome.exit_code == 0
    assert rig.stats.calls["check"] == 0
    assert states(ledger) == {"done": 4}


async def test_a_synchronous_answer_without_request_id_is_downloaded(tmp_path: Path, autojump_clock: Any) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="PNG")
    png = buf.getvalue()
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path == "/api/v4/run":
            return httpx.Response(200, json={"success": True, "data": {"output": "http://storage.test/o/1.png"}})
        return httpx.Response(200, content=png)

    ledger = MemoryStore(planned([spec(1)]))
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    runner = BatchRunner(ledger, LumozClient(http, "http://api.test", "k", SharedLimiter()), http, tmp_path)
    outcome = await run_batch(runner)
    assert outcome.exit_code == 0
    assert calls == ["/api/v4/run", "/o/1.png"]
    (row,) = results(tmp_path)
    assert row["request_id"] is None and row["file"] == "j/001.png"


# -- models and errors ------------------------------------------------------------------


async def test_unknown_model_costs_one_request(tmp_path: Path, autojump_clock: Any) -> None:
    rig = Rig(tmp_path, latency=(0.5, 1.0))
    specs = [spec(i, model="no-such-model") for i in range(6)] + [spec(i) for i in range(6, 9)]
    ledger = MemoryStore(planned(specs))
    outcome = await run_batch(rig.runner(ledger))
    assert outcome.exit_code == 1
    assert rig.stats.calls["run"] == 1 + 3
    assert [e.code for e in rig.kinds("failed")] == ["model_not_found"] * 6
    failed = [j for j in ledger.state.jobs.values() if j.state == JobState.FAILED]
    assert {j.code for j in failed} == {"model_not_found"}
    assert all(j.billed is False for j in failed)
    assert states(ledger) == {"failed": 6, "done": 3}
    assert sum(1 for j in failed if j.attempts == 0) == 5  # never sent


async def test_first_request_of_a_model_goes_alone(tmp_path: Path, autojump_clock: Any) -> None:
    rig = Rig(tmp_path, latency=(3.0, 3.0))
    ledger = MemoryStore(planned(spec(i) for i in range(5)))
    await run_batch(rig.runner(ledger))
    submits = rig.kinds("submit")
    accepted = rig.kinds("accepted")
    assert submits[1].time >= accepted[0].time


async def test_validation_error_fails_the_job_with_the_apis_details(tmp_path: Path, autojump_clock: Any) -> None:
    rig = Rig(tmp_path, latency=(0.5, 1.0))
    bad = spec(1, guidance=99)
    ledger = MemoryStore(planned([bad, spec(2)]))
    outcome = await run_batch(rig.runner(ledger))
    assert outcome.exit_code == 1
    job = ledger.state.jobs[bad.identity]
    assert job.state == JobState.FAILED and job.code == "validation_error"
    assert job.billed is False
    assert "guidance" in (job.reason or "")
    assert ledger.state.jobs[spec(2).identity].state == JobState.DONE


async def test_failed_generation_is_billed_and_reported(tmp_path: Path, autojump_clock: Any) -> None:
    rig = Rig(tmp_path, latency=(0.5, 1.0), fail_rate=1.0)
    ledger = MemoryStore(planned(spec(i) for i in range(3)))
    outcome = await run_batch(rig.runner(ledger))
    assert outcome.exit_code == 1
    for job in ledger.state.jobs.values():
        assert job.state == JobState.FAILED and job.billed is True and job.reason
    assert rig.stats.duplicates() == {}


async def test_bad_key_stops_everything_after_one_request(tmp_path: Path, autojump_clock: Any) -> None:
    rig = Rig(tmp_path)
    ledger = MemoryStore(planned(spec(i) for i in range(5)))
    with pytest.raises(AuthenticationError, match="401"):
        await run_batch(rig.runner(ledger, key="wrong"))
    assert rig.stats.calls["run"] == 1
    assert states(ledger) == {"pending": 5}


# -- unreliable networks ----------------------------------------------------------------


async def test_server_errors_are_retried_without_duplicates(tmp_path: Path, autojump_clock: Any) -> None:
    rig = Rig(tmp_path, latency=(0.5, 2.0), error_rate=0.3, seed=3)
    specs = [spec(i) for i in range(20)]
    ledger = MemoryStore(planned(specs))
    outcome = await run_batch(rig.runner(ledger))
    assert rig.stats.server_errors > 0
    assert outcome.exit_code == 0, states(ledger)
    assert rig.stats.duplicates() == {}
    assert rig.stats.jobs_created == 20


async def test_dropped_run_answers_become_ambiguous_never_resent(tmp_path: Path, autojump_clock: Any) -> None:
    rig = Rig(tmp_path, latency=(0.5, 2.0), drop_rate=0.3, seed=5)
    ledger = MemoryStore(planned(spec(i) for i in range(20)))
    outcome = await run_batch(rig.runner(ledger))
    counts = states(ledger)
    assert counts.get("ambiguous", 0) > 0
    assert outcome.exit_code == 1
    assert rig.stats.duplicates() == {}
    # everything the sandbox created is either downloaded or ambiguous
    assert counts["done"] + counts["ambiguous"] == 20
    # a second run does not touch the ambiguous ones
    created = rig.stats.jobs_created
    await run_batch(rig.runner(ledger))
    assert rig.stats.jobs_created == created


async def test_truncated_downloads_are_fetched_again(tmp_path: Path, autojump_clock: Any) -> None:
    rig = Rig(tmp_path, latency=(0.5, 1.0), truncate_rate=0.4, seed=2)
    ledger = MemoryStore(planned(spec(i) for i in range(10)))
    outcome = await run_batch(rig.runner(ledger))
    assert rig.stats.truncated > 0
    assert outcome.exit_code == 0
    for row in results(tmp_path):
        assert hashlib.sha256((tmp_path / row["file"]).read_bytes()).hexdigest() == row["sha256"]


async def test_expired_output_url_is_refreshed_through_check(tmp_path: Path, autojump_clock: Any) -> None:
    rig = Rig(tmp_path, latency=(0.5, 1.0))
    inner = rig.transport
    expired: list[str] = []

    class ExpireOnce(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if "/storage/" in request.url.path and not expired:
                expired.append(str(request.url))
                return httpx.Response(410)
            return await inner.handle_async_request(request)

    rig.transport = ExpireOnce()
    ledger = MemoryStore(planned([spec(1)]))
    outcome = await run_batch(rig.runner(ledger))
    assert outcome.exit_code == 0
    assert len(expired) == 1
    assert rig.stats.calls["run"] == 1


async def test_a_storage_redirect_loop_leaves_the_job_completed_not_the_run_crashed(tmp_path: Path, autojump_clock: Any) -> None:
    rig = Rig(tmp_path, latency=(0.5, 1.0))
    inner = rig.transport

    class RedirectLoop(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if "/storage/" in request.url.path:
                return httpx.Response(302, headers={"Location": str(request.url)})
            return await inner.handle_async_request(request)

    rig.transport = RedirectLoop()
    ledger = MemoryStore(planned(spec(i) for i in range(2)))
    outcome = await run_batch(rig.runner(ledger))
    assert outcome.exit_code == 1
    assert states(ledger) == {"completed": 2}  # paid for, kept for the next run
    assert rig.stats.calls["run"] == 2


async def test_a_failing_api_stops_the_run_instead_of_grinding(tmp_path: Path, autojump_clock: Any) -> None:
    calls: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(trio.current_time())
        return httpx.Response(503, json={"success": False, "error": {"code": "internal_server_error", "message": "down"}})

    ledger = MemoryStore(planned(spec(i) for i in range(10)))
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    events: list[Event] = []
    runner = BatchRunner(
        ledger, LumozClient(http, "http://api.test", "k", SharedLimiter()), http, tmp_path,
        sink=events.append, rand=lambda: 0.5,
    )
    outcome = await run_batch(runner)
    assert outcome.exit_code == 1
    # three probes (one at a time: the model was never accepted), 8 attempts each, then stop
    assert len(calls) == 3 * 8
    assert states(ledger) == {"pending": 10}  # nothing was created: all still to send
    assert any("keeps failing" in (e.reason or "") for e in events if e.kind == "warning")


async def test_outputs_left_undownloaded_are_fetched_on_resume_with_fresh_urls(tmp_path: Path, autojump_clock: Any) -> None:
    rig = Rig(tmp_path, latency=(0.5, 1.0), output_ttl=5.0)
    inner = rig.transport

    class StorageDown(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if "/storage/" in request.url.path:
                raise httpx.ConnectError("storage unreachable", request=request)
            return await inner.handle_async_request(request)

    rig.transport = StorageDown()
    ledger = MemoryStore(planned(spec(i) for i in range(3)))
    outcome = await run_batch(rig.runner(ledger))
    assert outcome.exit_code == 1
    assert states(ledger) == {"completed": 3}  # paid for, not on disk: kept for the next run
    assert all("download failed" in (j.reason or "") for j in ledger.state.jobs.values())
    await trio.sleep(60)  # the output URLs expire meanwhile
    checks = rig.stats.calls["check"]
    rig.transport = inner
    outcome = await run_batch(rig.runner(MemoryStore(ledger.records)))
    assert outcome.exit_code == 0
    assert rig.stats.calls["run"] == 3  # nothing sent twice
    assert rig.stats.calls["check"] == checks + 3  # one refresh per expired URL
    assert len(results(tmp_path)) == 3


async def test_a_ledger_write_error_surfaces_as_itself(tmp_path: Path, autojump_clock: Any) -> None:
    from lumozbatch.shell.ledger import LedgerWriteError

    class FullDisk(MemoryStore):
        async def append(self, *records: Record) -> None:
            if records[0].TYPE == "intent":
                raise LedgerWriteError("the disk refused a ledger write: No space left on device")
            await super().append(*records)

    rig = Rig(tmp_path)
    ledger = FullDisk(planned(spec(i) for i in range(3)))
    with pytest.raises(LedgerWriteError, match="No space left"):
        await run_batch(rig.runner(ledger))
    assert rig.stats.calls.get("run", 0) == 0  # no intent on disk, nothing sent


async def test_a_request_id_the_ledger_could_not_record_is_named_in_the_error(tmp_path: Path, autojump_clock: Any) -> None:
    """The disk refuses the `accepted` record: the job will replay as ambiguous, so the paid
    request's id must at least reach the user (it is the only way to its result)."""
    from lumozbatch.shell.ledger import LedgerWriteError

    class FullDisk(MemoryStore):
        async def append(self, *records: Record) -> None:
            if records[0].TYPE == "accepted":
                raise LedgerWriteError("the disk refused a ledger write: No space left on device")
            await super().append(*records)

    rig = Rig(tmp_path)
    ledger = FullDisk(planned([spec(1)]))
    with pytest.raises(LedgerWriteError) as info:
        await run_batch(rig.runner(ledger))
    assert rig.stats.calls["run"] == 1
    import re

    assert any(re.search(r"request \d+ .*accepted", line) for line in info.value.details), info.value.details
    assert ledger.replayed().jobs[spec(1).identity].state is JobState.AMBIGUOUS


# -- resume and interrupts --------------------------------------------------------------


async def test_jobs_found_in_flight_are_polled_not_resubmitted(tmp_path: Path, autojump_clock: Any) -> None:
    rig = Rig(tmp_path, latency=(5.0, 5.0))
    specs = [spec(i) for i in range(4)]
    ledger = MemoryStore(planned(specs))
    runner = rig.runner(ledger)

    async def stop_when_all_accepted() -> None:
        while len(rig.kinds("accepted")) < 4:
            await trio.sleep(0.01)
        runner.interrupt()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(stop_when_all_accepted)
        with pytest.raises(Interrupted):
            await run_batch(runner)
    assert states(ledger) == {"submitted": 4}
    fresh = MemoryStore(ledger.records)
    outcome = await run_batch(rig.runner(fresh))
    assert outcome.exit_code == 0
    assert rig.stats.calls["run"] == 4
    assert rig.stats.duplicates() == {}


async def test_interrupt_records_every_sent_run(tmp_path: Path, autojump_clock: Any) -> None:
    rig = Rig(tmp_path, latency=(1.0, 4.0))
    ledger = MemoryStore(planned(spec(i) for i in range(30)))
    runner = rig.runner(ledger, concurrency=6)

    async def interrupt_soon() -> None:
        while len(rig.kinds("submit")) < 8:
            await trio.sleep(0.001)
        runner.interrupt()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(interrupt_soon)
        with pytest.raises(Interrupted, match="resumable"):
            await run_batch(runner)
    replayed = ledger.replayed()
    assert all(j.state != JobState.AMBIGUOUS for j in replayed.jobs.values())
    assert rig.stats.jobs_created == sum(1 for j in replayed.jobs.values() if j.request_id is not None)
    assert rig.kinds("interrupted")
    # and a resume finishes without paying twice
    fresh = MemoryStore(ledger.records)
    outcome = await run_batch(rig.runner(fresh, concurrency=6))
    assert outcome.exit_code == 0
    assert rig.stats.duplicates() == {}
    assert rig.stats.jobs_created == 30


async def test_results_rows_missing_after_a_crash_are_restored(tmp_path: Path, autojump_clock: Any) -> None:
    rig = Rig(tmp_path, latency=(0.5, 1.0))
    ledger = MemoryStore(planned(spec(i) for i in range(3)))
    await run_batch(rig.runner(ledger))
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    (tmp_path / "results.jsonl").write_text(lines[0] + "\n")  # as if killed before the rest
    await run_batch(rig.runner(MemoryStore(ledger.records)))
    assert sorted(r["identity"] for r in results(tmp_path)) == sorted(ledger.state.jobs)


async def test_runs_on_the_durable_ledger(tmp_path: Path) -> None:
    out = tmp_path / "out"
    rig = Rig(out, latency=(0.2, 0.5))
    ledger = Ledger.open(out, create=True)
    try:
        ledger.append_sync(*planned(spec(i) for i in range(6)))
        outcome = await run_batch(rig.runner(ledger))
    finally:
        ledger.close()
    assert outcome.exit_code == 0
    again = Ledger.open(out, create=False)
    try:
        assert {j.state for j in again.state.jobs.values()} == {JobState.DONE}
    finally:
        again.close()
    assert len(results(out)) == 6


async def test_an_output_the_disk_refuses_stops_the_run_with_its_reason(tmp_path: Path, autojump_clock: Any) -> None:
    (tmp_path / ".lumozbatch").mkdir()
    (tmp_path / ".lumozbatch" / "objects").write_text("a file where the outputs' store goes")
    rig = Rig(tmp_path, latency=(0.5, 1.0))
    ledger = MemoryStore(planned(spec(i) for i in range(20)))
    outcome = await run_batch(rig.runner(ledger, concurrency=2))
    assert outcome.exit_code == 1  # no crash: the run stops, everything paid is recorded
    assert (tmp_path / ".lumozbatch" / "objects").read_text() == "a file where the outputs' store goes"
    completed = [j for j in ledger.state.jobs.values() if j.state == JobState.COMPLETED]
    assert any(f"cannot write {tmp_path / '.lumozbatch' / 'objects'}" in (j.reason or "") for j in completed)
    assert rig.stats.calls["run"] < 20  # it stopped submitting
    assert any("stopping this run" in (e.reason or "") for e in rig.kinds("warning"))
    assert JobState.AMBIGUOUS not in {j.state for j in ledger.replayed().jobs.values()}


async def test_a_name_the_disk_refuses_keeps_the_output_and_stops_the_run(tmp_path: Path, autojump_clock: Any) -> None:
    (tmp_path / "j").write_text("a file where the outputs' folder goes")
    rig = Rig(tmp_path, latency=(0.5, 1.0))
    ledger = MemoryStore(planned(spec(i) for i in range(20)))
    outcome = await run_batch(rig.runner(ledger, concurrency=2))
    assert outcome.exit_code == 1
    assert (tmp_path / "j").read_text() == "a file where the outputs' folder goes"
    done = [j for j in ledger.state.jobs.values() if j.state == JobState.DONE]
    assert done and all((tmp_path / j.object).is_file() for j in done)  # paid and kept
    assert rig.stats.calls["run"] < 20  # it stopped submitting
    assert any("stopping this run" in (e.reason or "") for e in rig.kinds("warning"))


async def test_outputs_are_kept_by_identity_and_shown_under_their_names(tmp_path: Path, autojump_clock: Any) -> None:
    import os

    rig = Rig(tmp_path, latency=(0.1, 0.2))
    ledger = MemoryStore(planned(spec(i) for i in range(4)))
    outcome = await run_batch(rig.runner(ledger, concurrency=2))
    assert outcome.exit_code == 0
    rows = {r["identity"]: r for r in results(tmp_path)}
    for job in ledger.state.jobs.values():
        assert job.object == f".lumozbatch/objects/{job.identity[:2]}/{job.identity}{Path(job.file).suffix}"
        assert os.stat(tmp_path / job.object).st_ino == os.stat(tmp_path / job.file).st_ino
        assert os.stat(tmp_path / job.object).st_mode & 0o222 == 0  # read-only
        assert (rows[job.identity]["file"], rows[job.identity]["object"]) == (job.file, job.object)


async def test_a_retired_job_in_flight_is_followed_to_its_output(tmp_path: Path, autojump_clock: Any) -> None:
    from lumozbatch.core.records import Accepted, Intent, Retire

    rig = Rig(tmp_path, latency=(0.1, 0.2))
    first = MemoryStore(planned(spec(i) for i in range(2)))
    await run_batch(rig.runner(first, concurrency=2))
    # a new job was sent, then an edit retired it before its answer came back
    gone = spec(7)
    request_id = (await rig.runner(first).client.run(gone.model, gone.params)).request_id
    records = first.records + [r for r in planned([gone]) if r.get("t") == "job"]
    ledger = MemoryStore(records + [Intent(id=gone.identity, attempt=1), Accepted(id=gone.identity, request_id=request_id), Retire(id=gone.identity)])
    outcome = await run_batch(rig.runner(ledger, concurrency=2))
    job = ledger.state.jobs[gone.identity]
    assert job.retired and job.state == JobState.DONE
    assert (tmp_path / job.object).is_file()
    assert not (tmp_path / job.file).exists()  # its name is not the manifest's any more
    row = next(r for r in results(tmp_path) if r["identity"] == gone.identity)
    assert row["file"] == job.object
    assert outcome.exit_code == 0


async def test_a_dead_api_is_a_configuration_error_at_once_and_nothing_is_called_submitted(
    tmp_path: Path, autojump_clock: Any
) -> None:
    from lumozbatch.errors import ConfigError

    tries: list[str] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        tries.append(request.url.path)
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    ledger = MemoryStore(planned(spec(i) for i in range(3)))
    http = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    events: list[Event] = []
    runner = BatchRunner(ledger, LumozClient(http, "http://127.0.0.1:9", "k", SharedLimiter()), http, tmp_path, sink=events.append)
    start = trio.current_time()
    with pytest.raises(ConfigError) as info:
        await run_batch(runner)
    assert "cannot reach the API at http://127.0.0.1:9" in str(info.value)
    assert info.value.exit_code == 3
    assert trio.current_time() - start < 10
    assert tries == ["/api/v4/run"]  # the probe alone, once
    assert [e.kind for e in events if e.kind == "submit"] == []
    assert {j.state for j in ledger.state.jobs.values()} == {JobState.PENDING}  # nothing spent


async def test_a_connection_refused_after_the_api_answered_is_retried_not_fatal(
    tmp_path: Path, autojump_clock: Any
) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="PNG")
    runs = 0

    def flaky(request: httpx.Request) -> httpx.Response:
        nonlocal runs
        if request.url.path == "/api/v4/run":
            runs += 1
            if runs == 2:
                raise httpx.ConnectError("refused once", request=request)
            return httpx.Response(200, json={"success": True, "data": {"output": f"http://storage.test/o/{runs}.png"}})
        return httpx.Response(200, content=buf.getvalue())

    ledger = MemoryStore(planned(spec(i) for i in range(2)))
    http = httpx.AsyncClient(transport=httpx.MockTransport(flaky))
    events: list[Event] = []
    runner = BatchRunner(ledger, LumozClient(http, "http://api.test", "k", SharedLimiter()), http, tmp_path,
                         options=RunOptions(concurrency=1), sink=events.append)
    outcome = await run_batch(runner)
    assert outcome.exit_code == 0
    assert [e.kind for e in events].count("submit") == 2  # the refused try is a retry, not a submit
    assert [e.endpoint for e in events if e.kind == "retry"] == ["run"]


async def test_a_folder_where_results_jsonl_goes_stops_before_anything_is_sent(tmp_path: Path, autojump_clock: Any) -> None:
    from lumozbatch.errors import UsageError

    (tmp_path / "results.jsonl").mkdir()
    rig = Rig(tmp_path, latency=(0.1, 0.2))
    ledger = MemoryStore(planned(spec(i) for i in range(2)))
    with pytest.raises(UsageError, match="results.jsonl"):
        await run_batch(rig.runner(ledger))
    assert rig.stats.calls["run"] == 0
