"""What a user meets at the edges: bad folders and missing keys get exit 2/3 with one line, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from lumozbatch.cli import main
from tests.conftest import MANIFESTS


def _empty_batch(tmp_path: Path) -> Path:
    """A batch with nothing planned yet (an empty ledger.jsonl is no batch at all)."""
    out = tmp_path / "out"
    (out / ".lumozbatch").mkdir(parents=True)
    (out / ".lumozbatch" / "ledger.jsonl").write_text('{"t":"batch","v":1,"name":"empty","manifest":"m.yaml","at":1.0}\n')
    return out


def test_resume_of_a_folder_without_ledger_says_so_before_asking_for_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LUMOZ_API_KEY", raising=False)
    result = CliRunner().invoke(main, ["resume", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert f"Error: no ledger in {tmp_path}" in result.output
    assert "Traceback" not in result.output


def test_gallery_that_cannot_be_written_is_a_clear_error(tmp_path: Path) -> None:
    out = _empty_batch(tmp_path)
    (out / "index.html").mkdir()  # in the way: nothing can replace it
    (out / "index.html" / "keep").write_text("x")
    result = CliRunner().invoke(main, ["gallery", str(out)])
    assert result.exit_code == 2, result.output
    assert f"Error: cannot write the gallery {out / 'index.html'}:" in result.output
    assert "internal error" not in result.output
    assert (out / "index.html" / "keep").read_text() == "x"
    assert [p.name for p in out.iterdir() if p.name.startswith(".index-")] == []


@pytest.mark.parametrize("command", ["status", "gallery"])
def test_a_file_where_the_ledger_folder_should_be_means_no_ledger(tmp_path: Path, command: str) -> None:
    (tmp_path / ".lumozbatch").write_text("not a folder")
    result = CliRunner().invoke(main, [command, str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert f"Error: no ledger in {tmp_path}" in result.output
    assert "internal error" not in result.output


@pytest.mark.parametrize("json_out", [[], ["--json"]])
def test_plan_against_another_batchs_folder_refuses_as_apply_does(tmp_path: Path, json_out: list[str]) -> None:
    out = _empty_batch(tmp_path)
    (out / ".lumozbatch" / "ledger.jsonl").write_text(
        '{"t":"batch","v":1,"name":"towers","manifest":"m/towers.yaml","at":1795266425.0}\n'
    )
    result = CliRunner().invoke(main, ["plan", str(MANIFESTS / "seed-sweep.yaml"), "--out", str(out), *json_out])
    assert result.exit_code == 2, result.output
    assert f"Error: {out} holds the batch 'towers', not 'seed-sweep'" in result.output


@pytest.mark.parametrize("command", ["status", "gallery", "resume"])
def test_a_manifest_that_cannot_be_read_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text("version: 1\nname: m\n")
    real_read_text = Path.read_text

    def refuse(self: Path, *args: object, **kwargs: object) -> str:
        if self == manifest:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_text(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", refuse)  # chmod 000 does not stop root
    result = CliRunner().invoke(main, [command, str(manifest), *(["--sandbox"] if command == "resume" else [])])
    assert result.exit_code == 2, result.output
    assert f"Error: cannot read {manifest}: Permission denied" in result.output


@pytest.mark.parametrize("command", ["apply", "resume"])
def test_a_malformed_base_url_option_is_a_usage_error(tmp_path: Path, command: str) -> None:
    # No scheme: the option's value is wrong, not the configuration (exit 2, not 3), and
    # it is said before the missing key is.
    where = str(MANIFESTS / "seed-sweep.yaml") if command == "apply" else str(_empty_batch(tmp_path))
    result = CliRunner().invoke(main, [command, where, "--base-url", "127.0.0.1:35845", "--out", str(tmp_path / "o")]
                                if command == "apply" else [command, where, "--base-url", "127.0.0.1:35845"])
    assert result.exit_code == 2, result.output
    assert "invalid base URL '127.0.0.1:35845' (--base-url): expected http(s)://host[:port]" in result.output
    assert "Traceback" not in result.output


def test_a_malformed_lumoz_base_url_is_a_configuration_error(tmp_path: Path) -> None:
    env = {"LUMOZ_API_KEY": "k", "LUMOZ_BASE_URL": "127.0.0.1:35845"}
    result = CliRunner().invoke(main, ["apply", str(MANIFESTS / "seed-sweep.yaml"), "--out", str(tmp_path / "o")], env=env)
    assert result.exit_code == 3, result.output
    assert "invalid base URL '127.0.0.1:35845' (LUMOZ_BASE_URL)" in result.output


@pytest.mark.parametrize("command", ["apply", "resume"])
def test_a_state_url_that_is_not_postgresql_is_exit_2_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.setenv("LUMOZ_API_KEY", "k")
    target = str(MANIFESTS / "sketch-portraits.yaml") if command == "apply" else str(tmp_path)
    out = ["--out", str(tmp_path / "o")] if command == "apply" else []
    result = CliRunner().invoke(main, [command, target, "--state", "sqlite:///tmp/x.db", *out])
    assert result.exit_code == 2, result.output
    assert "Error: --state: expected a postgresql://USER@HOST/DATABASE URL, got 'sqlite:///tmp/x.db'" in result.output
    assert not (tmp_path / "o").exists()
