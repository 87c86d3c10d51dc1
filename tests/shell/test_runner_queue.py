"""The runner's queue of pending jobs: streamed from the store a window at a time, so a run
holds the jobs in flight and a window, never every pending identity of the batch."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lumozbatch.core.jobstate import JobState
from lumozbatch.core.ledger_codec import JobRecord
import lumozbatch.shell.runner as runner_module
from lumozbatch.shell.runner import run_batch
from lumozbatch.shell.store import MemoryStore
from tests.shell.test_runner import Rig, planned, spec, states


class CountingStore(MemoryStore):
    """A memory store that counts the pending jobs the runner has taken from its stream."""

    pulled = 0

    def iter_jobs(self, states: Iterable[JobState] | None = None, **kw: Any) -> Iterator[JobRecord]:
        for job in super().iter_jobs(states, **kw):
            if states is not None and JobState.PENDING in set(states):
                self.pulled += 1
            yield job


async def test_pending_jobs_are_taken_from_the_store_a_window_at_a_time(
    tmp_path: Path, autojump_clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # While the model's first request goes alone, the queue looks ahead along the stream (for
    # jobs of models already admitted) as far as the look-ahead, here made small to be seen.
    monkeypatch.setattr(runner_module, "_QUEUE_LOOKAHEAD", 300)
    rig = Rig(tmp_path, latency=(1.0, 2.0))
    ledger = CountingStore(planned(spec(i) for i in range(1000)))
    seen_at_first_download: list[int] = []

    runner = rig.runner(ledger, concurrency=4)
    sink = runner.sink

    def watch(event: Any) -> None:
        if event.kind == "downloaded" and not seen_at_first_download:
            seen_at_first_download.append(ledger.pulled)
        sink(event)

    runner.sink = watch
    assert ledger.pulled == 0  # nothing is read before the run asks
    outcome = await run_batch(runner)
    assert outcome.exit_code == 0 and states(ledger) == {"done": 1000}
    assert rig.stats.jobs_created == 1000 and rig.stats.duplicates() == {}
    assert ledger.pulled == 1000
    assert 0 < seen_at_first_download[0] <= 300 + 4  # the look-ahead and the jobs in flight, not the 1000


async def test_a_dead_model_fails_its_jobs_streamed_after_the_404_too(tmp_path: Path, autojump_clock: Any) -> None:
    """Jobs of an unknown model beyond the first window are failed unsent as they are
    streamed in, and the run ends (nothing waits for a probe that will never open)."""
    rig = Rig(tmp_path, latency=(0.1, 0.2))
    specs = [spec(i, model="no-such-model") for i in range(700)] + [spec(i) for i in range(700, 710)]
    ledger = MemoryStore(planned(specs))
    outcome = await run_batch(rig.runner(ledger, concurrency=4))
    assert outcome.exit_code == 1
    assert states(ledger) == {"failed": 700, "done": 10}
    assert rig.stats.calls["run"] == 11  # one probe of the unknown model, then the known ones
    failed = ledger.jobs_in(JobState.FAILED)
    assert {j.code for j in failed} == {"model_not_found"} and not any(j.billed for j in failed)
