"""Reading manifests from disk: the file, its ``file:`` sources beside it, the catalogue."""

from __future__ import annotations

from pathlib import Path

import pytest

from lumozbatch.core.catalogue import SchemaCatalogue
from lumozbatch.core.grid import expand
from lumozbatch.errors import ManifestError
from lumozbatch.manifest_io import load_manifest
from lumozbatch.resources import schema_catalogue
from tests.conftest import MANIFESTS

HEAD = "version: 1\nname: t\n"


def test_load_manifest_takes_another_catalogue(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(HEAD + "jobs:\n  - {id: a, model: hidream-l1, params: {prompt: x, steps_x: 3}}\n")
    with pytest.raises(ManifestError):
        load_manifest("m.yaml")  # the shipped hidream-l1 has no steps_x
    shipped = schema_catalogue()
    other = SchemaCatalogue(manifest=shipped.manifest, models={"flux-sketch-smudge": shipped.models["flux-sketch-smudge"]})
    m = load_manifest("m.yaml", catalogue=other)
    assert [s.params for s in expand(m)] == [{"prompt": "x", "steps_x": 3}]
    assert "unknown model 'hidream-l1'" in m.warnings[0].message


def test_load_manifest_reads_sources_relative_to_the_manifest(tmp_path: Path) -> None:
    sub = tmp_path / "deep"
    sub.mkdir()
    (sub / "who.txt").write_text("a cat\na dog\n", encoding="utf-8")
    (sub / "m.yaml").write_text(HEAD + "jobs:\n  - id: a\n    model: hidream-l1\n    params: {prompt: '{who}'}\n    matrix: {who: {file: who.txt}}\n")
    m = load_manifest("deep/m.yaml")  # run from tmp_path: the source is found beside the manifest
    assert [s.params["prompt"] for s in expand(m)] == ["a cat", "a dog"]
    assert m.path == "deep/m.yaml"


def test_load_manifest_reports_source_lines(tmp_path: Path) -> None:
    (tmp_path / "s.jsonl").write_text('{"p": "x", "num_inference_steps": 10}\n{"p": "y", "num_inference_steps": 1000}\n')
    (tmp_path / "m.yaml").write_text(HEAD + "jobs:\n  - id: a\n    model: hidream-l1\n    params: {prompt: '{p}'}\n    zip: {file: s.jsonl}\n")
    with pytest.raises(ManifestError) as info:
        load_manifest("m.yaml")
    assert [str(d) for d in info.value.diagnostics] == ["s.jsonl:2:1: num_inference_steps: 1000 is above the maximum 100"]


def test_max_generations_exceeded_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(HEAD + "jobs:\n  - {id: a, model: hidream-l1, params: {prompt: x}, repeat: 5}\nlimits: {max_generations: 3}\n")
    m = load_manifest("m.yaml")
    assert "expands to 5 generations, more than max_generations 3" in m.warnings[-1].message


def test_example_manifests_load() -> None:
    counts = {p.name: load_manifest(p).count() for p in sorted(MANIFESTS.glob("*.yaml"))}
    assert counts == {"seed-sweep.yaml": 8, "sketch-portraits.yaml": 10, "towers.yaml": 8}
    assert all(n <= 12 for n in counts.values())
