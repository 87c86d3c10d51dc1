"""``lumozbatch init [DIR]`` and ``lumozbatch schema [--path]``."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from lumozbatch.cli import main
from lumozbatch.core.editor_schema import EDITOR_SCHEMA_FILE
from lumozbatch.resources import schema_dir
from lumozbatch.shell.schema_files import schema_files

SCHEMAS = Path(str(schema_dir()))


def test_init_writes_a_repository_whose_example_validates(tmp_path: Path) -> None:
    target = tmp_path / "batches"
    result = CliRunner().invoke(main, ["init", str(target)])
    assert result.exit_code == 0, result.output
    example = target / "manifests" / "example.yaml"
    assert f"wrote {example}" in result.output
    assert example.read_text(encoding="utf-8").startswith(f"# yaml-language-server: $schema=../schemas/{EDITOR_SCHEMA_FILE}\n")
    for name in schema_files():  # the modeline's folder holds the installed schemas, byte for byte
        assert (target / "schemas" / name).read_bytes() == (SCHEMAS / name).read_bytes(), name
    assert "outputs/" in (target / ".gitignore").read_text(encoding="utf-8").splitlines()
    readme = (target / "README.md").read_text(encoding="utf-8")
    assert "lumozbatch validate manifests/*.yaml" in readme and "--sandbox" in readme
    validated = CliRunner().invoke(main, ["validate", str(example)])
    assert validated.exit_code == 0, validated.output
    assert "valid (1 job, 4 generations)" in validated.output


def test_init_defaults_to_the_current_folder(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["init"])  # the autouse fixture put us in tmp_path
    assert result.exit_code == 0, result.output
    assert (tmp_path / "manifests" / "example.yaml").is_file()


def test_init_refuses_to_overwrite_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("mine\n", encoding="utf-8")
    (tmp_path / "schemas" / "models").mkdir(parents=True)
    (tmp_path / "schemas" / "models" / "hidream-l1.json").write_text("{}", encoding="utf-8")
    result = CliRunner().invoke(main, ["init", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "nothing was changed" in result.output
    assert f"exists: {tmp_path / 'README.md'}" in result.output
    assert f"exists: {tmp_path / 'schemas' / 'models' / 'hidream-l1.json'}" in result.output
    assert (tmp_path / "README.md").read_text(encoding="utf-8") == "mine\n"
    assert not (tmp_path / "manifests").exists()
    assert not (tmp_path / ".gitignore").exists()
    assert sorted(p.name for p in (tmp_path / "schemas").rglob("*.json")) == ["hidream-l1.json"]


def test_init_twice_refuses_the_second_time(tmp_path: Path) -> None:
    assert CliRunner().invoke(main, ["init", "r"]).exit_code == 0
    again = CliRunner().invoke(main, ["init", "r"])
    assert again.exit_code == 2
    assert "exists: r/manifests/example.yaml" in again.output


def test_init_into_a_file_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x", encoding="utf-8")
    result = CliRunner().invoke(main, ["init", "f"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_schema_path_prints_the_installed_folder() -> None:
    result = CliRunner().invoke(main, ["schema", "--path"])
    assert result.exit_code == 0, result.output
    folder = Path(result.output.strip())
    assert folder == SCHEMAS.resolve()
    assert (folder / EDITOR_SCHEMA_FILE).is_file() and (folder / "manifest.schema.json").is_file()


def test_schema_prints_a_modeline_for_the_installed_entry_schema() -> None:
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0, result.output
    assert result.output == f"# yaml-language-server: $schema={(SCHEMAS.resolve() / EDITOR_SCHEMA_FILE).as_uri()}\n"
