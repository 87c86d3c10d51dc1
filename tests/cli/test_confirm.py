"""The question before a big run: Ctrl-C there is an interrupt (exit 130), 'no' is exit 1;
either way nothing is sent."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import lumozbatch.cli.apply as apply_cli
from lumozbatch.cli import main
from lumozbatch.shell.sqlite_store import state_path
from tests.store_helpers import step_records

MANIFEST = """version: 1
name: big
defaults: {aspect_ratio: "1:1", output_format: png}
jobs:
  - id: grid
    model: flux-sketch-smudge
    params: {prompt: "Sketch Smudge, a lighthouse", num_inference_steps: 4}
    matrix: {seed: [%s]}
    filename: "{job}/s{seed}"
""" % ", ".join(str(i) for i in range(60))


@pytest.fixture
def big(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(apply_cli, "_interactive", lambda: True)
    manifest = tmp_path / "big.yaml"
    manifest.write_text(MANIFEST)
    return manifest


def _nothing_sent(tmp_path: Path) -> bool:
    out = tmp_path / "outputs" / "big"
    return not state_path(out).exists() or all(r["t"] != "intent" for r in step_records(out))


def test_ctrl_c_at_the_question_exits_130(big: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted_confirm(*args: object, **kwargs: object) -> bool:
        # what click.confirm does when Ctrl-C arrives at its prompt (CliRunner replaces the
        # prompt's input function, so the keyboard cannot be reached through it)
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise click.Abort() from None

    monkeypatch.setattr(click, "confirm", interrupted_confirm)
    result = CliRunner().invoke(main, ["apply", str(big), "--sandbox"])
    assert result.exit_code == 130, result.output
    assert "nothing was sent" in result.output
    assert _nothing_sent(tmp_path)


def test_no_at_the_question_exits_1(big: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["apply", str(big), "--sandbox"], input="n\n")
    assert result.exit_code == 1, result.output
    assert "Submit them?" in result.output
    assert _nothing_sent(tmp_path)
