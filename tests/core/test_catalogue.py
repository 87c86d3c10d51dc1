"""The schema catalogue: the manifest validator resolves cross-file ``$ref``s offline, and
validators are built once per catalogue."""

from __future__ import annotations

from typing import Any

from lumozbatch.core.catalogue import SchemaCatalogue, build_manifest_validator, model_schema_file
from lumozbatch.resources import manifest_schema, model_schemas, schema_catalogue

_MODEL = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://example.test/schemas/models/m1.json",
    "type": "object",
    "properties": {"steps": {"type": "integer", "minimum": 1}},
}


def _manifest(ref: str, with_id: bool = True) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"params": {"$ref": ref}},
    }
    if with_id:
        schema["$id"] = "https://example.test/schemas/manifest.schema.json"
    return schema


def _errors(catalogue: SchemaCatalogue, instance: Any) -> list[str]:
    return [e.message for e in build_manifest_validator(catalogue).iter_errors(instance)]


def test_relative_ref_to_a_model_file_resolves_by_id() -> None:
    catalogue = SchemaCatalogue(manifest=_manifest("models/m1.json"), models={"m1": _MODEL})
    assert _errors(catalogue, {"params": {"steps": 3}}) == []
    assert _errors(catalogue, {"params": {"steps": 0}}) == ["0 is less than the minimum of 1"]


def test_relative_ref_resolves_by_file_name_without_ids() -> None:
    model = {k: v for k, v in _MODEL.items() if k != "$id"}
    catalogue = SchemaCatalogue(manifest=_manifest("models/m1.json", with_id=False), models={"m1": model})
    assert model_schema_file("m1") == "models/m1.json"
    assert _errors(catalogue, {"params": {"steps": "x"}}) == ["'x' is not of type 'integer'"]


def test_validators_are_built_once_per_catalogue() -> None:
    catalogue = SchemaCatalogue(manifest=_manifest("models/m1.json"), models={"m1": _MODEL})
    assert catalogue.manifest_validator() is catalogue.manifest_validator()
    assert catalogue.property_validator("m1", "steps") is catalogue.property_validator("m1", "steps")
    assert catalogue.property_validator("m1", "nope") is None
    assert catalogue.property_validator("m2", "steps") is None
    assert catalogue.model("m1") is _MODEL and catalogue.model("m2") is None


def test_the_shipped_catalogue_holds_the_shipped_schemas() -> None:
    catalogue = schema_catalogue()
    assert catalogue is schema_catalogue()
    assert catalogue.manifest is manifest_schema() and catalogue.models is model_schemas()
    assert sorted(catalogue.models) == ["flux-sketch-smudge", "hidream-l1"]
    assert list(catalogue.manifest_validator().iter_errors({"version": 1, "name": "x", "jobs": [{"id": "a", "model": "m"}]})) == []
