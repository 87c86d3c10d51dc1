"""The final summary: counts, failures by cause, ambiguous, spend, and the next commands."""

from __future__ import annotations

from pathlib import Path

from lumozbatch.ui.summary import render_summary


def test_summary_groups_failures_by_cause_and_gives_the_commands(batch) -> None:
    b = batch()
    ids = [b.job("portraits", {"subject": f"s{i}"}) for i in range(7)]
    b.done(ids[0], "portraits/a.png")
    b.done(ids[1], "portraits/b.png")
    b.failed(ids[2], "guidance must be at most 10")
    b.failed(ids[3], "guidance must be at most 10")
    b.failed(ids[4], "Model execution failed", code=None, billed=True)
    b.ambiguous(ids[5], "read timeout after sending")
    # ids[6] never sent
    text = render_summary(b.state(), out_dir=Path("outputs/sketch-portraits"),
                          command_hint="lumozbatch apply manifests/sketch.yaml", pricing=None)
    lines = text.splitlines()
    assert lines[0] == "sketch-portraits: 2 of 7 done, 3 failed, 1 ambiguous, 1 not yet sent"
    assert lines[1] == "  failed (3), by cause:"
    assert lines[2] == (f"    [validation_error] guidance must be at most 10 (2 jobs: portraits#{ids[2][:12]}, "
                        f"portraits#{ids[3][:12]})")
    assert lines[3] == f"    Model execution failed (1 job: portraits#{ids[4][:12]})"
    assert "ambiguous (1): sent, but the answer was lost" in lines[4]
    assert lines[5] == f"    read timeout after sending (1 job: portraits#{ids[5][:12]})"
    assert "outputs: outputs/sketch-portraits/ (gallery: outputs/sketch-portraits/index.html)" in lines
    assert "  continue:                 lumozbatch apply manifests/sketch.yaml" in lines
    assert "  retry the failed jobs:    lumozbatch apply manifests/sketch.yaml --retry-failed" in lines
    assert ("  resubmit the ambiguous (may pay twice): lumozbatch apply manifests/sketch.yaml "
            "--resubmit-ambiguous") in lines


def test_summary_after_resume_builds_the_apply_command_from_the_ledger(batch) -> None:
    b = batch(manifest="my manifests/x.yaml")
    ident = b.job("portraits", {"subject": "a"})
    b.failed(ident, "nope")
    text = render_summary(b.state(), out_dir=Path("out dir"), command_hint="lumozbatch resume 'out dir'",
                          pricing=None)
    assert "  retry the failed jobs:    lumozbatch apply 'my manifests/x.yaml' --out 'out dir' --retry-failed" in text
    assert "continue" not in text  # nothing left to continue


def test_all_done_with_spend(batch) -> None:
    b = batch()
    a = b.job("portraits", {"subject": "a"})
    c = b.job("towers", {"time": "dawn"}, model="hidream-l1")
    d = b.job("towers", {"time": "dusk"}, model="hidream-l1")
    b.done(a, "a.png")
    b.done(c, "c.png")
    b.done(d, "d.png")
    text = render_summary(b.state(), out_dir=Path("o"), command_hint="lumozbatch apply m.yaml",
                          pricing={"flux-sketch-smudge": 0.025})
    assert text.splitlines()[0] == "sketch-portraits: 3 of 3 done"
    assert "spent: $0.025 for 1 generation" in text
    assert "(no price known for hidream-l1)" in text
    assert text.rstrip().endswith("all done.")


def test_spend_counts_billed_failures_and_bounds_ambiguous(batch) -> None:
    b = batch()
    ids = [b.job("portraits", {"subject": f"s{i}"}) for i in range(5)]
    b.done(ids[0], "a.png")
    b.failed(ids[1], "x", billed=True)
    b.failed(ids[2], "y", billed=False)  # refused: not billed
    b.ambiguous(ids[3])
    b.accepted(ids[4])  # in flight: accepted, will be billed
    text = render_summary(b.state(), out_dir=Path("o"), command_hint="lumozbatch apply m.yaml",
                          pricing={"flux-sketch-smudge": 0.5})
    # SPEC 4 "Spent": one number, ambiguous submissions included (they may have been billed)
    assert "spent: $2.00 for 4 generations (1 of them ambiguous: sent, answer lost, may have been billed)" in text
    assert "in flight (1): accepted by the API" in text
    assert "  continue:                 lumozbatch apply m.yaml" in text


def test_identities_restrict_the_account_and_retired_are_counted(batch) -> None:
    b = batch()
    a = b.job("portraits", {"subject": "a"})
    c = b.job("portraits", {"subject": "c"})
    b.records.append({"t": "retire", "id": c})
    b.done(a, "a.png")
    state = b.state()
    text = render_summary(state, out_dir=Path("o"), command_hint="lumozbatch apply m.yaml", pricing=None)
    assert text.splitlines()[0] == "sketch-portraits: 1 of 1 done"
    assert "  1 no longer in the manifest (kept in the ledger)" in text
    only = render_summary(state, out_dir=Path("o"), command_hint="lumozbatch apply m.yaml", pricing=None,
                          identities={c})
    assert only.splitlines()[0] == "sketch-portraits: 0 of 1 done, 1 not yet sent"


def test_spent_counts_retired_jobs_and_resets_and_is_the_ledgers_spent(batch) -> None:
    """The issue's "$0.30 for 12 in a folder where 24 were paid": retired outputs were paid."""
    from lumozbatch.core.jobcategory import spent_generations

    b = batch()
    old = [b.job("portraits", {"subject": f"old{i}"}) for i in range(2)]
    new = [b.job("portraits", {"subject": f"new{i}"}) for i in range(2)]
    for ident in old:
        b.done(ident, f"{ident[:6]}.png")
        b.records.append({"t": "retire", "id": ident})
    b.failed(new[0], "Model execution failed", code=None, billed=True)
    b.records.append({"t": "reset", "id": new[0], "why": "retry-failed"})
    b.done(new[0], "n0.png")
    b.done(new[1], "n1.png")
    state = b.state()
    assert spent_generations(state.jobs.values()) == 5  # 2 retired + a billed failure + 2
    text = render_summary(state, out_dir=Path("o"), command_hint="lumozbatch apply m.yaml",
                          pricing={"flux-sketch-smudge": 0.1})
    assert text.splitlines()[0] == "sketch-portraits: 2 of 2 done"
    assert "spent: $0.50 for 5 generations" in text.splitlines()
    assert "  2 retired jobs kept their outputs in .lumozbatch/objects" in text.splitlines()
    bare = render_summary(state, out_dir=Path("o"), command_hint="lumozbatch resume o", pricing=None)
    assert "spent: 5 generations" in bare.splitlines()  # resume has no prices: the count


def test_summary_lists_missing_outputs_and_the_commands(batch) -> None:
    b = batch()
    a = b.job("portraits", {"subject": "a"}, filename="portraits/a")
    c = b.job("portraits", {"subject": "c"})
    b.done(a, "portraits/a.png")
    b.done(c, "portraits/c.png")
    b.records.append({"t": "missing", "id": a, "reason": "portraits/a.png and its kept copy were deleted"})
    text = render_summary(b.state(), out_dir=Path("o"), command_hint="lumozbatch apply m.yaml", pricing=None)
    lines = text.splitlines()
    assert lines[0] == "sketch-portraits: 1 of 2 done, 1 missing"
    assert "  missing (1): gone from disk; apply fetches them again for free while the provider keeps them:" in lines
    assert f"    portraits/a.png (portraits#{a[:12]}): portraits/a.png and its kept copy were deleted" in lines
    assert "  continue:                 lumozbatch apply m.yaml" in lines
    assert ("  pay again for the missing the provider no longer has: lumozbatch apply m.yaml "
            "--regenerate-missing") in lines
    assert "all done." not in text


def test_retired_jobs_in_flight_are_followed_and_counted(batch) -> None:
    b = batch()
    a = b.job("portraits", {"subject": "a"})
    c = b.job("portraits", {"subject": "c"})
    b.done(a, "a.png")
    b.accepted(c)
    b.records.append({"t": "retire", "id": c})
    text = render_summary(b.state(), out_dir=Path("o"), command_hint="lumozbatch resume o", pricing=None)
    assert "  1 retired job still in flight: followed to its output" in text.splitlines()
    assert "  continue:                 lumozbatch resume o" in text.splitlines()
    assert "spent: 2 generations" in text.splitlines()


def test_a_sandbox_batch_is_continued_against_the_sandbox(batch) -> None:
    b = batch()
    b.records[0]["api"] = "sandbox"
    a = b.job("portraits", {"subject": "a"})
    f = b.job("portraits", {"subject": "f"})
    b.accepted(a)
    b.failed(f, "nope")
    text = render_summary(b.state(), out_dir=Path("o"), command_hint="lumozbatch resume o", pricing=None)
    assert "  continue:                 lumozbatch resume o --sandbox" in text.splitlines()
    assert ("  retry the failed jobs:    lumozbatch apply manifests/sketch.yaml --out o --sandbox --retry-failed"
            in text.splitlines())
    given = render_summary(b.state(), out_dir=Path("o"), command_hint="lumozbatch apply m.yaml --sandbox",
                           pricing=None)
    assert "  continue:                 lumozbatch apply m.yaml --sandbox" in given.splitlines()


def test_jobs_relinked_by_their_webhooks_are_counted(batch) -> None:
    b = batch()
    a, c = b.job("portraits", {"subject": "a"}), b.job("portraits", {"subject": "c"})
    b.done(c, "c.png")
    b.ambiguous(a, "connection reset after sending")
    b.records += [
        {"t": "relinked", "id": a, "request_id": 9},
        {"t": "completed", "id": a, "request_id": 9, "url": "http://x/9.png"},
        {"t": "downloaded", "id": a, "file": "a.png", "sha256": "0" * 64, "bytes": 10},
    ]
    text = render_summary(b.state(), out_dir=Path("o"), command_hint="lumozbatch apply m.yaml", pricing=None)
    lines = text.splitlines()
    assert lines[0] == "sketch-portraits: 2 of 2 done"
    assert ("  1 relinked by their webhooks: the run's answer was lost, the webhook named the request "
            "(not sent again)") in lines
    assert text.rstrip().endswith("all done.")
