"""``lumozbatch plan``: counts per job and model, varying variables, cost, JSON; no network."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from lumozbatch.cli import main
from lumozbatch.core.plansummary import summarize
from lumozbatch.ui.plan import render_plan
from lumozbatch.core.grid import expand
from lumozbatch.manifest_io import load_manifest
from tests.conftest import MANIFESTS

DEMO = str(MANIFESTS / "sketch-portraits.yaml")


def test_plan_text_of_the_demo() -> None:
    result = CliRunner().invoke(main, ["plan", DEMO])
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith(f"Plan for sketch-portraits ({DEMO})\n  10 generations: 10 new\n")
    assert "  portraits  flux-sketch-smudge           10   10" in out
    assert "    portraits.subject: an old fisherman, a young dancer, a lighthouse keeper" in out
    assert "    portraits.seed: 1, 2, 3, 7" in out
    assert "    portraits: portraits/an old fisherman-melancholic-s1, portraits/an old fisherman-melancholic-s2, ..." in out
    assert "flux-sketch-smudge: 10 generations, 10 new  x $0.025 = $0.25" in out
    assert "estimated cost of what apply would submit: $0.25" in out
    assert out.endswith("apply would submit 10 generations.\n")


def test_plan_json_is_one_document() -> None:
    result = CliRunner().invoke(main, ["plan", str(MANIFESTS / "towers.yaml"), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["total"] == 8 and doc["to_submit"] == 8
    assert doc["counts"] == {"new": 8, "done": 0, "in_flight": 0, "failed": 0, "ambiguous": 0, "missing": 0}
    assert doc["models"] == {"hidream-l1": {"generations": 8, "counts": doc["counts"], "price": 0.03}}
    assert doc["cost"]["to_submit"] == 0.24
    assert doc["jobs"][0]["first_files"] == ["towers/dawn-g5", "towers/noon-g5"]
    varying = doc["jobs"][0]["varying"]
    assert list(varying) == ["guidance_scale", "time", "place", "negative_prompt"]
    assert varying["time"] == {"count": 4, "values": ["dawn", "noon", "dusk", "night"]}


def test_plan_several_models_unpriced(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(
        "version: 1\nname: mix\njobs:\n"
        "  - {id: a, model: hidream-l1, params: {prompt: x}, repeat: 3}\n"
        "  - {id: b, model: other-model, params: {prompt: y}}\n"
        "pricing: {hidream-l1: 2}\nlimits: {max_generations: 3}\n"
    )
    result = CliRunner().invoke(main, ["plan", "m.yaml"])
    assert result.exit_code == 0, result.output
    assert "warning: jobs[1].model: unknown model 'other-model'" in result.output
    assert "hidream-l1: 3 generations, 3 new  x $2.00 = $6.00" in result.output
    assert "other-model: 1 generation, 1 new" in result.output
    assert "estimated cost of what apply would submit: $6.00 (no price for other-model)" in result.output
    assert "apply would refuse: 0 already submitted + 4 new > limits.max_generations 3" in result.output
    doc = json.loads(CliRunner().invoke(main, ["plan", "m.yaml", "--json"]).output)
    assert doc["cost"] == {"to_submit": None, "total": None, "priced_part_to_submit": 6.0, "unpriced_models": ["other-model"]}


def test_summarize_with_ledger_states() -> None:
    manifest = load_manifest(DEMO)
    specs = list(expand(manifest))
    states = {specs[0].identity: "done", specs[1].identity: "failed", specs[2].identity: "ambiguous"}
    summary = summarize(manifest, specs, states, removed=2)
    assert summary.counts == {"new": 7, "done": 1, "in_flight": 0, "failed": 1, "ambiguous": 1, "missing": 0}
    text = render_plan(summary)
    assert "10 generations: 7 new, 1 done, 1 failed, 1 ambiguous" in text
    assert "2 in the ledger but no longer in the manifest" in text
    assert "estimated cost of what apply would submit: $0.175" in text


def test_plan_invalid_manifest_exit_2() -> None:
    from tests.cli.test_validate import BAD

    result = CliRunner().invoke(main, ["plan", str(BAD / "zip_unequal.yaml")])
    assert result.exit_code == 2
    assert "zip_unequal.yaml:8:5: jobs[0].zip: zip lists must have equal lengths" in result.output
    assert "Traceback" not in result.output


def test_plan_missing_file_one_line() -> None:
    result = CliRunner().invoke(main, ["plan", "nope.yaml"])
    assert result.exit_code == 2
    assert result.output == "Error: cannot read nope.yaml: no such file\n"


def _write_ledger(out_dir: Path, records: list[dict]) -> None:
    from lumozbatch.core.ledger_codec import encode
    from lumozbatch.shell.ledger import ledger_path

    path = ledger_path(out_dir)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"".join(encode(r) for r in records))


def test_plan_reads_the_ledger(tmp_path: Path) -> None:
    from lumozbatch.core.ledger_codec import pin_job_record

    # A copy outside any git work tree: its batch's default folder is outputs/ beside it.
    demo = str(shutil.copy(DEMO, tmp_path / "sketch-portraits.yaml"))
    specs = list(expand(load_manifest(demo)))
    gone = pin_job_record(specs[0], 5) | {"id": "f" * 64, "job": "old"}
    records: list[dict] = [{"t": "batch", "v": 1, "name": "sketch-portraits", "manifest": demo, "at": 1.0}]
    records += [pin_job_record(s, 5) for s in specs[:3]] + [gone]
    records += [
        {"t": "intent", "id": specs[0].identity, "attempt": 1},
        {"t": "accepted", "id": specs[0].identity, "request_id": 1},
        {"t": "intent", "id": specs[1].identity, "attempt": 1},
    ]
    _write_ledger(tmp_path / "outputs" / "sketch-portraits", records)
    result = CliRunner().invoke(main, ["plan", demo])
    assert result.exit_code == 0, result.output
    assert "10 generations: 8 new, 1 in flight, 1 ambiguous" in result.output
    assert "1 in the ledger but no longer in the manifest" in result.output
    # the same ledger somewhere else, found with --out
    (tmp_path / "outputs").rename(tmp_path / "elsewhere")
    assert "10 generations: 10 new\n" in CliRunner().invoke(main, ["plan", demo]).output
    moved = CliRunner().invoke(main, ["plan", demo, "--json", "--out", "elsewhere/sketch-portraits"])
    assert json.loads(moved.output)["counts"] == {"new": 8, "done": 0, "in_flight": 1, "failed": 0, "ambiguous": 1, "missing": 0}
    # the cap counts what the ledger may have paid for (accepted, answer lost), as apply does
    assert json.loads(moved.output)["spent"] == 2


def test_plan_shows_an_eta_under_the_last_rate_limit_seen(tmp_path: Path) -> None:
    import time

    from lumozbatch.ui.ratelimit_file import RateLimitRecord, save_snapshot

    out = tmp_path / "out"
    # 10 new jobs ~ 10 runs + ~15 checks; 10 calls per 60 s window, a fresh window now.
    now = time.time()
    save_snapshot(out, RateLimitRecord(limit=10, remaining=10, reset_at=now + 60, observed_at=now, window=60))
    text = CliRunner().invoke(main, ["plan", DEMO, "--out", str(out)])
    assert text.exit_code == 0, text.output
    assert "ETA: about" in text.output and "(10 per 1m" in text.output
    doc = json.loads(CliRunner().invoke(main, ["plan", DEMO, "--out", str(out), "--json"]).output)
    assert doc["eta_seconds"] > 60  # more calls than one window holds

    no_run = json.loads(CliRunner().invoke(main, ["plan", DEMO, "--json"]).output)
    assert no_run["eta_seconds"] is None
    assert "ETA" not in CliRunner().invoke(main, ["plan", DEMO]).output
