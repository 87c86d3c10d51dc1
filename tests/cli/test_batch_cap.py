"""The generation cap belongs to the batch: ``resume`` keeps the manifest's
``limits.max_generations`` as last applied, even when the manifest is gone."""

from __future__ import annotations

from pathlib import Path

import pytest

from lumozbatch.batch import open_batch, resume_batch
from lumozbatch.core.records import Accepted, Batch, Completed, Downloaded, Failed, Intent, Job
from lumozbatch.errors import GenerationCapExceeded
from lumozbatch.shell.ledger import Ledger
from lumozbatch.shell.sqlite_store import SqliteStore

MANIFEST = """version: 1
name: capped
defaults: {{aspect_ratio: "1:1", output_format: png}}
jobs:
  - id: grid
    model: flux-sketch-smudge
    params: {{prompt: "Sketch Smudge, a lighthouse", num_inference_steps: 4}}
    matrix: {{seed: [1, 2]}}
    filename: "{{job}}/s{{seed}}"
limits: {{max_generations: {cap}}}
"""


def _job(identity: str, seed: int) -> Job:
    return Job(id=identity, job="grid", index=seed, repeat=0, model="flux-sketch-smudge",
               params={"prompt": "x", "seed": seed}, variables={"seed": seed}, filename=f"grid/s{seed}")


def test_resume_retry_failed_cannot_pass_the_batch_cap(tmp_path: Path) -> None:
    out = tmp_path / "out"
    a, b = "a" * 64, "b" * 64
    with Ledger.open(out, create=True) as ledger:
        ledger.append_sync(
            Batch(name="capped", manifest="gone.yaml", api="sandbox", max_generations=2),
            _job(a, 1), _job(b, 2),
            Intent(id=a, attempt=1), Accepted(id=a, request_id=1),
            Completed(id=a, request_id=1, url="http://s/a.png"),
            Downloaded(id=a, file="grid/s1.png", sha256="0" * 64, bytes=1),
            Intent(id=b, attempt=1), Accepted(id=b, request_id=2),
            Failed(id=b, reason="the model failed", code="failed", billed=True),
        )
    # spent 2 (a done, b billed); sending b again would make 3 > the batch's cap of 2
    with pytest.raises(GenerationCapExceeded, match="over the cap of 2 \\(the batch's limits.max_generations\\)"):
        resume_batch(out, sandbox=True).start(retry_failed=True)
    # --max-generations still overrides, knowingly
    with resume_batch(out, sandbox=True).start(retry_failed=True, max_generations=3) as run:
        assert run.plan.to_submit == 1


def test_apply_records_the_cap_when_the_manifest_changes_it(tmp_path: Path) -> None:
    manifest = tmp_path / "capped.yaml"
    manifest.write_text(MANIFEST.format(cap=5))
    out = tmp_path / "outputs" / "capped"
    with open_batch(manifest, sandbox=True).start():
        pass
    with SqliteStore.open(out, create=False) as ledger:
        assert ledger.batch["max_generations"] == 5
    manifest.write_text(MANIFEST.format(cap=4))
    with open_batch(manifest, sandbox=True).start():
        pass
    with SqliteStore.open(out, create=False) as ledger:
        assert ledger.batch["max_generations"] == 4
