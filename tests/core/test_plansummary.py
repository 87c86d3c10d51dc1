"""plansummary against a replayed ledger: what a plan says beforehand about paid outputs
(names changing, kept aside, back for free, followed), one spent, and apply's plan counts."""

from __future__ import annotations

from typing import Any

import pytest

from lumozbatch.core.grid import expand
from lumozbatch.core.jobspec import JobSpec
from lumozbatch.core.ledger_codec import LedgerState, pin_job_record, replay
from lumozbatch.core.plansummary import ledger_view, summarize_against
from lumozbatch.core.records import to_wire
from lumozbatch.shell.planning import plan_batch
from tests.core.manifest_helpers import build

PRICE = 0.05


def manifest(prompt: str, subjects: tuple[str, ...] = ("cat", "dog")) -> Any:
    axis = ", ".join(subjects)
    return build(
        "version: 1\nname: t\njobs:\n  - id: j\n    model: hidream-l1\n"
        f"    params: {{prompt: \"{prompt}\"}}\n    matrix: {{subject: [{axis}]}}\n"
        f"    filename: \"{{subject}}\"\npricing: {{hidream-l1: {PRICE}}}\n"
    )


class Ledger:
    """Records as apply would append them: its plan's records, then each job's steps."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = [{"t": "batch", "v": 1, "name": "t", "manifest": "m.yaml", "at": 1.0}]
        self.request = 0

    def state(self) -> LedgerState:
        return replay(self.records)

    def apply_plan(self, specs: list[JobSpec]) -> None:
        self.records += [to_wire(r) for r in plan_batch(self.state(), specs).records]

    def run(self, spec: JobSpec, *, until: str = "downloaded") -> None:
        self.request += 1
        steps = [
            {"t": "intent", "id": spec.identity, "attempt": 1},
            {"t": "accepted", "id": spec.identity, "request_id": self.request},
            {"t": "completed", "id": spec.identity, "request_id": self.request, "url": "http://x/o.png"},
            {"t": "downloaded", "id": spec.identity, "file": spec.filename + ".png", "sha256": "0" * 64, "bytes": 1},
        ]
        self.records += steps[: [s["t"] for s in steps].index(until) + 1]


def plan_of(ledger: Ledger | None, m: Any) -> Any:
    specs = list(expand(m))
    view = ledger_view(ledger.state()) if ledger is not None else None
    return summarize_against(m, specs, view, out_dir="/repo/outputs/t")


def finished(m: Any) -> Ledger:
    ledger = Ledger()
    specs = list(expand(m))
    ledger.apply_plan(specs)
    for spec in specs:
        ledger.run(spec)
    return ledger


def test_without_a_ledger_everything_is_new_and_nothing_is_ahead() -> None:
    summary = plan_of(None, manifest("a {subject}"))
    assert summary.out_dir == "/repo/outputs/t"
    assert summary.run_counts() == {"new": 2, "pending": 2, "done": 0, "in_flight": 0, "failed": 0,
                                    "ambiguous": 0, "missing": 0, "retired": 0, "followed": 0, "total": 2}
    assert (summary.ahead.names_changing, summary.ahead.kept_aside, summary.ahead.back_for_free) == (0, 0, 0)
    assert summary.spent == 0 and summary.spend.by_model == {}


def test_an_edit_that_renames_paid_outputs_says_so_and_a_revert_is_free() -> None:
    q80, q90 = manifest("a {subject}"), manifest("an old {subject}")
    ledger = finished(q80)
    edit = plan_of(ledger, q90)
    assert edit.ahead.names_changing == 2  # cat and dog will show the new generations
    assert edit.ahead.kept_aside == 2  # the two paid outputs stay in the store
    assert edit.ahead.back_for_free == 0 and edit.ahead.retired == 2
    assert edit.counts["new"] == 2 and edit.spent == 2

    ledger.apply_plan(list(expand(q90)))
    for spec in expand(q90):
        ledger.run(spec)
    revert = plan_of(ledger, q80)
    assert revert.ahead.back_for_free == 2  # done before: no request
    assert revert.ahead.names_changing == 0  # they are done: nothing newer will be paid for
    assert revert.ahead.kept_aside == 2  # now the q90 outputs are set aside
    assert revert.counts["new"] == 0 and revert.counts["done"] == 2
    assert revert.spent == 4 and revert.spend.by_model == {"hidream-l1": 4}
    assert revert.spend.cost({"hidream-l1": PRICE}).total == pytest.approx(4 * PRICE)


def test_retired_jobs_in_flight_are_followed() -> None:
    both = manifest("a {subject}")
    ledger = Ledger()
    specs = list(expand(both))
    ledger.apply_plan(specs)
    ledger.run(specs[0], until="accepted")  # interrupted with cat in flight
    ledger.run(specs[1], until="completed")
    only_dog = manifest("a {subject}", ("dog",))
    summary = plan_of(ledger, only_dog)
    assert summary.ahead.followed == 1 and summary.removed == 1
    assert summary.counts["in_flight"] == 1


@pytest.mark.parametrize("step", ["first", "edit", "revert", "shrink", "grow"])
def test_run_counts_are_apply_plan_event_counts(step: str) -> None:
    """plan --json's run_counts and apply's plan event (shell.planning) count alike."""
    q80, q90 = manifest("a {subject}"), manifest("an old {subject}")
    ledger = finished(q80)
    target = {
        "first": q80,
        "edit": q90,
        "revert": q80,
        "shrink": manifest("a {subject}", ("cat",)),
        "grow": manifest("a {subject}", ("cat", "dog", "owl")),
    }[step]
    if step == "revert":
        ledger.apply_plan(list(expand(q90)))
        ledger.run(list(expand(q90))[0], until="accepted")
    summary = plan_of(ledger, target)
    assert summary.run_counts() == plan_batch(ledger.state(), list(expand(target))).counts()
