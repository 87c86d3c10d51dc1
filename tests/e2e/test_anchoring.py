"""Issue #9, story 3 as a user types it, in subprocesses against a sandbox process: the same
``apply`` from three folders (the top of a git repository the test makes, a folder inside
it, a folder outside it) uses one output folder and pays once; a ``git mv`` of the manifest
is refused until ``--adopt``, which sends nothing; another manifest of the same name is
refused naming both. The sandbox's own count of submissions is the ground truth."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from demo_repo import git_init
from e2e_support import env_for, ledger, run_cli, write_manifest
from lumozbatch.core.jobcategory import spent_generations

pytestmark = pytest.mark.e2e


def pixels(out: Path) -> dict[str, str]:
    """Every output under its name, by its decoded pixels (and size)."""
    found = {}
    for path in sorted((out / "grid").rglob("*.png")):
        with Image.open(path) as image:
            found[path.relative_to(out).as_posix()] = f"{image.size}:{hashlib.sha256(image.tobytes()).hexdigest()}"
    return found


def test_one_manifest_one_folder_one_payment_from_any_folder(tmp_path: Path, start_sandbox) -> None:
    sandbox = start_sandbox("--latency", "0.05-0.2")
    env = env_for(sandbox)
    repo = git_init(tmp_path / "repo")
    (repo / "manifests" / "deep").mkdir(parents=True)
    manifest = write_manifest(repo / "manifests" / "deep", "anchored", subjects=2, seeds=3)  # 6 jobs
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    out = repo / "outputs" / "anchored"

    seen = None
    for cwd in (repo, repo / "manifests", outside):
        done = run_cli(["apply", os.path.relpath(manifest, cwd), "--json"], env=env, cwd=cwd, timeout=90)
        assert done.returncode == 0, done.stderr
        plan = json.loads(done.stdout.splitlines()[0])
        assert plan["event"] == "plan" and plan["out_dir"] == str(out.resolve())
        assert len(pixels(out)) == 6
        if seen is None:
            seen = pixels(out)
        assert pixels(out) == seen  # nothing overwritten
    assert not (outside / "outputs").exists() and not (repo / "manifests" / "outputs").exists()
    stats = sandbox.stats()
    assert stats["total_submissions"] == 6 and stats["duplicate_submissions"] == {}
    assert spent_generations(ledger(out).jobs.values()) == 6

    # the manifest renamed in git: refused (plan too) until --adopt, which sends nothing
    subprocess.run(["git", "-C", str(repo), "add", "-A", "manifests"], check=True, timeout=30)
    subprocess.run(["git", "-C", str(repo), "mv", "manifests/deep/anchored.yaml", "manifests/moved.yaml"], check=True, timeout=30)
    for command in (["plan", "manifests/moved.yaml"], ["apply", "manifests/moved.yaml"]):
        refused = run_cli(command, env=env, cwd=repo)
        assert refused.returncode == 2, refused.stderr
        assert "of the manifest manifests/deep/anchored.yaml, not of manifests/moved.yaml" in refused.stderr
        assert "--adopt" in refused.stderr
    adopted = run_cli(["apply", "manifests/moved.yaml", "--adopt", "--json"], env=env, cwd=repo)
    assert adopted.returncode == 0, adopted.stderr
    kinds = [json.loads(line)["event"] for line in adopted.stdout.splitlines() if line.startswith("{")]
    assert "submit" not in kinds and "accepted" not in kinds, kinds

    # another manifest with the same name, at the old path: another batch, refused naming both
    write_manifest(repo / "manifests" / "deep", "anchored", subjects=1, seeds=1)
    other = run_cli(["apply", "manifests/deep/anchored.yaml"], env=env, cwd=repo)
    assert other.returncode == 2, other.stderr
    assert "of the manifest manifests/moved.yaml, not of manifests/deep/anchored.yaml" in other.stderr
    assert pixels(out) == seen
    assert sandbox.stats()["total_submissions"] == 6
