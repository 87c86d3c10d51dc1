"""A batch is anchored to its manifest, not to the folder the command is typed in (issue #9):
the same manifest means one output folder and one payment from anywhere; a folder holds one
batch (another manifest of the same name is refused, ``--adopt`` takes a moved one over);
every command names the folder it used. Through CliRunner with the in-process sandbox."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from lumozbatch.cli import main
from tests.store_helpers import state_dump, step_records

MANIFEST = """version: 1
name: {name}
defaults: {{aspect_ratio: "1:1", output_format: png}}
jobs:
  - id: grid
    model: flux-sketch-smudge
    params: {{prompt: "Sketch Smudge, {{subject}}, for {name}", num_inference_steps: 4}}
    matrix:
      subject: [{subjects}]
      seed: [1, 2]
    filename: "{{job}}/{{subject}}-s{{seed}}"
"""


def write(path: Path, name: str = "anchored", subjects: str = "a cat, a dog") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(MANIFEST.format(name=name, subjects=subjects))
    return path


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    top = tmp_path / "repo"
    top.mkdir()
    git(top, "init", "-q")
    return top


def invoke(*args: str, cwd: Path | None = None) -> Result:
    if cwd is not None:
        os.chdir(cwd)  # the autouse fixture restores the test's own folder afterwards
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def events(result: Result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def created(out: Path) -> Counter[str]:
    """The in-process sandbox's own count of generations it created, per parameter set."""
    journal = out / ".lumozbatch" / "sandbox-journal.jsonl"
    lines = journal.read_text().splitlines() if journal.is_file() else []
    return Counter(json.dumps(json.loads(line)["params"], sort_keys=True) for line in lines)


def images(out: Path) -> dict[str, str]:
    """Every output under its name, by content."""
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((out / "grid").rglob("*.png"))
    }


def ledger_records(out: Path) -> list[dict]:
    return step_records(out)


def test_one_manifest_is_one_batch_from_any_folder_in_a_git_repository(repo: Path, tmp_path: Path) -> None:
    manifest = write(repo / "manifests" / "deep" / "x.yaml")
    out = repo / "outputs" / "anchored"
    first = invoke("apply", str(manifest.relative_to(repo)), "--sandbox", "--json", cwd=repo)
    assert first.exit_code == 0, first.output
    plan = events(first)[0]
    assert plan["event"] == "plan" and plan["out_dir"] == str(out.resolve())
    assert "outputs: outputs/anchored/" in first.output  # text: relative to where it was typed
    done = images(out)
    assert len(done) == 4
    for cwd in (repo / "manifests" / "deep", tmp_path):
        again = invoke("apply", os.path.relpath(manifest, cwd), "--sandbox", "--json", cwd=cwd)
        assert again.exit_code == 0, again.output
        kinds = [e["event"] for e in events(again)]
        assert "submit" not in kinds and "accepted" not in kinds, kinds
        assert events(again)[0]["out_dir"] == str(out.resolve())
    assert images(out) == done
    assert sorted(created(out).values()) == [1, 1, 1, 1]  # paid once, whatever the folder
    assert not (tmp_path / "outputs").exists() and not (repo / "manifests" / "deep" / "outputs").exists()
    batch = ledger_records(out)[0]
    assert batch["t"] == "batch" and batch["manifest_key"] == "manifests/deep/x.yaml"


def test_outside_any_repository_the_batch_lives_beside_the_manifest(tmp_path: Path) -> None:
    manifest = write(tmp_path / "plain" / "x.yaml")
    out = tmp_path / "plain" / "outputs" / "anchored"
    (tmp_path / "elsewhere").mkdir()
    for cwd in (tmp_path, tmp_path / "plain", tmp_path / "elsewhere"):
        result = invoke("apply", os.path.relpath(manifest, cwd), "--sandbox", "--quiet", cwd=cwd)
        assert result.exit_code == 0, result.output
    assert len(images(out)) == 4 and sorted(created(out).values()) == [1, 1, 1, 1]
    assert ledger_records(out)[0]["manifest_key"] == str(manifest.resolve())
    # named from outside it: absolute
    status = invoke("status", "../plain/x.yaml", cwd=tmp_path / "elsewhere")
    assert status.exit_code == 0, status.output
    assert status.output.startswith(f"Status of anchored ({out.resolve()}")


def test_every_command_names_the_folder_it_used(repo: Path, tmp_path: Path) -> None:
    manifest = write(repo / "manifests" / "x.yaml")
    out = repo / "outputs" / "anchored"
    before = invoke("plan", "manifests/x.yaml", cwd=repo)
    assert before.exit_code == 0, before.output
    assert "  compared against the batch in outputs/anchored\n" in before.output  # typed from the top
    assert invoke("apply", "manifests/x.yaml", "--sandbox", "--quiet", cwd=repo).exit_code == 0
    (tmp_path / "elsewhere").mkdir()
    after = invoke("plan", str(manifest), cwd=tmp_path / "elsewhere")
    assert f"  compared against the batch in {out.resolve()}\n" in after.output  # outside the current folder: absolute
    doc = json.loads(invoke("plan", "x.yaml", "--json", cwd=repo / "manifests").output)
    assert doc["out_dir"] == str(out.resolve()) and doc["counts"]["done"] == 4
    status = invoke("status", "manifests/x.yaml", cwd=repo)
    assert status.output.startswith("Status of anchored (outputs/anchored;")
    data = json.loads(invoke("status", "manifests/x.yaml", "--json", cwd=repo).output)
    assert data["out_dir"] == str(out.resolve())
    gallery = invoke("gallery", "manifests/x.yaml", cwd=repo)
    assert gallery.output == "wrote outputs/anchored/index.html\n"
    resumed = invoke("resume", "x.yaml", "--sandbox", "--json", cwd=repo / "manifests")
    assert resumed.exit_code == 0, resumed.output
    assert events(resumed)[0]["out_dir"] == str(out.resolve())
    assert f"outputs: {out.resolve()}/" in resumed.output  # outside the current folder: absolute


def test_two_manifests_with_one_name_exit_2_naming_both(repo: Path) -> None:
    write(repo / "manifests" / "a.yaml", subjects="a cat")
    write(repo / "manifests" / "b.yaml", subjects="a dog")
    out = repo / "outputs" / "anchored"
    assert invoke("apply", "manifests/a.yaml", "--sandbox", "--quiet", cwd=repo).exit_code == 0
    done, ledger = images(out), state_dump(out)
    refused = invoke("apply", "manifests/b.yaml", "--sandbox", cwd=repo)
    assert refused.exit_code == 2
    assert refused.output.startswith(
        "Error: outputs/anchored holds the batch 'anchored' of the manifest manifests/a.yaml, not of manifests/b.yaml\n"
    )
    assert "--adopt" in refused.output and "--out DIR" in refused.output
    planned = invoke("plan", "b.yaml", "--json", cwd=repo / "manifests")
    assert planned.exit_code == 2
    assert "of the manifest manifests/a.yaml, not of manifests/b.yaml: apply would refuse it" in planned.output
    assert images(out) == done and state_dump(out) == ledger
    assert sorted(created(out).values()) == [1, 1]
    # a separate batch in its own folder is fine
    apart = invoke("apply", "manifests/b.yaml", "--sandbox", "--quiet", "--out", "outputs/anchored-b", cwd=repo)
    assert apart.exit_code == 0, apart.output
    assert images(out) == done


def test_adopt_after_git_mv_continues_with_nothing_resubmitted(repo: Path) -> None:
    write(repo / "manifests" / "x.yaml")
    out = repo / "outputs" / "anchored"
    assert invoke("apply", "manifests/x.yaml", "--sandbox", "--quiet", cwd=repo).exit_code == 0
    done = images(out)
    git(repo, "add", "manifests/x.yaml")
    git(repo, "mv", "manifests/x.yaml", "manifests/renamed.yaml")
    assert invoke("plan", "manifests/renamed.yaml", cwd=repo).exit_code == 2
    refused = invoke("apply", "manifests/renamed.yaml", "--sandbox", cwd=repo)
    assert refused.exit_code == 2 and "not of manifests/renamed.yaml" in refused.output
    adopted = invoke("apply", "manifests/renamed.yaml", "--sandbox", "--adopt", "--json", cwd=repo)
    assert adopted.exit_code == 0, adopted.output
    kinds = [e["event"] for e in events(adopted)]
    assert "submit" not in kinds and "accepted" not in kinds, kinds
    moved = [r for r in ledger_records(out) if r["t"] == "moved"]
    assert [(r["manifest"], r["manifest_key"]) for r in moved] == [("manifests/renamed.yaml", "manifests/renamed.yaml")]
    # from now on the batch is the renamed manifest's, with no --adopt; the old name is refused
    assert invoke("apply", "manifests/renamed.yaml", "--sandbox", "--quiet", cwd=repo).exit_code == 0
    assert invoke("plan", "manifests/renamed.yaml", cwd=repo).exit_code == 0
    write(repo / "manifests" / "x.yaml")
    assert invoke("apply", "manifests/x.yaml", "--sandbox", cwd=repo).exit_code == 2
    assert images(out) == done and sorted(created(out).values()) == [1, 1, 1, 1]
    assert len([r for r in ledger_records(out) if r["t"] == "moved"]) == 1


def test_a_ledger_from_before_manifest_key_gets_it_on_the_first_apply(repo: Path) -> None:
    write(repo / "manifests" / "x.yaml")
    out = repo / "outputs" / "anchored"
    ledger = out / ".lumozbatch" / "ledger.jsonl"
    ledger.parent.mkdir(parents=True)
    ledger.write_text(json.dumps({"t": "batch", "v": 1, "name": "anchored", "manifest": "old.yaml", "api": "sandbox", "at": 1.0}) + "\n")
    assert invoke("plan", "manifests/x.yaml", cwd=repo).exit_code == 0  # nothing to compare: accepted
    assert invoke("apply", "manifests/x.yaml", "--sandbox", "--quiet", cwd=repo).exit_code == 0
    moved = [r for r in ledger_records(out) if r["t"] == "moved"]
    assert [r["manifest_key"] for r in moved] == ["manifests/x.yaml"]
    write(repo / "manifests" / "other.yaml")
    assert invoke("apply", "manifests/other.yaml", "--sandbox", cwd=repo).exit_code == 2


def test_help_says_what_adopt_and_regenerate_missing_cost() -> None:
    apply_help = " ".join(invoke("apply", "--help").output.split())
    assert "--adopt" in apply_help and "costs nothing" in apply_help
    assert "--regenerate-missing" in apply_help and "Pay again" in apply_help
    resume_help = " ".join(invoke("resume", "--help").output.split())
    assert "--regenerate-missing" in resume_help and "--adopt" not in resume_help
