"""README's "Use from Python" example runs as written: plan, apply on the sandbox, status,
without the CLI (in a fresh interpreter, so nothing else imported ``lumozbatch.cli``)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from demo_repo import demo_repo
from e2e_support import _env, results

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_python_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Use from Python\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the section holds one Python example"
    return blocks[0]


def test_the_readme_python_example_plans_applies_and_reads_status(tmp_path: Path) -> None:
    demo_repo(tmp_path)  # run, as the README says, at the top of a clone of this repository
    check = "\nimport sys\nassert 'lumozbatch.cli' not in sys.modules, 'the example used the CLI'\n"
    done = subprocess.run(
        [sys.executable, "-c", readme_python_example() + check],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "10 of 10 generations to submit" in done.stdout
    assert "exit code 0" in done.stdout
    assert "'done': 10" in done.stdout
    rows = results(tmp_path / "outputs" / "sketch-portraits")
    assert len(rows) == 10 and all((tmp_path / "outputs" / "sketch-portraits" / r["file"]).is_file() for r in rows)
