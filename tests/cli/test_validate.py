"""``lumozbatch validate``: the bad-manifest corpus, several files at once, unreadable files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from lumozbatch.cli import main
from tests.conftest import MANIFESTS, REPO

BAD = REPO / "tests" / "bad_manifests"
CORPUS = sorted(BAD.glob("*.yaml"))


def _expectation(path: Path) -> tuple[str, str]:
    """Each corpus file starts with ``# expect: [file:]line:col | text``."""
    first = path.read_text(encoding="utf-8").splitlines()[0]
    match = re.fullmatch(r"# expect: (\S+) \| (.+)", first)
    assert match, f"{path.name} lacks its '# expect:' line"
    where, text = match.groups()
    if where.count(":") == 1:
        where = f"{path.name}:{where}"
    return where, text


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 25


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_bad_manifest_exits_2_with_location(path: Path) -> None:
    where, text = _expectation(path)
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.output.startswith("Error: ")
    assert where in result.output
    assert text in result.output


@pytest.mark.timeout(20)  # unbounded it would take minutes: a bound, not a timed assertion
def test_billion_laughs_is_refused_fast() -> None:
    result = CliRunner().invoke(main, ["validate", str(BAD / "billion_laughs.yaml")])
    assert result.exit_code == 2
    assert "expands to more than" in result.output


def test_examples_are_valid() -> None:
    paths = sorted(str(p) for p in MANIFESTS.glob("*.yaml"))
    assert len(paths) >= 3
    result = CliRunner().invoke(main, ["validate", *paths])
    assert result.exit_code == 0, result.output
    assert "sketch-portraits.yaml: valid (1 job, 10 generations)" in result.output
    for path in paths:
        text = Path(path).read_text(encoding="utf-8")
        assert text.startswith("# yaml-language-server: $schema=../schemas/manifest.editor.schema.json")


def test_every_error_of_every_file_at_once(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["validate", str(MANIFESTS / "towers.yaml"), str(BAD / "unknown_param.yaml"), str(BAD / "zip_unequal.yaml"), "missing.yaml"],
    )
    assert result.exit_code == 2
    assert result.output.count("Error:") == 1
    assert "3 of 4 manifests invalid" in result.output
    assert "towers.yaml: valid" in result.output
    assert "unknown_param.yaml:9:7" in result.output
    assert "zip_unequal.yaml:8:5" in result.output
    assert "cannot read missing.yaml: no such file" in result.output


def test_many_errors_in_one_file_all_reported(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(
        "version: 1\nname: Bad\njobs:\n  - id: a\n    model: hidream-l1\n"
        "    params: {prompt: '{x}', guidance_scale: 99, num_inference_steps: 0}\n"
    )
    result = CliRunner().invoke(main, ["validate", "m.yaml"])
    assert result.exit_code == 2
    assert "m.yaml invalid: 4 errors" in result.output
    for fragment in ("m.yaml:2:7: name:", "unknown variable {x}", "99 is above the maximum 20", "0 is below the minimum 1"):
        assert fragment in result.output


def test_warnings_are_printed_and_exit_0(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(
        "version: 1\nname: w\njobs:\n  - id: a\n    model: brand-new-model\n    params: {prompt: cat, steps: 4}\n"
        "pricing: {hidream-l1: 0.1}\n"
    )
    result = CliRunner().invoke(main, ["validate", "m.yaml"])
    assert result.exit_code == 0, result.output
    assert "m.yaml:5:12: warning: jobs[0].model: unknown model 'brand-new-model'" in result.output
    assert "m.yaml:7:11: warning: pricing.hidream-l1: no job uses model 'hidream-l1'" in result.output
    assert "m.yaml: valid (1 job, 1 generation)" in result.output


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.mkdir(), "it is a directory, not a file"),
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00"), "it is a binary file, not text"),
        (lambda p: p.write_bytes("name: caf\u00e9\n".encode("latin-1")), "it is not UTF-8 text (byte 0xe9 at offset 9)"),
        (lambda p: p.write_bytes(b"# " + b"x" * (4 * 1024 * 1024) + b"\n"), "it is larger than 4 MiB"),
        (lambda p: None, "no such file"),
    ],
    ids=["directory", "binary", "latin1", "too-big", "missing"],
)
def test_unreadable_manifest_is_one_line(tmp_path: Path, make, reason: str) -> None:
    target = tmp_path / "m.yaml"
    make(target)
    result = CliRunner().invoke(main, ["validate", "m.yaml"])
    assert result.exit_code == 2
    assert result.output.startswith(f"Error: cannot read m.yaml: {reason}")
    assert result.output.count("\n") == 1
    assert "Traceback" not in result.output


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text("# nothing\n")
    result = CliRunner().invoke(main, ["validate", "m.yaml"])
    assert result.exit_code == 2
    assert "m.yaml:1:1: the file holds no YAML document (it is empty)" in result.output


def test_no_argument_is_usage_error() -> None:
    result = CliRunner().invoke(main, ["validate"])
    assert result.exit_code == 2
    assert "Missing argument 'MANIFEST...'" in result.output
