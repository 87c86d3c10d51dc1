"""plandiff: the manifest's jobs against the ledger."""

from __future__ import annotations

from typing import Any

import pytest

from lumozbatch.core.jobspec import JobSpec
from lumozbatch.core.ledger_codec import pin_job_record, replay
from lumozbatch.core.plandiff import CATEGORIES, category_of, diff


def spec(identity: str, *, job: str = "portraits", model: str = "flux-sketch-smudge") -> JobSpec:
    return JobSpec(
        job=job,
        index=0,
        repeat=0,
        model=model,
        params={"prompt": identity, "seed": 1},
        variables={},
        identity=identity,
        filename=f"{job}/{identity}",
    )


def history(identity: str, *kinds: str, **fields: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    extra = {
        "intent": {"attempt": 1},
        "accepted": {"request_id": 9},
        "completed": {"url": "http://x/o.png"},
        "downloaded": {"file": "o.png"},
        "failed": {"reason": "nope", **fields},
        "ambiguous": {"reason": "timeout"},
    }
    for kind in kinds:
        out.append({"t": kind, "id": identity, **extra.get(kind, {})})
    return out


def test_without_a_ledger_everything_is_new() -> None:
    result = diff([spec("a"), spec("b", model="hidream-l1")], None)
    assert result.totals == {"new": 2, "done": 0, "in_flight": 0, "failed": 0, "ambiguous": 0, "removed": 0, "total": 2}
    assert result.by_model["hidream-l1"]["new"] == 1
    assert result.identities("new") == ["a", "b"]
    assert result.to_submit() == 2 and result.spent() == 0


def test_every_category_and_removed() -> None:
    specs = [spec(x) for x in "abcdefgh"]
    records = [pin_job_record(spec(x), 5) for x in "abcdefghz"] + [pin_job_record(spec("r"), 5), {"t": "retire", "id": "r"}]
    records += history("b", "intent", "accepted", "completed", "downloaded")  # done
    records += history("c", "intent", "accepted")  # in flight
    records += history("d", "intent", "accepted", "completed")  # in flight: paid, not on disk
    records += history("e", "intent", "failed", billed=False)  # failed (refused)
    records += history("f", "intent")  # crash after sending: ambiguous on replay
    records += history("g", "intent", "ambiguous")
    records += history("h", "intent", "accepted", "failed")  # failed after acceptance: billed
    state = replay(records)
    result = diff(specs, state)
    assert {e.identity: e.category for e in result.entries} == {
        "a": "new",
        "b": "done",
        "c": "in_flight",
        "d": "in_flight",
        "e": "failed",
        "f": "ambiguous",
        "g": "ambiguous",
        "h": "failed",
    }
    assert result.identities("removed") == ["z"]  # r was already retired
    assert result.totals == {"new": 1, "done": 1, "in_flight": 2, "failed": 2, "ambiguous": 2, "removed": 1, "total": 8}
    assert result.to_submit() == 1
    assert result.to_submit(retry_failed=True) == 3
    assert result.to_submit(retry_failed=True, resubmit_ambiguous=True) == 5
    # b, c, d, f, g, h (billed failure); not a (new), e (refused), z (pending), r (retired, pending)
    assert result.spent() == 6


def test_counts_per_job_and_model() -> None:
    specs = [spec("a", job="p"), spec("b", job="p"), spec("c", job="t", model="hidream-l1")]
    state = replay([pin_job_record(specs[0], 1), *history("a", "intent", "accepted", "completed", "downloaded")])
    result = diff(specs, state)
    assert result.by_job["p"] == {"new": 1, "done": 1, "in_flight": 0, "failed": 0, "ambiguous": 0, "removed": 0, "total": 2}
    assert result.by_job["t"]["new"] == 1
    assert result.by_model["flux-sketch-smudge"]["done"] == 1
    assert result.by_model["hidream-l1"]["total"] == 1


def test_a_retired_job_back_in_the_manifest_keeps_its_state() -> None:
    records = [pin_job_record(spec("a"), 1), *history("a", "intent", "accepted", "completed", "downloaded"), {"t": "retire", "id": "a"}]
    assert diff([spec("a")], replay(records)).entries[0].category == "done"


def test_duplicates_count_once_and_json_form() -> None:
    result = diff([spec("a"), spec("a")], None)
    assert result.totals["total"] == 1
    data = result.to_dict()
    assert data["jobs"] == [
        {"identity": "a", "key": "a", "job": "portraits", "model": "flux-sketch-smudge", "category": "new", "state": None, "reason": None}
    ]
    assert data["removed"] == [] and data["totals"]["new"] == 1


def test_category_helpers() -> None:
    assert category_of(None) == "new"
    assert set(CATEGORIES) == {"new", "done", "in_flight", "failed", "ambiguous"}
    with pytest.raises(ValueError):
        diff([], None).identities("bogus")
