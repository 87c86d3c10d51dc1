"""An empty ``ledger.jsonl`` (a run that died before writing its batch record) is no ledger:
never an all-done batch of zero jobs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from lumozbatch.cli import main
from tests.conftest import MANIFESTS


def _empty_ledger(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    (out / ".lumozbatch").mkdir(parents=True)
    (out / ".lumozbatch" / "ledger.jsonl").write_bytes(b"")
    return out


@pytest.mark.parametrize("command", [["status"], ["status", "--json"], ["resume"], ["gallery"]])
def test_status_resume_and_gallery_say_there_is_no_ledger(tmp_path: Path, command: list[str]) -> None:
    out = _empty_ledger(tmp_path)
    result = CliRunner().invoke(main, [command[0], str(out), *command[1:]], env={"LUMOZ_API_KEY": "k"})
    assert result.exit_code == 2, result.output
    assert f"Error: no ledger in {out}" in result.output
    assert "all done" not in result.output


def test_plan_and_apply_treat_it_as_a_new_batch(tmp_path: Path) -> None:
    out = _empty_ledger(tmp_path)
    manifest = shutil.copy(MANIFESTS / "sketch-portraits.yaml", tmp_path / "sketch-portraits.yaml")
    planned = CliRunner().invoke(main, ["plan", str(manifest), "--out", str(out), "--json"])
    assert planned.exit_code == 0, planned.output
    doc = json.loads(planned.output)
    assert doc["run_counts"]["new"] == doc["run_counts"]["total"] > 0
    applied = CliRunner().invoke(main, ["apply", str(manifest), "--out", str(out), "--sandbox", "--quiet"])
    assert applied.exit_code == 0, applied.output
    status = CliRunner().invoke(main, ["status", str(out), "--json"])
    assert json.loads(status.output)["counts"]["done"] == doc["run_counts"]["total"]
