"""The editor's entry schema, checked with Python's jsonschema (no Node.js needed).

It must be the generated one, resolve offline from the files beside it, accept whatever the
validator accepts and catch the parameter mistakes that the validator catches.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import referencing
import referencing.exceptions
import yaml
from click.testing import CliRunner

from lumozbatch.cli import main
from lumozbatch.core.editor_schema import EDITOR_SCHEMA_FILE
from lumozbatch.resources import model_schemas, schema_dir
from lumozbatch.shell.schema_files import editor_schema_text, schema_files
from tests.conftest import MANIFESTS

SCHEMAS = Path(str(schema_dir()))


def _no_network(uri: str) -> referencing.Resource[Any]:
    raise referencing.exceptions.NoSuchResource(ref=uri)


def editor_validator(root: Path = SCHEMAS) -> jsonschema.protocols.Validator:
    """The entry schema with every schema file registered under its relative name only."""
    registry: referencing.Registry[Any] = referencing.Registry(retrieve=_no_network)  # type: ignore[call-arg]
    for name in schema_files():
        contents = json.loads((root / name).read_text(encoding="utf-8"))
        registry = registry.with_resource(name, referencing.jsonschema.DRAFT202012.create_resource(contents))
    entry = json.loads((root / EDITOR_SCHEMA_FILE).read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(entry, registry=registry)


def _errors(doc: dict[str, Any]) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in editor_validator().iter_errors(doc)]


def test_committed_editor_schema_is_the_generated_one() -> None:
    committed = (SCHEMAS / EDITOR_SCHEMA_FILE).read_text(encoding="utf-8")
    assert committed == editor_schema_text(), "run: python -m lumozbatch.shell.schema_files"


def test_no_schema_claims_a_network_identity_and_every_ref_is_local() -> None:
    # a $id would become the base of relative $refs, sending the editor to the network
    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            return ([node["$ref"]] if "$ref" in node else []) + [r for v in node.values() for r in refs(v)]
        return [r for v in node for r in refs(v)] if isinstance(node, list) else []

    for name in schema_files():
        schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
        assert "$id" not in schema, name
        for ref in refs(schema):
            target, _, _ = ref.partition("#")
            assert "://" not in target, (name, ref)
            assert not target or (SCHEMAS / name).parent.joinpath(target).is_file(), (name, ref)


def test_every_known_model_and_parameter_is_tied() -> None:
    text = (SCHEMAS / EDITOR_SCHEMA_FILE).read_text(encoding="utf-8")
    for model, schema in model_schemas().items():
        for name in schema["properties"]:
            assert f'"models/{model}.json#/properties/{name}"' in text


@pytest.mark.parametrize("path", sorted(MANIFESTS.glob("*.yaml")), ids=lambda p: p.stem)
def test_examples_are_valid_for_the_editor(path: Path) -> None:
    assert path.read_text(encoding="utf-8").startswith(f"# yaml-language-server: $schema=../schemas/{EDITOR_SCHEMA_FILE}\n")
    assert _errors(yaml.safe_load(path.read_text(encoding="utf-8"))) == []


def _job(**fields: Any) -> dict[str, Any]:
    return {"version": 1, "name": "t", "jobs": [{"id": "a", "model": "flux-sketch-smudge", **fields}]}


VALID = {
    "required from defaults": {**_job(params={"prompt": "x"}), "defaults": {"aspect_ratio": "4:5"}},
    "required from a schema default": _job(params={"prompt": "x"}),
    "required from a variable": _job(matrix={"prompt": ["a", "b"]}),
    "required from include": _job(include=[{"prompt": "a"}]),
    "template for an enum": _job(params={"prompt": "x", "aspect_ratio": "{r}"}, matrix={"r": ["1:1"]}),
    "default overridden by every job": {**_job(params={"prompt": "x", "guidance": 3}), "defaults": {"guidance": 99}},
    "default set by a variable": {**_job(params={"prompt": "x"}, matrix={"guidance": [1]}), "defaults": {"guidance": 99}},
    "default maybe set by a zip file": {**_job(params={"prompt": "x"}, zip={"file": "a.csv"}), "defaults": {"guidance": 99}},
    "another model's default": {
        **_job(params={"prompt": "x"}),
        "jobs": [{"id": "a", "model": "hidream-l1", "params": {"prompt": "x"}}],
        "defaults": {"num_inference_steps": 80},
    },
    "unknown model takes anything": {
        "version": 1,
        "name": "t",
        "defaults": {"whatever": 1},
        "jobs": [{"id": "a", "model": "my-model", "params": {"anything": [1]}}],
    },
}


@pytest.mark.parametrize("doc", VALID.values(), ids=VALID.keys())
def test_what_the_validator_accepts_the_editor_accepts(doc: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("guidance\n3\n", encoding="utf-8")
    manifest = tmp_path / "m.yaml"
    manifest.write_text(yaml.safe_dump(doc), encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", str(manifest)])
    assert result.exit_code == 0, result.output
    assert _errors(doc) == []


def test_a_template_where_a_number_is_expected_is_left_to_the_validator() -> None:
    # the validator judges the filled value (a string: it says so, with the combination); the
    # editor cannot fill templates, so it does not guess
    assert _errors(_job(params={"prompt": "x", "guidance": "{g}"}, matrix={"g": [1, 2]})) == []


MISTAKES = {
    "aspect_ratio outside the enum": (_job(params={"prompt": "x", "aspect_ratio": "7:3"}), "jobs.0.params.aspect_ratio"),
    "guidance above the maximum": (_job(params={"prompt": "x", "guidance": 99}), "jobs.0.params.guidance"),
    "misspelt parameter": (_job(params={"prompt": "x", "guidence": 3}), "jobs.0.params"),
    "output_format outside the enum": ({**_job(params={"prompt": "x"}), "defaults": {"output_format": "gif"}}, "defaults.output_format"),
    "misspelt default": ({**_job(params={"prompt": "x"}), "defaults": {"guidence": 3}}, "defaults"),
    "steps above hidream-l1's maximum": (
        {"version": 1, "name": "t", "jobs": [{"id": "a", "model": "hidream-l1", "params": {"prompt": "x", "num_inference_steps": 500}}]},
        "jobs.0.params.num_inference_steps",
    ),
    "literal braces are no template": (_job(params={"prompt": "x", "guidance": "{{g}}"}), "jobs.0.params.guidance"),
}


@pytest.mark.parametrize(("doc", "where"), MISTAKES.values(), ids=MISTAKES.keys())
def test_parameter_mistakes_are_caught(doc: dict[str, Any], where: str) -> None:
    assert [e for e in _errors(doc) if e.startswith(f"{where}:")], _errors(doc)
