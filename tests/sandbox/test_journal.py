"""A sandbox with a journal still answers /check for the jobs an earlier process created."""

from __future__ import annotations

from pathlib import Path

import trio

from lumozbatch.sandbox import SandboxConfig, create_app
from sandbox_helpers import AUTH, EPOCH, KEY, client_for


def sandbox_at(journal: Path, monotonic_origin: float):
    """A sandbox whose monotonic clock starts elsewhere, as a new process's does."""
    return create_app(
        SandboxConfig(latency=(10.0, 10.0), journal=str(journal), api_keys=(KEY, "other-key")),
        clock=lambda: monotonic_origin + trio.current_time(),
        wall_clock=lambda: EPOCH + trio.current_time(),
    )


async def test_a_restarted_sandbox_knows_the_journaled_jobs(tmp_path: Path, autojump_clock) -> None:
    journal = tmp_path / "journal.jsonl"
    first = sandbox_at(journal, 0.0)
    async with client_for(first) as c:
        r = await c.post("/api/v4/run", data={"model_id": "hidream-l1", "prompt": "a lighthouse"})
        request_id = r.json()["data"]["request_id"]
    await trio.sleep(5)

    second = sandbox_at(journal, 123_456.0)  # another process: another monotonic origin
    async with client_for(second) as c:
        halfway = (await c.post("/api/v4/check", data={"request_id": request_id})).json()["data"]
        assert halfway == {"request_id": request_id, "status": "processing", "progress": 50}
        await trio.sleep(5)
        done = (await c.post("/api/v4/check", data={"request_id": request_id})).json()["data"]
        assert done["status"] == "completed" and done["output"].startswith(second.storage_url)
        image = await c.get(done["output"])
        assert image.status_code == 200 and image.content[:2] == b"\xff\xd8"  # hidream: JPEG
        # the journal keeps who owns the job: another key still cannot see it
        other = await c.post("/api/v4/check", data={"request_id": request_id},
                             headers={**AUTH, "Authorization": "Bearer other-key"})
        assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"


async def test_a_torn_journal_line_is_skipped(tmp_path: Path, autojump_clock) -> None:
    journal = tmp_path / "journal.jsonl"
    first = sandbox_at(journal, 0.0)
    async with client_for(first) as c:
        ids = [
            (await c.post("/api/v4/run", data={"model_id": "hidream-l1", "prompt": p})).json()["data"]["request_id"]
            for p in ("one", "two")
        ]
    first.journal.close()
    with journal.open("a") as fh:
        fh.write('{"request_id": 1, "key": "sandb')  # a process killed mid-write
    second = sandbox_at(journal, 50.0)
    assert sorted(second.store.jobs) == sorted(ids)
