"""One "spent" (SPEC 4): after runs and an edit against the sandbox, the finished event,
the summary, ``status --json`` and ``plan --json`` give the same number, and it is what the
sandbox itself created (its journal holds one line per created request)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from click.testing import CliRunner

from e2e_support import MANIFESTS_DIR
from lumozbatch.cli import main

PRICE = 0.025  # the demo manifest's price for flux-sketch-smudge


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def created_by_the_sandbox(out: Path) -> int:
    return len((out / ".lumozbatch" / "sandbox-journal.jsonl").read_text().splitlines())


def test_spent_is_one_number_everywhere_and_what_the_sandbox_created(tmp_path: Path) -> None:
    demo = tmp_path / "sketch-portraits.yaml"
    shutil.copy(MANIFESTS_DIR / "sketch-portraits.yaml", demo)
    out = tmp_path / "outputs" / "sketch-portraits"
    first = invoke("apply", str(demo), "--sandbox", "--json")
    assert first.exit_code == 0, first.output
    events = [json.loads(line) for line in first.stdout.splitlines() if line.startswith("{")]
    assert events[-1]["event"] == "finished" and events[-1]["extra"]["spent"] == 10 == created_by_the_sandbox(out)

    # an edit: the lighthouse keeper's seed changes; the old one is retired, its output kept
    demo.write_text(demo.read_text().replace("seed: 7}", "seed: 8}"))
    second = invoke("apply", str(demo), "--sandbox")
    assert second.exit_code == 0, second.output
    created = created_by_the_sandbox(out)
    assert created == 11
    spent_line = re.search(r"^spent: \$([0-9.]+) for (\d+) generations$", second.output, re.M)
    assert spent_line is not None, second.output
    assert (float(spent_line.group(1)), int(spent_line.group(2))) == (round(created * PRICE, 4), created)

    status = json.loads(invoke("status", str(out), "--json").output)
    assert status["spent"] == created and status["cost"] == round(created * PRICE, 6)
    assert status["counts"]["retired"] == 1 and status["retired_kept"] == 1
    plan = json.loads(invoke("plan", str(demo), "--json").output)
    assert plan["spent"] == created and plan["spent_cost"] == round(created * PRICE, 6)
    assert plan["to_submit"] == 0 and plan["kept_aside"] == 1
