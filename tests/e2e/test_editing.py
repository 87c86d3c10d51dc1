"""Issue #9, story by story: editing a manifest never destroys, abandons or re-buys paid work.

Each test types the commands a user types, in a git repository it makes (the manifest under
``manifests/``, so the outputs land at ``<repo>/outputs/<name>/`` whatever the current
folder), against a sandbox process. The images on disk are checked by their pixels and
hashes, and the sandbox's own counters say what was paid.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from lumozbatch.core.money import format_money
from lumozbatch.shell.lockfile import run_in_progress

from e2e_support import env_for, ledger, results, run_cli, start_cli
from editing_support import (
    PRICE,
    Spec,
    created,
    doc,
    event,
    git,
    kept_objects,
    make_repo,
    pixels,
    sha256,
    snapshot,
    summary_spent,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def _ok(done, code: int = 0) -> None:
    assert done.returncode == code, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


# -- story 1: an edit that gives the names to new generations; the revert is free ----------


def test_story1_changed_prompt_keeps_old_images_and_revert_is_free(tmp_path: Path, start_sandbox) -> None:
    sandbox = start_sandbox("--latency", "0.05-0.2")
    env = env_for(sandbox)
    repo = make_repo(tmp_path)
    spec = Spec("story-one")
    manifest = spec.write(repo / "manifests" / "one.yaml")
    out = repo / "outputs" / "story-one"

    _ok(run_cli(["apply", "manifests/one.yaml", "--quiet"], env=env, cwd=repo))
    first = snapshot(out, spec.names)
    assert created(sandbox.stats()) == 4
    assert {r["file"]: r["sha256"] for r in results(out)} == {n: d for n, (d, _) in first.items()}

    spec.style = "ink"  # the prompt text changes, the names do not
    spec.write(manifest)
    plan = run_cli(["plan", "manifests/one.yaml", "--json"], env=env, cwd=repo)
    _ok(plan)
    planned = doc(plan.stdout)
    assert planned["names_changing"] == 4, planned
    assert planned["to_submit"] == 4
    assert Path(planned["out_dir"]).resolve() == out.resolve()
    text = run_cli(["plan", "manifests/one.yaml"], env=env, cwd=repo)
    _ok(text)
    assert "4" in text.stdout and "change" in text.stdout, text.stdout

    _ok(run_cli(["apply", "manifests/one.yaml", "--quiet"], env=env, cwd=repo))
    assert created(sandbox.stats()) == 8
    second = snapshot(out, spec.names)
    for name in spec.names:
        assert second[name][1] != first[name][1], f"{name} still shows the first image"
    kept = kept_objects(out)
    for name, (digest, image) in first.items():
        assert digest in kept, f"the first {name} is gone from the output folder"
        assert pixels(kept[digest]) == image
    assert all(digest in kept for digest, _ in second.values())

    spec.style = "charcoal"  # the revert
    spec.write(manifest)
    plan = run_cli(["plan", "manifests/one.yaml", "--json"], env=env, cwd=repo)
    _ok(plan)
    planned = doc(plan.stdout)
    assert planned["back_for_free"] == 4, planned
    assert planned["to_submit"] == 0
    before = sandbox.stats()
    _ok(run_cli(["apply", "manifests/one.yaml", "--quiet"], env=env, cwd=repo))
    after = sandbox.stats()
    assert after["calls"].get("run", 0) == before["calls"].get("run", 0)
    assert created(after) == 8 and after["duplicate_submissions"] == {}
    for name, (digest, _) in first.items():
        assert sha256(out / name) == digest, f"{name} does not show the first image again"
    kept = kept_objects(out)
    assert all(digest in kept for digest, _ in second.values()), "the second images were dropped"


# -- story 2: a folder holds one batch ------------------------------------------------------


def test_story2_two_manifests_with_one_name_refused_then_adopt_after_git_mv(tmp_path: Path, start_sandbox) -> None:
    sandbox = start_sandbox("--latency", "0.05-0.2")
    env = env_for(sandbox)
    repo = make_repo(tmp_path)
    first = Spec("shared")
    first.write(repo / "manifests" / "first.yaml")
    other = Spec("shared", subjects=["owl", "fox"], style="pastel")
    other.write(repo / "manifests" / "other.yaml")
    out = repo / "outputs" / "shared"

    _ok(run_cli(["apply", "manifests/first.yaml", "--quiet"], env=env, cwd=repo))
    before = snapshot(out, first.names)
    assert created(sandbox.stats()) == 4

    refused = run_cli(["apply", "manifests/other.yaml", "--quiet"], env=env, cwd=repo)
    _ok(refused, 2)
    assert "first.yaml" in refused.stderr and "other.yaml" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    assert created(sandbox.stats()) == 4
    assert snapshot(out, first.names) == before
    assert not any((out / n).exists() for n in other.names)
    planned = run_cli(["plan", "manifests/other.yaml"], env=env, cwd=repo)
    _ok(planned, 2)

    git(repo, "add", "manifests/first.yaml")
    git(repo, "commit", "-q", "-m", "first")
    git(repo, "mv", "manifests/first.yaml", "manifests/renamed.yaml")
    moved = run_cli(["apply", "manifests/renamed.yaml", "--quiet"], env=env, cwd=repo)
    _ok(moved, 2)  # not told it was moved: refused like any other manifest
    assert "first.yaml" in moved.stderr and "renamed.yaml" in moved.stderr, moved.stderr
    adopted = run_cli(["apply", "manifests/renamed.yaml", "--adopt", "--quiet"], env=env, cwd=repo)
    _ok(adopted)
    assert created(sandbox.stats()) == 4
    assert snapshot(out, first.names) == before
    again = run_cli(["apply", "manifests/renamed.yaml", "--quiet"], env=env, cwd=repo)
    _ok(again)  # adopted once, for good
    assert created(sandbox.stats()) == 4


# -- story 3: the batch is anchored to its manifest, not to the current folder --------------


def test_story3_the_same_manifest_from_other_folders_pays_nothing_again(tmp_path: Path, start_sandbox) -> None:
    sandbox = start_sandbox("--latency", "0.05-0.2")
    env = env_for(sandbox)
    repo = make_repo(tmp_path)
    spec = Spec("anchored", seeds=[1, 2, 3])
    spec.write(repo / "manifests" / "anchored.yaml")
    out = (repo / "outputs" / "anchored").resolve()

    first = run_cli(["apply", "manifests/anchored.yaml", "--json"], env=env, cwd=repo)
    _ok(first)
    assert Path(event(first.stdout, "plan")["out_dir"]).resolve() == out
    assert created(sandbox.stats()) == 6
    images = snapshot(out, spec.names)

    for cwd, path in ((repo / "manifests", "anchored.yaml"), (tmp_path, "repo/manifests/anchored.yaml")):
        plan = run_cli(["plan", path, "--json"], env=env, cwd=cwd)
        _ok(plan)
        planned = doc(plan.stdout)
        assert Path(planned["out_dir"]).resolve() == out, planned
        assert planned["to_submit"] == 0, planned
        text = run_cli(["plan", path], env=env, cwd=cwd)
        _ok(text)
        assert "outputs/anchored" in text.stdout, text.stdout
        again = run_cli(["apply", path, "--json"], env=env, cwd=cwd)
        _ok(again)
        assert Path(event(again.stdout, "plan")["out_dir"]).resolve() == out
        assert Path(event(again.stdout, "finished")["out_dir"]).resolve() == out
        assert "outputs/anchored" in again.stderr, again.stderr
        assert created(sandbox.stats()) == 6
        assert not (cwd / "outputs").exists(), f"a second batch folder under {cwd}"
    assert snapshot(out, spec.names) == images


# -- story 4: retired is not abandoned -------------------------------------------------------


def test_story4_jobs_in_flight_then_retired_are_still_downloaded(tmp_path: Path, start_sandbox) -> None:
    sandbox = start_sandbox("--latency", "4-6", "--sync-threshold", "0")
    env = env_for(sandbox)
    repo = make_repo(tmp_path)
    spec = Spec("story-four", subjects=["cat", "dog"], seeds=[1, 2, 3, 4])
    manifest = spec.write(repo / "manifests" / "four.yaml")
    out = repo / "outputs" / "story-four"

    proc = start_cli(["apply", "manifests/four.yaml", "--json", "--concurrency", "8"], env=env, cwd=repo)
    assert proc.stdout is not None
    accepted = 0
    deadline = time.monotonic() + 40
    while accepted < 8 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        accepted += '"event": "accepted"' in line
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert accepted == 8, "the run did not get 8 jobs in flight"
    assert proc.returncode == 130, stderr
    state = ledger(out)
    in_flight = [j for j in state.jobs.values() if j.state.value in ("submitted", "completed")]
    dogs = [j for j in in_flight if j.variables["subject"] == "dog"]
    assert dogs, "no dog job was still in flight at the interrupt"
    assert created(sandbox.stats()) == 8

    spec.subjects = ["cat"]  # the axis value the in-flight dogs belong to
    spec.write(manifest)
    plan = run_cli(["plan", "manifests/four.yaml", "--json"], env=env, cwd=repo)
    _ok(plan)
    assert doc(plan.stdout)["followed"] == len(dogs), plan.stdout
    assert doc(plan.stdout)["to_submit"] == 0

    _ok(run_cli(["apply", "manifests/four.yaml", "--quiet"], env=env, cwd=repo, timeout=90))
    stats = sandbox.stats()
    assert created(stats) == 8 and stats["duplicate_submissions"] == {}
    state = ledger(out)
    kept = kept_objects(out)
    for job in state.jobs.values():
        assert sandbox.submissions(job.model, job.params) == 1
        assert job.state.value == "done", f"{job.variables} left {job.state.value}"
        assert job.sha256 in kept, f"{job.variables}: its output is not kept"
    for name in spec.names:
        assert (out / name).is_file()
    status = run_cli(["status", "manifests/four.yaml", "--json"], env=env, cwd=repo)
    _ok(status)
    data = doc(status.stdout)
    assert data["counts"]["retired"] == 4
    assert data["spent"] == 8


# -- story 5: one "spent" --------------------------------------------------------------------


def test_story5_spent_is_what_the_sandbox_created_everywhere(tmp_path: Path, start_sandbox) -> None:
    # billed failures (retried knowingly) and runs whose answer is lost after the provider
    # created the job (ambiguous, resubmitted knowingly): every one of them is spent
    sandbox = start_sandbox(
        "--latency", "0.05-0.3", "--sync-threshold", "0", "--fail-rate", "0.3",
        "--reset-after-create", "0.1", "--seed", "5",
    )
    env = env_for(sandbox)
    repo = make_repo(tmp_path)
    spec = Spec("story-five", subjects=["cat", "dog", "owl"], seeds=[1, 2, 3, 4])
    manifest = spec.write(repo / "manifests" / "five.yaml")

    first = run_cli(["apply", "manifests/five.yaml", "--quiet"], env=env, cwd=repo)
    assert first.returncode in (0, 1), first.stderr
    for again in (["--retry-failed"], ["--retry-failed", "--resubmit-ambiguous"], ["--retry-failed"]):
        retried = run_cli(["apply", "manifests/five.yaml", *again, "--quiet"], env=env, cwd=repo)
        assert retried.returncode in (0, 1), retried.stderr
    assert created(sandbox.stats()) > 12, "no billed failure nor ambiguous run was sent again"

    spec.subjects = ["cat", "dog"]  # retired jobs stay spent
    spec.write(manifest)
    final = run_cli(["apply", "manifests/five.yaml", "--json"], env=env, cwd=repo)
    assert final.returncode in (0, 1), final.stderr
    paid = created(sandbox.stats())
    assert sum(sandbox.stats()["submissions"].values()) == paid

    assert event(final.stdout, "finished")["extra"]["spent"] == paid  # README: extra.spent
    money, count = summary_spent(final.stderr)
    assert count == paid
    assert money == format_money(paid * PRICE)
    plan = run_cli(["plan", "manifests/five.yaml", "--json"], env=env, cwd=repo)
    _ok(plan)
    assert doc(plan.stdout)["spent"] == paid
    status = run_cli(["status", "manifests/five.yaml", "--json"], env=env, cwd=repo)
    _ok(status)
    assert doc(status.stdout)["spent"] == paid
    text = run_cli(["status", "manifests/five.yaml"], env=env, cwd=repo)
    _ok(text)
    assert format_money(paid * PRICE) in text.stdout and str(paid) in text.stdout, text.stdout


# -- story 6: an output deleted by hand ------------------------------------------------------


def test_story6_deleted_outputs_are_noticed_restored_or_paid_again_knowingly(tmp_path: Path, start_sandbox) -> None:
    journal = tmp_path / "provider-journal.jsonl"
    sandbox = start_sandbox("--latency", "0.05-0.2", "--journal", str(journal))
    env = env_for(sandbox)
    repo = make_repo(tmp_path)
    spec = Spec("story-six")
    spec.write(repo / "manifests" / "six.yaml")
    out = repo / "outputs" / "story-six"
    _ok(run_cli(["apply", "manifests/six.yaml", "--quiet"], env=env, cwd=repo))
    images = snapshot(out, spec.names)
    victim = spec.names[0]
    digest, image = images[victim]

    # 1. the name deleted by hand: noticed, put back from the kept copy, no request
    (out / victim).unlink()
    status = run_cli(["status", "manifests/six.yaml"], env=env, cwd=repo)
    _ok(status)
    assert "missing" in status.stdout.lower() or "restor" in status.stdout.lower(), status.stdout
    before = sandbox.stats()
    restored = run_cli(["apply", "manifests/six.yaml"], env=env, cwd=repo)
    _ok(restored)
    assert sandbox.stats()["calls"] == before["calls"], "restoring from the kept copy made requests"
    assert sha256(out / victim) == digest

    # 2. its kept copy deleted too: fetched again from the provider (a fresh URL), no run
    _delete_everywhere(out, victim, digest)
    status = run_cli(["status", "manifests/six.yaml"], env=env, cwd=repo)
    assert status.returncode in (0, 1), status.stderr
    assert victim.removesuffix(".png") in status.stdout, status.stdout
    before = sandbox.stats()
    fetched = run_cli(["apply", "manifests/six.yaml"], env=env, cwd=repo)
    _ok(fetched)
    after = sandbox.stats()
    assert after["calls"].get("run", 0) == before["calls"].get("run", 0)
    assert created(after) == 4
    assert pixels(out / victim) == image

    # 3. the provider forgot it (restarted without its journal): listed, exit 1; then paid
    # again, knowingly, exactly once
    port, storage_port = sandbox.base_url.rsplit(":", 1)[1], sandbox.storage_url.rsplit(":", 1)[1]
    sandbox.stop()
    forgetful = start_sandbox("--latency", "0.05-0.2", "--port", port, "--storage-port", storage_port)
    assert forgetful.base_url == sandbox.base_url
    _delete_everywhere(out, victim, sha256(out / victim))
    listed = run_cli(["apply", "manifests/six.yaml"], env=env, cwd=repo)
    _ok(listed, 1)
    assert victim.removesuffix(".png") in listed.stderr + listed.stdout, listed.stderr
    assert "--regenerate-missing" in listed.stderr + listed.stdout
    assert created(forgetful.stats()) == 0
    assert not (out / victim).exists()
    paid = run_cli(["apply", "manifests/six.yaml", "--regenerate-missing"], env=env, cwd=repo)
    _ok(paid)
    assert created(forgetful.stats()) == 1
    assert pixels(out / victim) == image  # drawn from the same prompt and seed
    for name in spec.names[1:]:
        assert sha256(out / name) == images[name][0]
    assert run_in_progress(out) is None


def _delete_everywhere(out: Path, name: str, digest: str) -> None:
    """Delete the named file and the store's copy of it, as a user cleaning up would."""
    kept = kept_objects(out)
    assert digest in kept, f"{name} is not kept in the output store"
    kept[digest].chmod(0o644)
    kept[digest].unlink()
    (out / name).unlink()
