"""apply's planning: pinned random seeds, retire/re-activate, resets, and the generation cap."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from lumozbatch.core.jobspec import RANDOM_SEED, JobSpec
from lumozbatch.core.ledger_codec import LedgerState, pin_job, replay
from lumozbatch.errors import GenerationCapExceeded
from lumozbatch.core.jobcategory import spent_generations
from lumozbatch.shell.planning import check_cap, plan_batch, plan_resume

BATCH = {"t": "batch", "v": 1, "name": "t", "manifest": "m.yaml", "at": 0.0}


def spec(i: int, seed: Any = RANDOM_SEED) -> JobSpec:
    params = {"prompt": f"p {i}", "aspect_ratio": "1:1", "seed": seed}
    identity = hashlib.sha256(f"{i}".encode()).hexdigest()
    return JobSpec("j", i, 0, "flux-sketch-smudge", params, {"n": i}, identity, f"j/{i}")


def apply_plan(records: list[dict[str, Any]], specs: list[JobSpec], **flags: bool) -> tuple[list[dict[str, Any]], LedgerState]:
    state = replay(records)
    plan = plan_batch(state, specs, **flags)
    records = records + plan.records
    return records, replay(records)


def test_random_seeds_are_pinned_once_and_kept() -> None:
    specs = [spec(i) for i in range(20)]
    records, state = apply_plan([BATCH], specs)
    seeds = {i: job.params["seed"] for i, job in state.jobs.items()}
    assert all(isinstance(s, int) and 0 <= s < 2**32 for s in seeds.values())
    assert len(set(seeds.values())) > 1  # drawn, not a constant
    # planning the same manifest again appends nothing and changes no seed
    again = plan_batch(state, specs)
    assert again.records == [] and again.new == 0
    assert {i: job.params["seed"] for i, job in state.jobs.items()} == seeds


def test_edited_manifest_retires_and_reactivates_with_the_same_seed() -> None:
    specs = [spec(i) for i in range(3)]
    records, state = apply_plan([BATCH], specs)
    first_seed = state.jobs[specs[2].identity].params["seed"]
    records, state = apply_plan(records, specs[:2])  # job 2 left the manifest
    assert state.jobs[specs[2].identity].retired
    records, state = apply_plan(records, specs)  # and came back
    job = state.jobs[specs[2].identity]
    assert not job.retired
    assert job.params["seed"] == first_seed


def test_resets_and_counts() -> None:
    specs = [spec(i, seed=i) for i in range(5)]
    ids = [s.identity for s in specs]
    records, _ = apply_plan([BATCH], specs)
    records += [
        {"t": "intent", "id": ids[0], "attempt": 1},
        {"t": "accepted", "id": ids[0], "request_id": 10},
        {"t": "failed", "id": ids[0], "reason": "boom", "code": "failed", "billed": True},
        {"t": "intent", "id": ids[1], "attempt": 1},
        {"t": "ambiguous", "id": ids[1], "reason": "lost"},
        {"t": "intent", "id": ids[2], "attempt": 1},
        {"t": "accepted", "id": ids[2], "request_id": 11},
        {"t": "intent", "id": ids[3], "attempt": 1},
        {"t": "failed", "id": ids[3], "reason": "422", "code": "validation_error", "billed": False},
    ]
    state = replay(records)
    assert spent_generations(state.jobs.values()) == 3  # billed failure, ambiguous, in flight
    plain = plan_resume(state)
    assert (plain.to_submit, plain.failed, plain.ambiguous, plain.in_flight) == (1, 2, 1, 1)
    assert plain.records == []
    both = plan_resume(state, retry_failed=True, resubmit_ambiguous=True)
    assert (both.to_submit, both.reset_failed, both.reset_billed, both.reset_ambiguous) == (4, 2, 1, 1)
    assert sorted(r.why for r in both.records) == ["resubmit-ambiguous", "retry-failed", "retry-failed"]


def test_cap_counts_the_ledger_plus_the_plan() -> None:
    specs = [spec(i, seed=i) for i in range(4)]
    records, _ = apply_plan([BATCH], specs[:2])
    ids = [s.identity for s in specs]
    records += [
        {"t": "intent", "id": ids[0], "attempt": 1},
        {"t": "accepted", "id": ids[0], "request_id": 1},
        {"t": "intent", "id": ids[1], "attempt": 1},  # left without an answer: ambiguous
    ]
    plan = plan_batch(replay(records), specs)
    assert (plan.spent, plan.to_submit) == (2, 2)
    check_cap(plan, 4, source="--max-generations")
    check_cap(plan, None, source="--max-generations")
    with pytest.raises(GenerationCapExceeded) as info:
        check_cap(plan, 3, source="limits.max_generations")
    assert "4 generations, over the cap of 3 (limits.max_generations)" in info.value.message
    assert info.value.exit_code == 2


def test_the_cap_keeps_counting_generations_paid_before_a_reset() -> None:
    """A billed failure sent again, or an ambiguous run resubmitted, was paid (or may have
    been) twice: once the retry is done the ledger must still count both, or a later apply
    lets the batch pass limits.max_generations."""
    specs = [spec(i, seed=i) for i in range(4)]
    ids = [s.identity for s in specs]
    records, _ = apply_plan([BATCH], specs[:3])
    records += [
        {"t": "intent", "id": ids[0], "attempt": 1},
        {"t": "accepted", "id": ids[0], "request_id": 1},
        {"t": "failed", "id": ids[0], "reason": "boom", "code": "failed", "billed": True},
        {"t": "intent", "id": ids[1], "attempt": 1},
        {"t": "ambiguous", "id": ids[1], "reason": "lost"},
        {"t": "intent", "id": ids[2], "attempt": 1},  # a crash lost this answer
    ]
    records, state = apply_plan(records, specs[:3], retry_failed=True, resubmit_ambiguous=True)
    assert spent_generations(state.jobs.values()) == 3  # nothing un-spent by the resets
    for n, identity in enumerate(ids[:3]):
        records += [
            {"t": "intent", "id": identity, "attempt": 2},
            {"t": "accepted", "id": identity, "request_id": 10 + n},
            {"t": "completed", "id": identity, "url": f"http://s/{n}.png"},
            {"t": "downloaded", "id": identity, "file": f"{n}.png", "sha256": "0" * 64, "bytes": 1},
        ]
    state = replay(records)
    assert spent_generations(state.jobs.values()) == 6
    plan = plan_batch(state, specs)  # one more job in the manifest
    assert (plan.spent, plan.to_submit) == (6, 1)
    with pytest.raises(GenerationCapExceeded):
        check_cap(plan, 6, source="limits.max_generations")


def _lost(state, identity: str, *, tried: bool) -> None:
    from lumozbatch.core.records import Completed, Downloaded, Failed, Intent, Accepted, Missing

    for record in (
        Intent(id=identity, attempt=1), Accepted(id=identity, request_id=1),
        Completed(id=identity, request_id=1, url="http://s/a.png"),
        Downloaded(id=identity, file="a.png", sha256="0" * 64, bytes=1), Missing(id=identity, reason="deleted"),
    ):
        state.apply(record)
    if tried:
        state.apply(Failed(id=identity, reason="download failed: gone", code="download", billed=True))


def test_regenerate_missing_pays_again_only_for_what_cannot_be_fetched_for_free() -> None:
    from lumozbatch.core.ledger_codec import LedgerState
    from lumozbatch.shell.planning import plan_resume

    a, b = spec(1), spec(2)
    state = LedgerState()
    for s in (a, b):
        state.apply(pin_job(s, 1))
    _lost(state, a.identity, tried=False)
    _lost(state, b.identity, tried=True)
    free = plan_resume(state)
    assert (free.missing, free.to_submit, free.records) == (2, 0, [])
    paid = plan_resume(state, regenerate_missing=True)
    assert (paid.missing, paid.reset_missing, paid.to_submit) == (1, 1, 1)
    assert [r.id for r in paid.records] == [b.identity]
    assert paid.spent == 2


def test_a_retired_job_still_in_flight_is_counted_as_followed() -> None:
    from lumozbatch.core.ledger_codec import LedgerState
    from lumozbatch.core.records import Accepted, Intent

    a, b = spec(1), spec(2)
    state = LedgerState()
    for s in (a, b):
        state.apply(pin_job(s, 1))
    state.apply(Intent(id=a.identity, attempt=1))
    state.apply(Accepted(id=a.identity, request_id=9))
    plan = plan_batch(state, [b])
    assert (plan.retired, plan.followed) == (1, 1)
    assert plan.counts()["followed"] == 1
