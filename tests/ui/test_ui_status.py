"""status: what the ledger knows, as a table or JSON; no ledger -> exit 2."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from lumozbatch.cli import main
from lumozbatch.ui.status import render_status, status_data


def test_status_table_lists_counts_failures_and_ambiguous(portraits) -> None:
    b, out = portraits
    result = CliRunner().invoke(main, ["status", "outputs/sketch-portraits"])
    assert result.exit_code == 0, result.output
    text = result.output
    lines = text.splitlines()
    assert lines[:5] == [
        "Status of sketch-portraits (outputs/sketch-portraits; manifest manifests/sketch.yaml)",
        "  8 jobs: 6 done, 1 failed, 1 ambiguous",
        "",
        "  job        pending  in flight  done  failed  ambiguous  total",
        "  portraits        0          0     6       1          1      8",
    ]
    assert "  failed (1):" in lines
    assert f"    portraits#{b.ids[3][:12]} flux-sketch-smudge [validation_error]: guidance must be at most 10" in lines
    assert "  ambiguous (1): sent, answer lost; may have been billed, no result to fetch:" in lines
    assert f"    portraits#{b.ids[6][:12]} flux-sketch-smudge: read timeout after the run was sent" in lines
    assert ("    retry the failed jobs:    lumozbatch apply manifests/sketch.yaml --out outputs/sketch-portraits "
            "--retry-failed") in lines
    assert "--resubmit-ambiguous" in text
    assert "continue:" not in text  # nothing pending or in flight


def test_status_json(portraits) -> None:
    b, out = portraits
    result = CliRunner().invoke(main, ["status", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["name"] == "sketch-portraits"
    assert data["counts"] == {"pending": 0, "in_flight": 0, "done": 6, "failed": 1, "ambiguous": 1,
                              "retired": 0, "total": 8}
    assert data["jobs"] == {"portraits": {"pending": 0, "in_flight": 0, "done": 6, "failed": 1, "ambiguous": 1,
                                          "total": 8}}
    assert [f["identity"] for f in data["failed"]] == [b.ids[3]]
    assert data["failed"][0]["reason"] == "guidance must be at most 10"
    assert data["failed"][0]["billed"] is False
    assert [a["identity"] for a in data["ambiguous"]] == [b.ids[6]]


def test_status_per_job_and_in_flight(batch, tmp_path: Path) -> None:
    b = batch()
    a = b.job("portraits", {"subject": "a"})
    b.job("portraits", {"subject": "b"})
    c = b.job("towers", {"time": "dawn"}, model="hidream-l1")
    b.accepted(a, request_id=99)
    b.done(c, "towers/c.png")
    data = status_data(b.state(), out_dir=tmp_path)
    assert data["jobs"]["portraits"] == {"pending": 1, "in_flight": 1, "done": 0, "failed": 0, "ambiguous": 0,
                                         "total": 2}
    assert data["in_flight"][0]["request_id"] == 99
    text = render_status(b.state(), out_dir=Path("outputs/x"))
    assert "  all              1          1     1       0          0      3" in text.splitlines()
    assert "  3 jobs: 1 done, 1 in flight, 1 pending" in text.splitlines()
    assert "    continue:                 lumozbatch resume outputs/x" in text.splitlines()


def test_status_without_a_ledger_exits_2(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(main, ["status", "empty"])
    assert result.exit_code == 2
    assert result.output.startswith("Error: ")
    assert "ledger" in result.output.lower()


def test_status_of_a_manifest_reads_its_default_output_folder(portraits, tmp_path: Path) -> None:
    import shutil

    from ui_helpers import MANIFESTS_DIR

    shutil.copy(MANIFESTS_DIR / "sketch-portraits.yaml", tmp_path / "m.yaml")  # name: sketch-portraits
    result = CliRunner().invoke(main, ["status", "m.yaml", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["counts"]["done"] == 6


def test_status_says_why_a_pending_job_was_not_created(batch, tmp_path: Path) -> None:
    b = batch()
    a = b.job("portraits", {"subject": "a"})
    b.records += [{"t": "intent", "id": a, "attempt": 1}, {"t": "unsent", "id": a, "reason": "connection refused"}]
    text = render_status(b.state(), out_dir=Path("o"))
    assert "  not sent yet after 1 attempt(s) that created nothing:" in text
    assert f"      connection refused (1 job: portraits#{a[:12]})" in text
    assert "continue:                 lumozbatch resume o" in text


def test_a_run_on_the_wire_is_in_flight_in_status_and_summary_alike() -> None:
    """One vocabulary (core.jobcategory): a live ledger's SUBMITTING job is in flight
    everywhere, and ambiguous only once replay settles it (its run is over)."""
    from ui_helpers import Batch

    from lumozbatch.core.ledger_codec import replay
    from lumozbatch.ui.summary import render_summary

    b = Batch()
    a = b.job("portraits", {"subject": "a"})
    b.records.append({"t": "intent", "id": a, "attempt": 1})
    live = replay(b.records, settle=False)
    assert status_data(live, out_dir=Path("o"))["counts"]["in_flight"] == 1
    assert "1 in flight" in render_summary(live, out_dir=Path("o"), command_hint="lumozbatch apply m.yaml", pricing=None)
    settled = replay(b.records)
    assert status_data(settled, out_dir=Path("o"))["counts"]["ambiguous"] == 1


def test_status_names_outputs_deleted_by_hand_and_says_what_apply_does(portraits) -> None:
    b, out = portraits
    gone = out / "portraits" / "an_old_fisherman-melancholic-s1.png"
    gone.unlink()
    result = CliRunner().invoke(main, ["status", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "  missing (1): gone from disk and from .lumozbatch/objects:" in lines
    assert (f"    portraits/an_old_fisherman-melancholic-s1.png (portraits#{b.ids[0][:12]})" in lines)
    assert ("  apply restores what it can (a fresh URL from the provider, for free); "
            "apply --regenerate-missing pays for the rest") in lines
    assert f"    pay again for the rest:   lumozbatch apply manifests/sketch.yaml --out {out} --regenerate-missing" in lines
    data = json.loads(CliRunner().invoke(main, ["status", str(out), "--json"]).output)
    assert [m["identity"] for m in data["missing"]] == [b.ids[0]]
    assert data["missing"][0]["file"] == "portraits/an_old_fisherman-melancholic-s1.png"


def test_status_spent_and_its_cost_from_the_manifests_prices(portraits, tmp_path: Path) -> None:
    b, out = portraits
    data = json.loads(CliRunner().invoke(main, ["status", str(out), "--json"]).output)
    assert data["spent"] == 7  # six done and one ambiguous; the refused failure cost nothing
    assert data["cost"] is None  # the manifest is not there: no prices
    assert "  spent: 7 generations (1 of them ambiguous: sent, answer lost, may have been billed)" in (
        CliRunner().invoke(main, ["status", str(out)]).output.splitlines())
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "sketch.yaml").write_text(
        "version: 1\nname: sketch-portraits\njobs: []\npricing: {flux-sketch-smudge: 0.025}\n")
    priced = json.loads(CliRunner().invoke(main, ["status", str(out), "--json"]).output)
    assert priced["cost"] == 0.175 and priced["spent_by_model"] == {"flux-sketch-smudge": 7}
    text = CliRunner().invoke(main, ["status", str(out)]).output
    assert "  spent: $0.175 for 7 generations" in text


def test_status_during_a_run_says_so_and_suggests_nothing(batch, tmp_path: Path) -> None:
    import os

    b = batch()
    a = b.job("portraits", {"subject": "a"})
    b.accepted(a)
    out = tmp_path / "o"
    b.write(out)
    (out / ".lumozbatch" / "lock").write_text(str(os.getpid()))
    result = CliRunner().invoke(main, ["status", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1] == f"  a run is in progress (pid {os.getpid()}): these counts are changing"
    assert "resume" not in result.output and "next:" not in result.output
    assert json.loads(CliRunner().invoke(main, ["status", str(out), "--json"]).output)["run_in_progress"] == os.getpid()
    (out / ".lumozbatch" / "lock").write_text("")  # the run ended cleanly
    assert f"    continue:                 lumozbatch resume {out}" in CliRunner().invoke(
        main, ["status", str(out)]).output.splitlines()


def test_status_of_an_interrupted_sandbox_run_keeps_sandbox(batch) -> None:
    b = batch()
    b.records[0]["api"] = "sandbox"
    a = b.job("portraits", {"subject": "a"})
    f = b.job("portraits", {"subject": "f"})
    b.accepted(a)
    b.failed(f, "nope")
    lines = render_status(b.state(), out_dir=Path("o")).splitlines()
    assert "    continue:                 lumozbatch resume o --sandbox" in lines
    assert "    retry the failed jobs:    lumozbatch apply manifests/sketch.yaml --out o --sandbox --retry-failed" in lines


def test_status_counts_retired_jobs_kept_and_followed(batch) -> None:
    b = batch()
    kept = b.job("portraits", {"subject": "k"})
    flying = b.job("portraits", {"subject": "f"})
    now = b.job("portraits", {"subject": "n"})
    b.done(kept, "k.png")
    b.accepted(flying)
    b.done(now, "n.png")
    b.records += [{"t": "retire", "id": kept}, {"t": "retire", "id": flying}]
    data = status_data(b.state(), out_dir=Path("o"))
    assert (data["counts"]["retired"], data["retired_kept"], data["followed"], data["spent"]) == (2, 1, 1, 3)
    lines = render_status(b.state(), out_dir=Path("o")).splitlines()
    assert "  1 retired job kept its output in .lumozbatch/objects" in lines
    assert "  1 retired job still in flight: followed to its output" in lines
    assert "    continue:                 lumozbatch resume o" in lines


def test_status_table_gains_a_missing_column_only_when_some_are_missing(batch) -> None:
    b = batch()
    a = b.job("portraits", {"subject": "a"})
    b.done(a, "a.png")
    b.records.append({"t": "missing", "id": a, "reason": "a.png and its kept copy were deleted"})
    data = status_data(b.state(), out_dir=Path("o"))
    assert data["counts"]["missing"] == 1 and data["counts"]["total"] == 1
    lines = render_status(b.state(), out_dir=Path("o")).splitlines()
    assert lines[1] == "  1 job: 1 missing"
    assert lines[3] == "  job        pending  in flight  done  failed  ambiguous  missing  total"
