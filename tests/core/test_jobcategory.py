"""jobcategory: a ledger job's plan category, and what the generation cap counts as spent."""

from __future__ import annotations

from typing import Any

import pytest

from lumozbatch.core.jobcategory import CATEGORIES, category_of, spent_generations
from lumozbatch.core.jobspec import JobSpec
from lumozbatch.core.ledger_codec import pin_job_record, replay


def job(identity: str) -> dict[str, Any]:
    spec = JobSpec("portraits", 0, 0, "flux-sketch-smudge", {"prompt": identity, "seed": 1}, {}, identity, identity)
    return pin_job_record(spec, 1)


STEPS: dict[str, dict[str, Any]] = {
    "intent": {"attempt": 1},
    "accepted": {"request_id": 9},
    "completed": {"url": "http://x/o.png"},
    "downloaded": {"file": "o.png", "sha256": "0" * 64, "bytes": 1},
    "ambiguous": {"reason": "timeout"},
}


def history(identity: str, *kinds: str, **failed: Any) -> list[dict[str, Any]]:
    out = [job(identity)]
    for kind in kinds:
        extra = {"reason": "nope", **failed} if kind == "failed" else STEPS.get(kind, {})
        out.append({"t": kind, "id": identity, **extra})
    return out


CASES = [
    ((), "new", False),
    (("intent",), "ambiguous", True),  # replayed after a crash: the answer was lost
    (("intent", "unsent"), "new", False),
    (("intent", "accepted"), "in_flight", True),
    (("intent", "accepted", "completed"), "in_flight", True),
    (("intent", "accepted", "completed", "downloaded"), "done", True),
    (("intent", "ambiguous"), "ambiguous", True),
]


@pytest.mark.parametrize(("steps", "category", "spent"), CASES)
def test_category_and_spent(steps: tuple[str, ...], category: str, spent: bool) -> None:
    record = replay(history("a", *steps)).jobs["a"]
    assert category_of(record) == category
    assert spent_generations([record]) == int(spent)


def test_failures_cost_only_when_billed() -> None:
    refused = replay(history("a", "intent", "failed", code="validation_error", billed=False)).jobs["a"]
    billed = replay(history("b", "intent", "accepted", "failed", code="failed", billed=True)).jobs["b"]
    assert category_of(refused) == category_of(billed) == "failed"
    assert spent_generations([refused, billed]) == 1


def test_not_in_the_ledger_is_new_and_every_category_is_named() -> None:
    assert category_of(None) == "new"
    assert CATEGORIES == ("new", "done", "in_flight", "failed", "ambiguous", "missing")


def test_a_run_on_the_wire_is_in_flight_and_spent() -> None:
    """A live ledger (not settled) shows SUBMITTING: the run is on the wire, not lost."""
    record = replay(history("a", "intent"), settle=False).jobs["a"]
    assert record.state.value == "submitting"
    assert category_of(record) == "in_flight"
    assert spent_generations([record]) == 1


def test_every_state_has_a_category() -> None:
    from lumozbatch.core.jobcategory import category_of_state
    from lumozbatch.core.jobstate import JobState

    assert {category_of_state(s) for s in JobState} == set(CATEGORIES)
