"""plan's text and --json say beforehand what apply does to paid outputs, and one spent."""

from __future__ import annotations

from lumozbatch.core.grid import expand
from lumozbatch.ui.plan import plan_data, render_plan
from tests.core.test_plansummary import finished, manifest, plan_of


def test_plan_of_an_edit_names_changing_files_kept_outputs_and_the_folder() -> None:
    ledger = finished(manifest("a {subject}"))
    summary = plan_of(ledger, manifest("an old {subject}"))
    text = render_plan(summary)
    assert "  2 in the ledger but no longer in the manifest (retired: not sent again)" in text
    assert "  compared against the batch in /repo/outputs/t" in text
    assert "  2 named files will change to newer generations (the older outputs are kept in .lumozbatch/objects)" in text
    assert "  kept aside: the outputs of 2 retired jobs, in .lumozbatch/objects" in text
    assert "  spent so far: $0.10 for 2 generations" in text
    assert "back for free" not in text and "followed" not in text and "missing" not in text

    doc = plan_data(summary)
    assert doc["out_dir"] == "/repo/outputs/t"
    assert (doc["names_changing"], doc["kept_aside"], doc["back_for_free"], doc["followed"], doc["missing"]) == (
        2, 2, 0, 0, 0)
    assert (doc["pending"], doc["retired"], doc["spent"], doc["spent_cost"]) == (2, 2, 2, 0.1)
    assert doc["spent_by_model"] == {"hidream-l1": 2}
    assert doc["run_counts"] == {"new": 2, "pending": 2, "done": 0, "in_flight": 0, "failed": 0, "ambiguous": 0,
                                 "missing": 0, "retired": 2, "followed": 0, "total": 2}
    assert doc["cost"]["to_submit"] == 0.1


def test_plan_of_a_revert_is_free() -> None:
    q80, q90 = manifest("a {subject}"), manifest("an old {subject}")
    ledger = finished(q80)
    ledger.apply_plan(list(expand(q90)))
    for spec in expand(q90):
        ledger.run(spec)
    summary = plan_of(ledger, q80)
    text = render_plan(summary)
    assert "  back for free: 2 done before, their outputs return under their names" in text
    assert "will change" not in text
    assert text.endswith("apply would submit 0 generations.\n")
    doc = plan_data(summary)
    assert (doc["back_for_free"], doc["kept_aside"], doc["to_submit"], doc["spent"]) == (2, 2, 0, 4)


def test_plan_follows_retired_jobs_in_flight() -> None:
    ledger = finished(manifest("a {subject}", ("cat",)))
    ledger.apply_plan(list(expand(manifest("a {subject}"))))
    dog = list(expand(manifest("a {subject}")))[1]
    ledger.run(dog, until="accepted")
    summary = plan_of(ledger, manifest("a {subject}", ("cat",)))
    assert "  followed: 1 retired job still in flight, downloaded at no new cost" in render_plan(summary)
    assert plan_data(summary)["followed"] == 1
    assert plan_data(summary)["run_counts"]["retired"] == 1
