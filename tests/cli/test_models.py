"""``lumozbatch models``: from CliRunner and from the installed console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from lumozbatch.cli import main


def test_models_table() -> None:
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "flux-sketch-smudge  (output: webp by default)"
    assert any(line.split() == ["num_inference_steps", "integer", "1..50", "28"] for line in lines)
    assert any(line.split()[:2] == ["prompt", "string"] and line.split()[-1] == "yes" for line in lines)
    assert "hidream-l1  (output: jpg by default)" in lines


def test_models_json() -> None:
    result = CliRunner().invoke(main, ["models", "--json"])
    assert result.exit_code == 0
    doc = json.loads(result.output)
    assert sorted(doc) == ["flux-sketch-smudge", "hidream-l1"]
    seed = next(p for p in doc["flux-sketch-smudge"]["parameters"] if p["name"] == "seed")
    assert seed["type"] == "integer | string" and seed["allowed"] == '0..4294967295; "", "random"'
    required = [p["name"] for p in doc["hidream-l1"]["parameters"] if p["required"]]
    assert required == ["prompt"]


@pytest.mark.e2e
def test_installed_console_script_from_another_folder(tmp_path: Path) -> None:
    script = shutil.which("lumozbatch")
    cmd = [script, "models"] if script else [sys.executable, "-m", "lumozbatch", "models"]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "flux-sketch-smudge" in done.stdout and "guidance_scale" in done.stdout
