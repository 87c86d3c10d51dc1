"""reproduce: metadata in an image -> a one-job manifest that validate accepts and that plans
the same generation (same model, same params, the concrete seed)."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner

from ui_helpers import MANIFESTS_DIR, image_bytes
from lumozbatch.cli import main
from lumozbatch.core.grid import expand
from lumozbatch.manifest_io import load_manifest
from lumozbatch.provenance import embed_metadata


def meta_for(spec, params=None) -> dict:
    # what the runner embeds (shell/runner.py _embedder)
    return {"job": spec.job, "identity": spec.identity, "model": spec.model,
            "params": params or spec.params, "variables": spec.variables, "request_id": 7,
            "manifest": "manifests/sketch-portraits.yaml"}


def reproduce(image: Path) -> str:
    result = CliRunner().invoke(main, ["reproduce", str(image)])
    assert result.exit_code == 0, result.output
    return result.output


def test_reproduce_gives_a_valid_manifest_for_the_same_generation(tmp_path: Path) -> None:
    specs = list(expand(load_manifest(MANIFESTS_DIR / "sketch-portraits.yaml")))
    spec = specs[-1]
    image = tmp_path / "out.webp"
    image.write_bytes(image_bytes("WEBP"))
    assert embed_metadata(image, meta_for(spec))
    text = reproduce(image)
    assert text.startswith("# yaml-language-server: $schema=../schemas/manifest.editor.schema.json\n")
    assert f"#   identity: {spec.identity}" in text
    doc = yaml.safe_load(text)
    assert doc["version"] == 1 and len(doc["jobs"]) == 1
    manifest = tmp_path / "again.yaml"
    manifest.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", str(manifest)])
    assert result.exit_code == 0, result.output
    (again,) = list(expand(load_manifest(manifest)))
    assert again.model == spec.model
    assert again.params == spec.params
    assert again.identity == spec.identity  # same model + params: the very same generation


def reproduce_params(tmp_path: Path, params: dict, job: str = "portraits"):
    image = tmp_path / "x.png"
    image.write_bytes(image_bytes("PNG"))
    embed_metadata(image, {"model": "flux-sketch-smudge", "params": params, "job": job})
    manifest = tmp_path / "again.yaml"
    manifest.write_text(reproduce(image), encoding="utf-8")
    (again,) = list(expand(load_manifest(manifest)))
    return again


def test_yaml11_words_and_string_numbers_survive(tmp_path: Path) -> None:
    params = {"prompt": "Sketch Smudge, no", "aspect_ratio": "1:1", "seed": 4294967295,
              "megapixels": "1", "output_format": "png"}
    again = reproduce_params(tmp_path, params, job="odd one!")
    assert again.params == params
    assert again.job == "image"  # an id the schema would refuse is replaced


def test_literal_braces_survive(tmp_path: Path) -> None:
    params = {"prompt": "Sketch Smudge, a {literal} brace", "aspect_ratio": "1:1", "seed": 5}
    assert reproduce_params(tmp_path, params).params == params


def test_image_without_metadata_exits_2(tmp_path: Path) -> None:
    image = tmp_path / "plain.jpg"
    image.write_bytes(image_bytes("JPEG"))
    result = CliRunner().invoke(main, ["reproduce", str(image)])
    assert result.exit_code == 2
    assert f"Error: {image} holds no lumozbatch metadata, so it cannot be reproduced" in result.output


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["reproduce", str(tmp_path / "nope.png")])
    assert result.exit_code == 2
    assert "does not exist" in result.output
