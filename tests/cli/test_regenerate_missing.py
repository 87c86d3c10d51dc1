"""``--regenerate-missing`` reaches the planner from the CLI and the Python API (``apply``
and ``resume``), and only it pays again for an output lost beyond a free fetch."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from click.testing import CliRunner

from lumozbatch.batch import open_batch, resume_batch
from lumozbatch.cli import main
from lumozbatch.core.records import Failed, Missing
from tests.store_helpers import append_records

MANIFEST = """version: 1
name: lost
defaults: {aspect_ratio: "1:1", output_format: png}
jobs:
  - id: grid
    model: flux-sketch-smudge
    params: {prompt: "Sketch Smudge, a lighthouse", num_inference_steps: 4}
    matrix: {seed: [1, 2]}
    filename: "{job}/s{seed}"
"""


def lost_beyond_a_free_fetch(tmp_path: Path) -> tuple[Path, Path, str]:
    """A finished batch of two whose first output is gone from disk and could not be
    fetched again (the provider no longer has it)."""
    manifest = tmp_path / "lost.yaml"
    manifest.write_text(MANIFEST)
    first = CliRunner().invoke(main, ["apply", str(manifest), "--sandbox", "--quiet"], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    out = tmp_path / "outputs" / "lost"
    ident = json.loads((out / "results.jsonl").read_text().splitlines()[0])["identity"]
    kept = list((out / ".lumozbatch").rglob(f"{ident}*"))  # its copy in the output store
    for path in [out / "grid" / "s1.png", *kept]:
        path.chmod(0o644)
        path.unlink()
    append_records(out, Missing(id=ident, reason="deleted by hand"), Failed(id=ident, reason="410 Gone", code="expired", billed=False))
    return manifest, out, ident


def test_only_regenerate_missing_plans_to_pay_again(tmp_path: Path) -> None:
    manifest, out, _ = lost_beyond_a_free_fetch(tmp_path)
    with open_batch(manifest, sandbox=True).start() as run:
        assert (run.plan.missing, run.plan.reset_missing, run.plan.to_submit) == (1, 0, 0)
    with open_batch(manifest, sandbox=True).start(regenerate_missing=True) as run:
        assert (run.plan.missing, run.plan.reset_missing, run.plan.to_submit) == (0, 1, 1)
    with resume_batch(out, sandbox=True).start(regenerate_missing=True) as run:
        assert (run.plan.reset_missing, run.plan.to_submit) == (1, 1)


def test_apply_regenerate_missing_pays_once_more_and_brings_it_back(tmp_path: Path) -> None:
    manifest, out, ident = lost_beyond_a_free_fetch(tmp_path)
    result = CliRunner().invoke(
        main, ["apply", str(manifest), "--sandbox", "--regenerate-missing", "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    submitted = [json.loads(line) for line in result.stdout.splitlines() if '"event": "submit"' in line]
    assert len(submitted) == 1
    journal = (out / ".lumozbatch" / "sandbox-journal.jsonl").read_text().splitlines()
    created = Counter(json.dumps(json.loads(line)["params"], sort_keys=True) for line in journal)
    assert sorted(created.values()) == [1, 2]  # the lost one paid again, knowingly; the other once
    assert (out / "grid" / "s1.png").is_file()
