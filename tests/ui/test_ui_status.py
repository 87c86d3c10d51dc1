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
