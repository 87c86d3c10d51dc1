"""The schemas a manifest is checked against, as one value the caller hands to the core.

``lumozbatch.resources.schema_catalogue`` reads the shipped ones from disk; tests and library
users may build their own. Nothing here reads a file: the core stays pure, and two catalogues
can live in one process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

__all__ = ["MANIFEST_SCHEMA_FILE", "SchemaCatalogue", "build_manifest_validator", "model_schema_file"]

#: The manifest schema's file name, relative to the schema folder.
MANIFEST_SCHEMA_FILE = "manifest.schema.json"


def model_schema_file(model: str) -> str:
    """A model's parameter schema's file name, relative to the schema folder."""
    return f"models/{model}.json"


@dataclass(frozen=True, eq=False)
class SchemaCatalogue:
    """The manifest JSON Schema and every known model's parameter schema, by model id.

    Compared by identity; the validators built from it are kept with it (built on first use),
    so a catalogue made once serves every manifest checked against it.
    """

    manifest: Mapping[str, Any]
    models: Mapping[str, Mapping[str, Any]]
    _validators: dict[tuple[str, ...], jsonschema.protocols.Validator | None] = field(
        default_factory=dict, init=False, repr=False
    )

    def model(self, model: str) -> Mapping[str, Any] | None:
        """The parameter schema of a known model (None for a model the catalogue lacks)."""
        return self.models.get(model)

    def manifest_validator(self) -> jsonschema.protocols.Validator:
        key = ("manifest",)
        if key not in self._validators:
            self._validators[key] = build_manifest_validator(self)
        validator = self._validators[key]
        assert validator is not None
        return validator

    def property_validator(self, model: str, name: str) -> jsonschema.protocols.Validator | None:
        """A validator for one parameter of a known model (None when there is no schema)."""
        key = ("param", model, name)
        if key not in self._validators:
            schema = (self.models.get(model) or {}).get("properties", {}).get(name)
            self._validators[key] = None if schema is None else jsonschema.Draft202012Validator(schema)
        return self._validators[key]


def build_manifest_validator(catalogue: SchemaCatalogue) -> jsonschema.protocols.Validator:
    """The manifest schema's validator; every schema of the catalogue is in its registry
    under its ``$id`` and its relative file name, so cross-file ``$ref``s resolve offline."""
    registry: Registry[Any] = Registry()
    named = [(MANIFEST_SCHEMA_FILE, catalogue.manifest)]
    named += [(model_schema_file(model), schema) for model, schema in catalogue.models.items()]
    for file, schema in named:
        resource = Resource.from_contents(dict(schema), default_specification=DRAFT202012)
        registry = registry.with_resource(file, resource)
        if resource.id():
            registry = registry.with_resource(resource.id(), resource)
    return jsonschema.Draft202012Validator(dict(catalogue.manifest), registry=registry)
