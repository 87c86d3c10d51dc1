"""``open_batch(manifest, out="s3://...")`` through ``BatchRun.execute`` with the sandbox: the
Python API's run, its reconcile and its gallery, with the outputs in a bucket and the batch's
state in the user's state folder."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from lumozbatch import open_batch
from lumozbatch.shell.outputs import open_outputs

if TYPE_CHECKING:
    from tests.s3_server import Moto


MANIFEST = """version: 1
name: bucketed
defaults:
  aspect_ratio: "1:1"
jobs:
  - id: j
    model: flux-sketch-smudge
    params:
      prompt: "Sketch Smudge, a lighthouse"
    matrix:
      seed: [1, 2, 3]
"""


def test_a_batch_applied_to_a_bucket_keeps_nothing_in_the_working_folder(
    s3_env: str, moto_server: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work, state = tmp_path / "work", tmp_path / "state"
    work.mkdir()
    manifest = tmp_path / "m.yaml"
    manifest.write_text(MANIFEST)
    monkeypatch.chdir(work)
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    url = f"s3://{s3_env}/ci/bucketed"
    batch = open_batch(manifest, out=url, sandbox=True)
    assert batch.out_dir.is_relative_to(state)
    with batch.start() as run:
        # what Batch.start is to do once it opens the outputs itself (the lead wires it)
        run.outputs = open_outputs(url, state_home=batch.out_dir)
        outcome = run.execute()
    assert outcome.exit_code == 0, outcome.counts
    assert run.gallery_problem is None
    rows = [json.loads(line) for line in moto_server.body(s3_env, "ci/bucketed/results.jsonl").splitlines()]
    assert len(rows) == 3
    for row in rows:
        data = moto_server.body(s3_env, f"ci/bucketed/{row['file']}")
        assert hashlib.sha256(data).hexdigest() == row["sha256"]
    assert b"j/" in moto_server.body(s3_env, "ci/bucketed/index.html")
    assert list(work.iterdir()) == []
