"""The demo batch end to end, as a person would use it: apply on the sandbox, then every
output carries its provenance, reproduce regenerates it, and the gallery shows it all."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from lumozbatch.core.grid import expand
from lumozbatch.manifest_io import load_manifest
from lumozbatch.provenance import read_metadata
from ui_helpers import MANIFESTS_DIR

pytestmark = pytest.mark.e2e


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["lumozbatch", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_demo_batch_provenance_reproduce_and_gallery(tmp_path: Path, browser) -> None:
    out = tmp_path / "out"
    manifest = MANIFESTS_DIR / "sketch-portraits.yaml"
    applied = run("apply", str(manifest), "--sandbox", "--out", str(out), cwd=tmp_path)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "sketch-portraits: 10 of 10 done" in applied.stdout

    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 10
    for row in rows:
        assert row["manifest"] == str(manifest)
        if (MANIFESTS_DIR.parent / ".git").exists():  # a checkout: the commit is recorded
            assert re.fullmatch(r"[0-9a-f]{40}", row["git_commit"])
            assert isinstance(row["git_dirty"], bool)
        meta = read_metadata(out / row["file"])
        assert meta is not None, row["file"]
        assert (meta["model"], meta["params"], meta["identity"]) == (row["model"], row["params"], row["identity"])

    row = rows[0]
    printed = run("reproduce", str(out / row["file"]), cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    again = tmp_path / "again.yaml"
    again.write_text(printed.stdout)
    validated = run("validate", str(again), cwd=tmp_path)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert yaml.safe_load(printed.stdout)["jobs"][0]["params"]["seed"] == row["params"]["seed"]
    (spec,) = list(expand(load_manifest(again)))
    assert spec.identity == row["identity"]

    dom = browser.dump_dom((out / "index.html").as_uri())
    assert re.findall(r'data-load="([a-z]+)"', dom) == ["loaded"] * 10
