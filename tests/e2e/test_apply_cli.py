"""``apply``/``resume`` refusals through click's CliRunner: exit code AND message, no network."""

from __future__ import annotations

import json
import shutil
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from demo_repo import demo_repo
from e2e_support import MANIFESTS_DIR, _env, ledger, results, run_cli, start_cli, write_manifest
from lumozbatch.cli import main
from tests.store_helpers import state_dump


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    target = tmp_path / "sketch-portraits.yaml"
    shutil.copy(MANIFESTS_DIR / "sketch-portraits.yaml", target)
    return target


def invoke(*args: str, env: dict[str, str] | None = None, input: str | None = None):
    return CliRunner().invoke(main, list(args), env=env, input=input, catch_exceptions=False)


def test_missing_key_is_a_configuration_error(demo: Path) -> None:
    result = invoke("apply", str(demo))
    assert result.exit_code == 3
    assert "Error: no API key: set LUMOZ_API_KEY" in result.output


def test_bad_base_url_option_is_a_usage_error(demo: Path) -> None:
    # #12: a malformed option value is a usage error (2); a malformed LUMOZ_BASE_URL stays a
    # configuration error (3), see tests/cli/test_edges.py
    result = invoke("apply", str(demo), "--base-url", "lumozai.com", env={"LUMOZ_API_KEY": "k"})
    assert result.exit_code == 2
    assert "invalid base URL" in result.output


def test_cap_from_the_command_line_refuses_up_front(demo: Path, tmp_path: Path) -> None:
    result = invoke("apply", str(demo), "--max-generations", "5", env={"LUMOZ_API_KEY": "k"})
    assert result.exit_code == 2
    assert "10 generations, over the cap of 5 (--max-generations)" in result.output
    assert "to submit now: 10" in result.output
    state = ledger(tmp_path / "outputs" / "sketch-portraits")
    assert state.jobs == {}  # nothing planned, nothing sent


def test_cap_from_the_manifest(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, "capped", subjects=2, seeds=3, limits="limits:\n  max_generations: 4\n")
    result = invoke("apply", str(manifest), env={"LUMOZ_API_KEY": "k"})
    assert result.exit_code == 2
    assert "6 generations, over the cap of 4 (limits.max_generations)" in result.output


def test_resume_without_a_ledger(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = invoke("resume", str(tmp_path / "empty"), env={"LUMOZ_API_KEY": "k"})
    assert result.exit_code == 2
    assert "no ledger in" in result.output


def test_terminal_confirmation_can_decline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lumozbatch.cli.apply as apply_module

    monkeypatch.setattr(apply_module, "_interactive", lambda: True)
    manifest = write_manifest(tmp_path, "big", subjects=6, seeds=10)  # 60 > 50
    result = invoke("apply", str(manifest), env={"LUMOZ_API_KEY": "k"}, input="n\n")
    assert result.exit_code == 1
    assert "This run will submit 60 generations" in result.output
    assert "Plan for big" in result.output
    assert "Aborted" in result.output
    assert ledger(tmp_path / "outputs" / "big").jobs == {}


def test_no_question_below_the_threshold_or_with_yes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lumozbatch.cli.apply as apply_module

    monkeypatch.setattr(apply_module, "_interactive", lambda: True)
    manifest = write_manifest(tmp_path, "big", subjects=6, seeds=10)
    # --yes skips the question; the cap then refuses (so nothing is sent in this test)
    result = invoke("apply", str(manifest), "--yes", "--max-generations", "59", env={"LUMOZ_API_KEY": "k"})
    assert result.exit_code == 2
    assert "Submit them?" not in result.output


def test_sandbox_apply_then_cap_counts_what_the_ledger_holds(demo: Path, tmp_path: Path) -> None:
    first = invoke("apply", str(demo), "--sandbox", "--json")
    assert first.exit_code == 0, first.output
    events = [json.loads(line) for line in first.stdout.splitlines() if line.startswith("{")]
    assert events[0]["event"] == "plan" and events[0]["counts"]["new"] == 10
    assert events[-1]["event"] == "finished" and events[-1]["exit_code"] == 0
    out = tmp_path / "outputs" / "sketch-portraits"
    rows = results(out)
    assert len(rows) == 10
    assert {r["manifest"] for r in rows} == {str(demo)}
    assert events[0]["extra"]["jobs"]["portraits"]["total"] == 10  # the live display's rows
    snapshot = json.loads((out / ".lumozbatch" / "ratelimit.json").read_text())
    assert snapshot["limit"] > 0 and snapshot["reset_at"] > snapshot["observed_at"] - 1
    # two more seeds for the fisherman and the dancer: 10 spent + 6 new > 12
    text = demo.read_text().replace("seed: [1, 2, 3]", "seed: [1, 2, 3, 4, 5]")
    demo.write_text(text)
    again = invoke("apply", str(demo), "--sandbox", "--max-generations", "12")
    assert again.exit_code == 2
    assert "already spent or possibly spent (ledger): 10" in again.output
    assert "to submit now: 6" in again.output


def test_another_batchs_folder_is_refused(tmp_path: Path) -> None:
    one = write_manifest(tmp_path, "one", subjects=1, seeds=1)
    two = write_manifest(tmp_path, "two", subjects=1, seeds=1)
    env = {"LUMOZ_API_KEY": "k"}
    first = invoke("apply", str(one), "--out", "shared", "--max-generations", "0", env=env)
    assert first.exit_code == 2  # refused by the cap: planned nothing, but the folder is "one"'s
    result = invoke("apply", str(two), "--out", "shared", env=env)
    assert result.exit_code == 2
    assert "shared holds the batch 'one', not 'two'" in result.output


def test_sandbox_demo_interrupted_then_rerun_finishes_without_paying_twice(tmp_path: Path) -> None:
    """The demo's own sandbox is new in every process; its journal beside the ledger lets the
    second run fetch what the first left in flight instead of failing it."""
    manifest = str(demo_repo(tmp_path))  # its batch: outputs/ at the top of that repository
    env = _env()
    proc = start_cli(["apply", manifest, "--sandbox", "--json"], env=env, cwd=tmp_path)
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    accepted = 0
    while time.monotonic() < deadline and accepted < 3:
        line = proc.stdout.readline()
        accepted += '"event": "accepted"' in line
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    out = tmp_path / "outputs" / "sketch-portraits"
    assert ledger(out).counts()["done"] < 10  # something was left to finish

    again = run_cli(["apply", manifest, "--sandbox", "--quiet"], env=env, cwd=tmp_path, timeout=90)
    assert again.returncode == 0, again.stderr
    counts = ledger(out).counts()
    assert counts["done"] == 10 and counts["failed"] == 0, counts
    journal = (out / ".lumozbatch" / "sandbox-journal.jsonl").read_text().splitlines()
    created = Counter(json.dumps(json.loads(line)["params"], sort_keys=True) for line in journal)
    assert len(created) == 10 and set(created.values()) == {1}  # each generation paid once


def test_a_sandbox_batch_is_not_continued_against_the_real_api(tmp_path: Path) -> None:
    """The README's path: try the demo with --sandbox, then drop --sandbox. The sandbox's
    outputs must not count as done (nothing paid would be generated), nor its request ids be
    polled at the real API (or the other way round: real paid requests failed as unknown)."""
    manifest = write_manifest(tmp_path, "tried", subjects=1, seeds=2)
    first = invoke("apply", str(manifest), "--sandbox", "--quiet")
    assert first.exit_code == 0, first.output
    out = tmp_path / "outputs" / "tried"
    before = state_dump(out)
    real = {"LUMOZ_API_KEY": "k", "LUMOZ_BASE_URL": "https://lumozai.com"}
    for args in (["apply", str(manifest)], ["resume", str(out)]):
        result = invoke(*args, env=real)
        assert result.exit_code == 2, result.output
        assert "was run against the sandbox, not https://lumozai.com" in result.output
        assert "--sandbox" in result.output and "--out" in result.output
    assert state_dump(out) == before
    # the same target goes on as before
    again = invoke("resume", str(out), "--sandbox", "--quiet")
    assert again.exit_code == 0, again.output


def test_a_real_batch_is_not_continued_against_another_api_root(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, "real", subjects=1, seeds=1)
    env = {"LUMOZ_API_KEY": "k", "LUMOZ_BASE_URL": "https://lumozai.com"}
    first = invoke("apply", str(manifest), "--max-generations", "0", env=env)
    assert first.exit_code == 2  # refused by the cap, the folder is this API's batch now
    other = invoke("apply", str(manifest), "--base-url", "http://127.0.0.1:9", env=env)
    assert other.exit_code == 2
    assert "was run against https://lumozai.com, not http://127.0.0.1:9" in other.output
    assert "--base-url https://lumozai.com" in other.output
    sandbox = invoke("apply", str(manifest), "--sandbox", env=env)
    assert sandbox.exit_code == 2
    assert "was run against https://lumozai.com, not the sandbox" in sandbox.output
